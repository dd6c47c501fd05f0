"""Tokens from an identity provider (JWT) through grpcio; bins/tests/jwt.rs
writes the config and makes the tokens.

    jwt.py HOST:PORT GOOD EXPIRED FORGED NO_ROLE

GOOD (sub zed, name Zed, role ops) posts in "ops", a room granted to the
role only, and gets the message back under the token's id and name;
NO_ROLE (a valid token without the role) is refused there with
PERMISSION_DENIED; EXPIRED and FORGED (signed with another secret) get
UNAUTHENTICATED saying why; alice's static token still works beside them.
"""

import grpc

import chat_pb2
from chatutil import WAIT, Stream, channel, check, check_eq, run, stub


def bearer(token):
    return [("authorization", f"Bearer {token}")]


def refused(addr, token, room="ops"):
    s = Stream(stub(channel(addr)), "refused", metadata=bearer(token) + [("chat-room", room)])
    s.wait_for(lambda r: s.done, "the stream to be refused")
    check(s.error is not None, "refused with an error")
    return s.error


def main(addr, good, expired, forged, no_role):
    zed = Stream(stub(channel(addr)), "zed", metadata=bearer(good) + [("chat-room", "ops")])
    zed.wait_open()
    zed.send(chat_pb2.User(), "hello from a JWT")
    zed.wait_text("hello from a JWT")
    m = next(m for m in zed.chat() if m.message == "hello from a JWT")
    check_eq((m.user.user_id, m.user.username), ("zed", "Zed"), "posted under the token's sub and name")

    e = refused(addr, expired)
    check_eq(e.code(), grpc.StatusCode.UNAUTHENTICATED, "an expired token")
    check_eq(e.details(), "invalid token: the token has expired", "says why")
    e = refused(addr, forged)
    check_eq(e.code(), grpc.StatusCode.UNAUTHENTICATED, "a forged token")
    check_eq(e.details(), "invalid token: bad signature", "says why")
    e = refused(addr, no_role)
    check_eq(e.code(), grpc.StatusCode.PERMISSION_DENIED, "a valid token without the role")

    alice = Stream(stub(channel(addr)), "alice", metadata=bearer("alice-secret-token") + [("chat-room", "ops")])
    alice.wait_open()
    alice.send(chat_pb2.User(), "static tokens still work")
    alice.wait_text("static tokens still work")
    zed.wait_text("static tokens still work")
    alice.call.cancel()
    zed.call.cancel()


if __name__ == "__main__":
    run(main)
