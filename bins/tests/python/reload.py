"""Live config (SIGHUP) through grpcio; bins/tests/reload.rs rewrites the
config file and sends the signals.

    reload.py HOST:PORT withdrawn READY_FILE
    reload.py HOST:PORT still

withdrawn: bob streams in "staff" (the first config lets him read it),
touches READY_FILE, and his stream must then end with PERMISSION_DENIED
("permission to read staff was withdrawn") once the test has taken him out
of staff's readers and sent SIGHUP; alice's stream there goes on and hears
bob's session leave. still: after a broken file and another SIGHUP, the
reloaded config is still in force: alice's token works and she posts in
staff, bob is still refused there.
"""

import grpc

import chat_pb2
from chatutil import WAIT, Stream, channel, check, check_eq, run, stub

ALICE = [("authorization", "Bearer alice-secret-token")]
BOB = [("authorization", "Bearer bob-secret-token")]


def join_staff(ch, token):
    """Joins staff on this connection (a session: presence)."""
    req = iter([chat_pb2.User(room_id="staff")])
    replies = list(stub(ch).JoinChatRoom(req, metadata=token, timeout=WAIT))
    check_eq(replies[0].room_id, "staff", "joined staff")


def withdrawn(addr, ready_file):
    alice_ch = channel(addr)
    join_staff(alice_ch, ALICE)
    alice = Stream(stub(alice_ch), "alice", metadata=ALICE + [("chat-room", "staff")])
    alice.wait_open()
    bob_ch = channel(addr)
    join_staff(bob_ch, BOB)
    bob = Stream(stub(bob_ch), "bob", metadata=BOB + [("chat-room", "staff")])
    bob.wait_open()
    bob.send(chat_pb2.User(), "before the reload")
    alice.wait_text("before the reload")
    with open(ready_file, "w") as f:
        f.write("streaming\n")
    print("streaming; waiting for the reload", flush=True)
    bob.wait_for(lambda r: bob.done, "bob's stream to end on the reload", timeout=30)
    check(bob.error is not None, "bob's stream ended with an error")
    check_eq(bob.error.code(), grpc.StatusCode.PERMISSION_DENIED, "bob's stream ends")
    check_eq(bob.error.details(), "permission to read staff was withdrawn", "with the reason")
    alice.wait_for(lambda r: ("bob", False) in alice.notices(), "staff to hear bob's session leave")
    check(not alice.done, "alice's stream goes on")
    alice.send(chat_pb2.User(), "after the reload")
    alice.wait_text("after the reload")
    alice.call.cancel()


def still(addr):
    ch = channel(addr)
    alice = Stream(stub(ch), "alice", metadata=ALICE + [("chat-room", "staff")])
    alice.wait_open()
    alice.send(chat_pb2.User(), "the old config stands")
    alice.wait_text("the old config stands")
    check(not alice.done, "alice's token and her place in staff still work")
    alice.call.cancel()
    bob = Stream(stub(channel(addr)), "bob", metadata=BOB + [("chat-room", "staff")])
    bob.wait_for(lambda r: bob.done, "bob to be refused")
    check_eq(bob.error.code(), grpc.StatusCode.PERMISSION_DENIED, "bob may still not read staff")


def main(addr, mode, *rest):
    if mode == "withdrawn":
        return withdrawn(addr, *rest)
    if mode == "still":
        return still(addr)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    run(main)
