"""Test 2: seed 001's threaded client, twice at once.

Two grpcio clients (each its own channel and TCP connection) hold one
long-lived JoinChat stream each, fed by a queue-backed request iterator from
a sender thread and read by a reader thread. Both send at the same time.
Each must receive every message of both, its own included, each sender's in
the order sent, and both must see the same total order.
"""

import random
import threading

from chatutil import Failure, Stream, channel, check, check_eq, run, stub, texts, user

PER_CLIENT = 25


def main(addr):
    names = ["a", "b"]
    users = {n: user(f"user-{n}", n) for n in names}
    streams = {}
    channels = []
    for n in names:
        ch = channel(addr)
        channels.append(ch)
        s = Stream(stub(ch), f"client {n}")
        s.wait_open()
        # Its own hello coming back shows the stream is in the room, so the
        # other client's messages from here on reach it too.
        s.send(users[n], f"hello from {n}")
        s.wait_text(f"hello from {n}")
        streams[n] = s
    streams["a"].wait_text("hello from b")

    start = threading.Barrier(len(names))
    errors = []

    def sender(n):
        try:
            rng = random.Random(n)
            start.wait(timeout=10)
            for i in range(PER_CLIENT):
                streams[n].send(users[n], f"{n}-{i}")
                if rng.random() < 0.3:
                    threading.Event().wait(rng.random() * 0.005)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise Failure(f"sender failed: {errors!r}")

    expected = {f"{n}-{i}" for n in names for i in range(PER_CLIENT)}
    orders = {}
    for n in names:
        s = streams[n]
        s.wait_for(lambda r: expected <= set(texts(r)), "receiving every message of both")
        got = [m for m in s.snapshot() if m.message in expected]
        check_eq(len(got), len(expected), f"client {n}: each message received exactly once")
        for m in got:
            sender_name = m.message.split("-")[0]
            if m.user != users[sender_name]:
                raise Failure(f"client {n}: {m.message!r} came with user {m.user!r}")
        for other in names:
            mine = [t for t in texts(got) if t.startswith(f"{other}-")]
            check_eq(
                mine,
                [f"{other}-{i}" for i in range(PER_CLIENT)],
                f"client {n}: {other}'s messages arrive in the order sent",
            )
        orders[n] = texts(got)
    check(orders["a"] == orders["b"], "both clients see the same total order")
    interleaved = sum(1 for x, y in zip(orders["a"], orders["a"][1:]) if x[0] != y[0])
    print(f"order switches sender {interleaved} times", flush=True)

    for n in names:
        streams[n].finish()
        extra = [t for t in texts(streams[n].received) if t not in expected]
        want_extra = ["hello from a", "hello from b"] if n == "a" else ["hello from b"]
        check_eq(extra, want_extra, f"client {n}: nothing else was received")
    for ch in channels:
        ch.close()


if __name__ == "__main__":
    run(main)
