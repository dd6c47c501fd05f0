"""grpcio as gRPC's interop client (doc/interop-test-descriptions.md in
grpc/grpc) against our `seed-server interop`: every case grpcio can drive.

grpcio compresses a whole call or nothing, and does not show a message's
compressed flag: client_compressed_* send every message compressed, and
server_compressed_* check sizes only. Run: interop_client.py HOST:PORT.
"""

import threading
import time

import grpc

from chatutil import channel, check, check_eq, run
from interop_pb import empty, messages, test_grpc

M = messages
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")


def zeros(n):
    return M.Payload(body=b"\0" * n)


def large_request(**kw):
    return M.SimpleRequest(response_size=314159, payload=zeros(271828), **kw)


def expect_code(f, code, what):
    try:
        f()
    except grpc.RpcError as e:
        check_eq(e.code(), code, what)
        return e
    raise AssertionError(f"{what}: succeeded, want {code}")


def empty_unary(stub):
    check_eq(stub.EmptyCall(empty.Empty()), empty.Empty(), "empty_unary")


def large_unary(stub):
    check_eq(len(stub.UnaryCall(large_request()).payload.body), 314159, "large_unary")


def client_compressed_unary(stub):
    probe = large_request(expect_compressed=M.BoolValue(value=True))
    expect_code(lambda: stub.UnaryCall(probe), grpc.StatusCode.INVALID_ARGUMENT, "uncompressed probe refused")
    res = stub.UnaryCall(probe, compression=grpc.Compression.Gzip)
    check_eq(len(res.payload.body), 314159, "client_compressed_unary, compressed")
    res = stub.UnaryCall(large_request(expect_compressed=M.BoolValue(value=False)))
    check_eq(len(res.payload.body), 314159, "client_compressed_unary, plain")


def server_compressed_unary(stub):
    for flag in (True, False):
        res = stub.UnaryCall(large_request(response_compressed=M.BoolValue(value=flag)))
        check_eq(len(res.payload.body), 314159, f"server_compressed_unary, response_compressed={flag}")


def client_streaming(stub):
    reqs = [M.StreamingInputCallRequest(payload=zeros(n)) for n in (27182, 8, 1828, 45904)]
    check_eq(stub.StreamingInputCall(iter(reqs)).aggregated_payload_size, 74922, "client_streaming")


def client_compressed_streaming(stub):
    yes = M.BoolValue(value=True)
    probe = [M.StreamingInputCallRequest(payload=zeros(27182), expect_compressed=yes)]
    expect_code(lambda: stub.StreamingInputCall(iter(probe)), grpc.StatusCode.INVALID_ARGUMENT, "uncompressed probe refused")
    reqs = [M.StreamingInputCallRequest(payload=zeros(n), expect_compressed=yes) for n in (27182, 45904)]
    res = stub.StreamingInputCall(iter(reqs), compression=grpc.Compression.Gzip)
    check_eq(res.aggregated_payload_size, 73086, "client_compressed_streaming")


def params(*sizes, interval_us=0, compressed=None):
    return [
        M.ResponseParameters(size=s, interval_us=interval_us, compressed=None if compressed is None else M.BoolValue(value=compressed[i]))
        for i, s in enumerate(sizes)
    ]


def server_streaming(stub):
    req = M.StreamingOutputCallRequest(response_parameters=params(31415, 9, 2653, 58979))
    sizes = [len(r.payload.body) for r in stub.StreamingOutputCall(req)]
    check_eq(sizes, [31415, 9, 2653, 58979], "server_streaming")


def server_compressed_streaming(stub):
    req = M.StreamingOutputCallRequest(response_parameters=params(31415, 92653, compressed=[True, False]))
    sizes = [len(r.payload.body) for r in stub.StreamingOutputCall(req)]
    check_eq(sizes, [31415, 92653], "server_compressed_streaming")


def intervals(stub):
    """Observe ResponseParameters.interval_us: three responses 100 ms apart."""
    req = M.StreamingOutputCallRequest(response_parameters=params(1, 2, 3, interval_us=100_000))
    began = time.monotonic()
    times = [time.monotonic() - began for _ in stub.StreamingOutputCall(req)]
    check_eq(len(times), 3, "three responses")
    check(times[0] >= 0.09 and times[2] >= 0.29, f"responses spaced by interval_us: {times}")


class Pinger:
    """Requests for a bidi call, one at a time, sent when asked."""

    def __init__(self):
        self.cond = threading.Condition()
        self.items = []
        self.done = False

    def send(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify()

    def close(self):
        with self.cond:
            self.done = True
            self.cond.notify()

    def __iter__(self):
        return self

    def __next__(self):
        with self.cond:
            while not self.items and not self.done:
                self.cond.wait()
            if self.items:
                return self.items.pop(0)
            raise StopIteration


def ping_pong(stub):
    reqs = Pinger()
    call = stub.FullDuplexCall(reqs)
    for size, body in zip((31415, 9, 2653, 58979), (27182, 8, 1828, 45904)):
        reqs.send(M.StreamingOutputCallRequest(response_parameters=params(size), payload=zeros(body)))
        check_eq(len(next(call).payload.body), size, f"ping_pong reply of {size}")
    reqs.close()
    check_eq(list(call), [], "no more replies")
    check_eq(call.code(), grpc.StatusCode.OK, "ping_pong OK")


def empty_stream(stub):
    check_eq(list(stub.FullDuplexCall(iter([]))), [], "empty_stream")


def custom_metadata(stub):
    md = (ECHO_INITIAL, ECHO_TRAILING)
    res, call = stub.UnaryCall.with_call(large_request(), metadata=md)
    check_eq(len(res.payload.body), 314159, "UnaryCall payload")
    check(ECHO_INITIAL in call.initial_metadata(), "UnaryCall echoes initial metadata")
    check(ECHO_TRAILING in call.trailing_metadata(), "UnaryCall echoes binary trailing metadata")
    req = M.StreamingOutputCallRequest(response_parameters=params(314159), payload=zeros(271828))
    call = stub.FullDuplexCall(iter([req]), metadata=md)
    check_eq([len(r.payload.body) for r in call], [314159], "FullDuplexCall payload")
    check(ECHO_INITIAL in call.initial_metadata(), "FullDuplexCall echoes initial metadata")
    check(ECHO_TRAILING in call.trailing_metadata(), "FullDuplexCall echoes binary trailing metadata")


def echo_status(stub, message):
    status = M.EchoStatus(code=2, message=message)
    e = expect_code(lambda: stub.UnaryCall(M.SimpleRequest(response_status=status)), grpc.StatusCode.UNKNOWN, "UnaryCall status")
    check_eq(e.details(), message, "UnaryCall status message")
    req = M.StreamingOutputCallRequest(response_status=status)
    e = expect_code(lambda: list(stub.FullDuplexCall(iter([req]))), grpc.StatusCode.UNKNOWN, "FullDuplexCall status")
    check_eq(e.details(), message, "FullDuplexCall status message")


def unimplemented(ch, path):
    call = ch.unary_unary(path, request_serializer=empty.Empty.SerializeToString, response_deserializer=empty.Empty.FromString)
    expect_code(lambda: call(empty.Empty()), grpc.StatusCode.UNIMPLEMENTED, path)


def cancel_after_begin(stub):
    reqs = Pinger()
    future = stub.StreamingInputCall.future(reqs)
    future.cancel()
    reqs.close()
    check(future.cancelled(), "cancel_after_begin: cancelled")
    check_eq(future.code(), grpc.StatusCode.CANCELLED, "cancel_after_begin")


def cancel_after_first_response(stub):
    reqs = Pinger()
    call = stub.FullDuplexCall(reqs)
    reqs.send(M.StreamingOutputCallRequest(response_parameters=params(31415), payload=zeros(27182)))
    check_eq(len(next(call).payload.body), 31415, "first response")
    call.cancel()
    reqs.close()
    check_eq(call.code(), grpc.StatusCode.CANCELLED, "cancel_after_first_response")


def timeout_on_sleeping_server(stub):
    reqs = Pinger()
    call = stub.FullDuplexCall(reqs, timeout=0.001)
    reqs.send(M.StreamingOutputCallRequest(payload=zeros(27182)))
    expect_code(lambda: list(call), grpc.StatusCode.DEADLINE_EXCEEDED, "timeout_on_sleeping_server")
    reqs.close()


def pick_first_unary(stub):
    req = M.SimpleRequest(response_size=1, payload=zeros(1), fill_server_id=True)
    ids = {stub.UnaryCall(req, timeout=10).server_id for _ in range(100)}
    check(len(ids) == 1 and "" not in ids, f"pick_first_unary: one non-empty server_id, got {ids}")


def main(addr):
    ch = channel(addr)
    stub = test_grpc.TestServiceStub(ch)
    for case in (
        empty_unary, large_unary, client_compressed_unary, server_compressed_unary,
        client_streaming, client_compressed_streaming, server_streaming,
        server_compressed_streaming, intervals, ping_pong, empty_stream, custom_metadata,
    ):
        case(stub)
    echo_status(stub, "test status message")
    echo_status(stub, SPECIAL)
    unimplemented(ch, "/grpc.testing.TestService/UnimplementedCall")
    unimplemented(ch, "/grpc.testing.UnimplementedService/UnimplementedCall")
    cancel_after_begin(stub)
    cancel_after_first_response(stub)
    timeout_on_sleeping_server(stub)
    pick_first_unary(stub)
    ch.close()


if __name__ == "__main__":
    run(main)
