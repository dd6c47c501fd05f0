"""Several nodes sharing rooms through Redis (bins/tests/cluster.rs runs it
against three chat-server nodes on one redis-server).

    cluster.py ADDR1,ADDR2,ADDR3 ROOM PER_POSTER

1. Presence across nodes: a reader on each node; ann joins on node 1, bob
   on node 2: every reader gets each arrival once. ann joins again on node
   3 (no news); her node 1 connection closes (no news, she is on node 3);
   her node 3 connection closes: every reader gets her departure once.
   bob's answer lists ann while she is anywhere.
2. One order: a poster on each node posts PER_POSTER messages at once, each
   with a client_msg_id. Every reader gets every message exactly once, in
   one order, numbered without gaps; the History RPC of each node holds the
   same.
"""

import threading
import time

import grpc

import chat_pb2
from chatutil import Failure, Requests, channel, check, check_eq, run, stub, user

WAIT = 20.0


def pin(room):
    return (("chat-room", room),)


class Reader(threading.Thread):
    """A JoinChat stream pinned to the room, recording all it receives."""

    def __init__(self, addr, room, name):
        super().__init__(daemon=True, name=name)
        self.ch = channel(addr)
        self.requests = Requests()
        self.call = stub(self.ch).JoinChat(self.requests, metadata=pin(room))
        self.got = []
        self.lock = threading.Lock()
        self.error = None

    def run(self):
        try:
            for m in self.call:
                with self.lock:
                    self.got.append(m)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.got)

    def notices(self):
        return [
            (m.user.user_id, m.presence == chat_pb2.PRESENCE_JOINED)
            for m in self.snapshot()
            if m.presence != chat_pb2.PRESENCE_NONE
        ]

    def messages(self):
        return [m for m in self.snapshot() if m.presence == chat_pb2.PRESENCE_NONE]

    def close(self):
        self.call.cancel()
        self.ch.close()


def wait_for(what, cond):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise Failure(f"timed out waiting for: {what}")


def join(addr, room, u):
    """A connection whose user joins the room (JoinChatRoom, half-closed at
    once as the seed's client does); returns the channel (presence lasts as
    long as it) and the answer."""
    ch = channel(addr)
    answers = list(stub(ch).JoinChatRoom(iter([chat_pb2.User(user_id=u.user_id, username=u.username, room_id=room)]), timeout=WAIT))
    check_eq(len(answers), 1, f"{u.user_id} joins {room} at {addr}")
    return ch, answers[0]


def presence(addrs, room, readers):
    ann, bob = user("ann"), user("bob")
    ann1, _ = join(addrs[0], room, ann)
    wait_for("ann's arrival at every reader", lambda: all(r.notices() == [("ann", True)] for r in readers))
    bob2, answer = join(addrs[1], room, bob)
    check_eq(sorted(u.user_id for u in answer.users), ["ann", "bob"], "bob's answer on node 2 lists ann of node 1")
    want = [("ann", True), ("bob", True)]
    wait_for("bob's arrival at every reader", lambda: all(r.notices() == want for r in readers))
    ann3, _ = join(addrs[2], room, ann)
    ann1.close()
    time.sleep(1.0)
    check(all(r.notices() == want for r in readers), "ann still present (node 3): no notice at any reader")
    ann3.close()
    want.append(("ann", False))
    wait_for("ann's departure at every reader", lambda: all(r.notices() == want for r in readers))
    _, answer = join(addrs[0], room, user("cy"))
    check_eq(sorted(u.user_id for u in answer.users), ["bob", "cy"], "cy's answer on node 1 lists bob of node 2")
    bob2.close()
    time.sleep(0.5)
    for r in readers:
        counts = {}
        for n in r.notices():
            counts[n] = counts.get(n, 0) + 1
        check(all(c == 1 for c in counts.values()), f"{r.name}: every notice once ({r.notices()})")


def poster(addr, room, name, count, failures):
    try:
        ch = channel(addr)
        st = stub(ch)
        requests = Requests()
        call = st.JoinChat(requests, metadata=pin(room))
        me = user(name)
        for i in range(count):
            requests.send(chat_pb2.ChatMessage(user=me, message=f"{name}:{i}", client_msg_id=f"{name}-{i}"))
        requests.close()
        for _ in call:
            pass
        ch.close()
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        failures.append(f"{name}: {e!r}")


def one_order(addrs, room, readers, per_poster):
    failures = []
    threads = [
        threading.Thread(target=poster, args=(addr, room, f"p{i}", per_poster, failures))
        for i, addr in enumerate(addrs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    check_eq(failures, [], "every poster's calls ended OK")
    total = per_poster * len(addrs)
    wait_for(f"{total} messages at every reader", lambda: all(len(r.messages()) >= total for r in readers))
    time.sleep(0.3)
    first = [(m.seq, m.message) for m in readers[0].messages()]
    check_eq(len(first), total, "reader 1 got each message once")
    seqs = [s for s, _ in first]
    check_eq(seqs, list(range(seqs[0], seqs[0] + total)), "numbered without gaps")
    check_eq(sorted(t for _, t in first), sorted(f"p{i}:{k}" for i in range(len(addrs)) for k in range(per_poster)), "every post once")
    for r in readers[1:]:
        check_eq([(m.seq, m.message) for m in r.messages()], first, f"{r.name} got the same order")
    for i, addr in enumerate(addrs):
        ch = channel(addr)
        page = stub(ch).History(chat_pb2.HistoryRequest(room_id=room, limit=1000), timeout=WAIT)
        got = [(m.seq, m.message) for m in page.messages if m.seq >= seqs[0]]
        check_eq(got, first, f"History on node {i + 1} holds the same")
        ch.close()


def main(addrs, room, per_poster):
    addrs = addrs.split(",")
    readers = [Reader(addr, room, f"reader-{i + 1}") for i, addr in enumerate(addrs)]
    for r in readers:
        r.start()
    time.sleep(0.5)
    presence(addrs, room, readers)
    one_order(addrs, room, readers, int(per_poster))
    for r in readers:
        if r.error is not None:
            raise Failure(f"{r.name} ended: {r.error!r}")
        r.close()


if __name__ == "__main__":
    run(main)
