"""Test 5: a client that vanishes mid-stream (a subprocess with an open
JoinChat stream, which stopped reading and is killed with SIGKILL while the
other client's burst flows to it) does not disturb another client, which
keeps sending and receiving.

Run as `vanishing_client.py ADDR` (the test) or `vanishing_client.py ADDR
child` (the client that gets killed).
"""

import os
import signal
import subprocess
import sys
import threading
import time

from chatutil import (
    WAIT,
    Failure,
    Requests,
    Stream,
    channel,
    check,
    check_eq,
    expect_echo,
    message,
    run,
    stub,
    texts,
    user,
)

BURST = 200
# Big enough that the burst overfills the victim's flow-control window.
PAD = "z" * 2000


def child(addr):
    # Die with the parent if it goes: stdin is its pipe.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(3)), daemon=True).start()
    victim = user("victim", "victim")
    requests = Requests()
    call = stub(channel(addr)).JoinChat(requests)
    requests.send(message(victim, "victim here"))
    first = next(call)
    if first.message != "victim here":
        print(f"BAD FIRST MESSAGE {first!r}", flush=True)
        os._exit(2)
    print("READY", flush=True)
    # From here on it reads nothing, so what the server sends it piles up,
    # and it sends now and then, until killed.
    i = 0
    while True:
        time.sleep(0.05)
        requests.send(message(victim, f"victim-{i}"))
        i += 1


def main(addr, mode=None):
    if mode == "child":
        return child(addr)

    survivor = user("survivor", "survivor")
    s = Stream(stub(channel(addr)), "survivor")
    s.wait_open()

    proc = subprocess.Popen(
        [sys.executable, "-u", os.path.abspath(__file__), addr, "child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc, WAIT)
        check_eq(line.strip(), "READY", "the child client has its JoinChat stream open")
        s.wait_text("victim here")
        s.wait_text("victim-1")

        # Send a burst, and kill the child half-way through it.
        def burst():
            for i in range(BURST):
                s.send(survivor, f"burst-{i} {PAD}")
                time.sleep(0.005)

        t = threading.Thread(target=burst)
        t.start()
        s.wait_text(f"burst-{BURST // 3} {PAD}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT)
        check_eq(proc.returncode, -signal.SIGKILL, "the child was killed with SIGKILL")
        t.join(WAIT)
        check(not t.is_alive(), "the burst was sent")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    s.wait_text(f"burst-{BURST - 1} {PAD}")
    bursts = [x for x in texts(s.snapshot()) if x.startswith("burst-")]
    check(
        bursts == [f"burst-{i} {PAD}" for i in range(BURST)],
        "the survivor got its whole burst, in order",
    )

    # Keep going after the kill: the same stream, and new calls.
    for i in range(20):
        s.send(survivor, f"after-{i}")
        s.wait_text(f"after-{i}")
    other = stub(channel(addr))
    expect_echo(other, user("newcomer", "newcomer"), "a newcomer after the kill")
    s.wait_text("a newcomer after the kill")
    s.finish()
    after = [x for x in texts(s.received) if x.startswith("after-")]
    check_eq(after, [f"after-{i}" for i in range(20)], "the survivor kept sending and receiving")
    victims = [x for x in texts(s.received) if x.startswith("victim")]
    print(f"the survivor saw {len(victims)} messages of the victim", flush=True)


def read_line(proc, timeout):
    result = []
    t = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not result or not result[0]:
        raise Failure(f"the child client said nothing within {timeout}s (exit {proc.poll()})")
    return result[0]


if __name__ == "__main__":
    run(main)
