"""Test 3: a JoinChat stream that never sends still receives broadcasts, and
after its half-close gets everything broadcast before it, then OK."""

from chatutil import Stream, channel, check_eq, expect_echo, run, stub, texts, user

FIRST = [f"first-{i}" for i in range(3)]
SECOND = [f"second-{i}" for i in range(5)]


def main(addr):
    listener = Stream(stub(channel(addr)), "silent listener")
    # Response headers come once the server has registered the stream.
    listener.wait_open()

    talker = stub(channel(addr))
    poster = user("talker", "talker")
    for text in FIRST:
        expect_echo(talker, poster, text)
    listener.wait_count(len(FIRST))
    check_eq(texts(listener.snapshot()), FIRST, "a stream that never sent receives the broadcasts")
    check_eq(listener.done, False, "the silent stream is still open")

    # Broadcast more; each echo to the talker shows it was broadcast, so all
    # of it is broadcast before the listener half-closes.
    for text in SECOND:
        expect_echo(talker, poster, text)
    listener.finish()
    check_eq(
        texts(listener.received),
        FIRST + SECOND,
        "after half-close: everything broadcast before it, in order, then OK",
    )
    check_eq(
        all(m.user == poster for m in listener.received), True, "messages keep their sender"
    )


if __name__ == "__main__":
    run(main)
