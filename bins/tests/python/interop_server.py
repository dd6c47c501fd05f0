"""grpcio as gRPC's interop server (doc/interop-test-descriptions.md in
grpc/grpc), for our `seed-client interop`: `grpc.testing.TestService` on
HOST:PORT until killed. Run: interop_server.py HOST:PORT.

A grpcio servicer does not see a request message's compressed flag, so
this server cannot refuse by `expect_compressed` (CompressedRequest); it
compresses responses per message with set_compression and
disable_next_message_compression (CompressedResponse).
"""

import os
import sys
import threading
import time
from concurrent import futures

import grpc

from interop_pb import empty, messages, test_grpc

M = messages
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
# pick_first_unary's SimpleResponse.server_id.
SERVER_ID = f"grpcio-interop-server#{os.getpid()}"


def echo_metadata(context):
    md = context.invocation_metadata()
    initial = tuple((k, v) for k, v in md if k == ECHO_INITIAL)
    if initial:
        context.send_initial_metadata(initial)
    trailing = tuple((k, v) for k, v in md if k == ECHO_TRAILING)
    if trailing:
        context.set_trailing_metadata(trailing)


def echo_status(status, context):
    if status.code != 0:
        context.abort(grpc.StatusCode(next(c.value for c in grpc.StatusCode if c.value[0] == status.code)), status.message)


def zeros(n):
    return M.Payload(body=b"\0" * n)


class TestService(test_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo_metadata(context)
        return empty.Empty()

    def UnaryCall(self, request, context):
        echo_metadata(context)
        echo_status(request.response_status, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        server_id = SERVER_ID if request.fill_server_id else ""
        return M.SimpleResponse(payload=zeros(request.response_size), server_id=server_id)

    def _respond(self, request, context):
        echo_status(request.response_status, context)
        for p in request.response_parameters:
            if p.interval_us > 0:
                time.sleep(p.interval_us / 1e6)
            if p.compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            else:
                context.disable_next_message_compression()
            yield M.StreamingOutputCallResponse(payload=zeros(p.size))

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        yield from self._respond(request, context)

    def StreamingInputCall(self, request_iterator, context):
        echo_metadata(context)
        total = sum(len(r.payload.body) for r in request_iterator)
        return M.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for request in request_iterator:
            yield from self._respond(request, context)

    def HalfDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for request in list(request_iterator):
            yield from self._respond(request, context)


def main(addr):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    test_grpc.add_TestServiceServicer_to_server(TestService(), server)
    server.add_insecure_port(addr)
    server.start()
    print(f"interop_server listening on {addr}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
