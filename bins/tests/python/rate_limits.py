"""Rate limits through grpcio (the server runs with --messages-per-second 5
--message-burst 2 --joins-per-second 1 --join-burst 1).

A guest floods a room on one stream: the first 3 posts are delivered, the
rest refused in band (a ChatMessage with `refused`: RESOURCE_EXHAUSTED and
a wait), and the stream stays open: after the wait a post goes through.
Another connection posts meanwhile, undisturbed. Joins over the limit end
with RESOURCE_EXHAUSTED and `retry-after-ms` in the trailing metadata.
"""

import time

import grpc

import chat_pb2
from chatutil import WAIT, Stream, channel, check, check_eq, run, stub, user


def main(addr):
    flood = Stream(stub(channel(addr)), "flood", metadata=[("chat-room", "limits")])
    flood.wait_open()
    me = user("flooder")
    for i in range(10):
        flood.requests.send(chat_pb2.ChatMessage(user=me, message=f"m{i}", client_msg_id=f"id-{i}"))
    flood.wait_for(lambda r: len(r) >= 10, "an answer to every post")
    got = list(flood.received)
    delivered = [m.message for m in got if not m.HasField("refused")]
    refused = [m for m in got if m.HasField("refused")]
    check_eq(delivered, ["m0", "m1", "m2"], "the burst and one more are delivered")
    check_eq(len(refused), 7, "the rest are refused")
    r = refused[0].refused
    check_eq(r.code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], "the refusal's code")
    check(0 < r.retry_after_ms <= 200, f"with a wait: {r.retry_after_ms} ms")
    check_eq(refused[0].client_msg_id, "id-3", "naming the post")
    check(not flood.done, "the stream is still open")

    other = Stream(stub(channel(addr)), "other", metadata=[("chat-room", "limits")])
    other.wait_open()
    other.send(user("calm"), "not slowed")
    other.wait_for(lambda r: any(m.message == "not slowed" for m in r), "another connection's post")

    time.sleep(r.retry_after_ms / 1000 + 0.05)
    flood.send(me, "after the wait")
    flood.wait_for(lambda r: any(m.message == "after the wait" and not m.HasField("refused") for m in r), "a post after the wait")

    ch = channel(addr)
    st = stub(ch)
    codes = []
    for i in range(3):
        call = st.JoinChatRoom(iter([chat_pb2.User(user_id=f"j{i}", room_id="limits")]), timeout=WAIT)
        try:
            list(call)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())
            hint = dict(e.trailing_metadata() or ())
            check("retry-after-ms" in hint and int(hint["retry-after-ms"]) > 0, f"a retry hint: {hint}")
    check_eq(codes[-1], grpc.StatusCode.RESOURCE_EXHAUSTED, "a join over the limit")
    flood.requests.close()
    other.requests.close()


if __name__ == "__main__":
    run(main)
