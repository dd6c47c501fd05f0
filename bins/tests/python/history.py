"""Test 6: JoinChatRoom history. After 60 messages, a user who joins gets at
least the last 50, oldest first, ending with the most recent."""

import grpc

from chatutil import WAIT, channel, check, check_eq, message, run, stub, texts, user

COUNT = 60


def main(addr):
    st = stub(channel(addr))
    poster = user("poster", "poster")
    sent = [f"msg-{i:02}" for i in range(COUNT)]
    # All on one stream, half-closed after the last.
    call = st.JoinChat(iter([message(poster, t) for t in sent]), timeout=WAIT)
    echoed = list(call)
    check_eq(call.code(), grpc.StatusCode.OK, "the posting stream ends OK")
    check_eq(texts(echoed), sent, "every message was echoed, in order")

    joiner = stub(channel(addr))
    rooms = list(joiner.JoinChatRoom(iter([user("late", "late")]), timeout=WAIT))
    check_eq(len(rooms), 1, "one ChatRoom for one User")
    history = texts(rooms[0].history)
    print(f"history has {len(history)} messages: {history[0] if history else None} .. "
          f"{history[-1] if history else None}", flush=True)
    check(len(history) >= 50, f"at least the last 50 messages ({len(history)})")
    check_eq(history, sent[COUNT - len(history):], "history is the most recent messages, oldest first")
    check_eq(history[-1], sent[-1], "history ends with the most recent message")
    check(all(m.user == poster for m in rooms[0].history), "history keeps the sender")


if __name__ == "__main__":
    run(main)
