"""Test 4: bad input through grpcio gets the right status, and the server
keeps serving normal clients afterwards (on the same channel and a new one).
"""

import time

import grpc

from chatutil import (
    WAIT,
    Stream,
    channel,
    check,
    check_eq,
    expect_echo,
    expect_error,
    message,
    run,
    stub,
    user,
)

MIB = 1024 * 1024


def raw_call(ch, path):
    """A stream-stream call on `path` with identity serializers: the
    requests are sent as given bytes."""
    return ch.stream_stream(path, request_serializer=None, response_deserializer=None)


def still_works(addr, ch, step):
    u = user("healthy", "healthy")
    expect_echo(stub(ch), u, f"after {step}: same channel")
    fresh = channel(addr)
    expect_echo(stub(fresh), u, f"after {step}: new channel")
    fresh.close()


def unknown_method(addr):
    ch = channel(addr)
    call = raw_call(ch, "/ChatService/Nope")
    expect_error(lambda: list(call(iter([b""]), timeout=WAIT)), grpc.StatusCode.UNIMPLEMENTED,
                 "unknown method /ChatService/Nope")
    call = raw_call(ch, "/chat.ChatService/JoinChat")
    expect_error(lambda: list(call(iter([b""]), timeout=WAIT)), grpc.StatusCode.UNIMPLEMENTED,
                 "JoinChat under a package name the proto does not have")
    still_works(addr, ch, "unknown method")
    ch.close()


def malformed(addr):
    ch = channel(addr)
    join_chat = raw_call(ch, "/ChatService/JoinChat")
    expect_error(lambda: list(join_chat(iter([b"\xff\xff\xff"]), timeout=WAIT)),
                 grpc.StatusCode.INTERNAL, "malformed ChatMessage on JoinChat")
    join_room = raw_call(ch, "/ChatService/JoinChatRoom")
    expect_error(lambda: list(join_room(iter([b"\xff\xff\xff"]), timeout=WAIT)),
                 grpc.StatusCode.INTERNAL, "malformed User on JoinChatRoom")
    still_works(addr, ch, "malformed protobuf")
    ch.close()


def too_large(addr):
    # grpcio refuses to send over 4 MiB itself unless told otherwise.
    ch = channel(addr, max_send_message_length=64 * MIB)
    big = message(user("big", "big"), "x" * (4 * MIB + 1))
    st = stub(ch)
    expect_error(lambda: list(st.JoinChat(iter([big]), timeout=WAIT)),
                 grpc.StatusCode.RESOURCE_EXHAUSTED, "a message over 4 MiB")
    still_works(addr, ch, "a message over 4 MiB")
    ch.close()


def text_too_long(addr):
    # Within the transport limit but over the chat's 16 KiB text limit.
    ch = channel(addr)
    st = stub(ch)
    long_text = message(user("long", "long"), "y" * (16 * 1024 + 1))
    expect_error(lambda: list(st.JoinChat(iter([long_text]), timeout=WAIT)),
                 grpc.StatusCode.INVALID_ARGUMENT, "chat text over 16 KiB")
    still_works(addr, ch, "chat text over 16 KiB")
    ch.close()


def deadline(addr):
    ch = channel(addr)
    began = time.monotonic()
    idle = Stream(stub(ch), "idle stream with timeout=0.3", timeout=0.3)
    idle.wait_done()
    took = time.monotonic() - began
    # Let the request iterator's thread go.
    idle.requests.close()
    check(idle.error is not None, "the idle stream ended with an error")
    check_eq(idle.error.code(), grpc.StatusCode.DEADLINE_EXCEEDED, "idle JoinChat with timeout=0.3")
    check(took < 5.0, f"it ended soon after the deadline ({took:.2f}s)")
    still_works(addr, ch, "a deadline")
    ch.close()


def main(addr):
    for case in (unknown_method, malformed, too_large, text_too_long, deadline):
        print(f"--- {case.__name__}", flush=True)
        case(addr)


if __name__ == "__main__":
    run(main)
