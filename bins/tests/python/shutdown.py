"""The standard health service through grpcio, then a graceful shutdown:
Check and Watch answer SERVING; after SIGTERM the watch hears NOT_SERVING,
a new call is refused with UNAVAILABLE, and an open JoinChat stream ends
with UNAVAILABLE once the server's grace period is over.

Run as `shutdown.py HOST:PORT SERVER_PID`."""

import os
import signal
import time

import grpc

import health_pb2
import health_pb2_grpc
from chatutil import WAIT, Stream, channel, check, check_eq, expect_error, run, stub, user

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def main(addr, pid):
    ch = channel(addr)
    health = health_pb2_grpc.HealthStub(ch)
    for name in ["", "ChatService"]:
        res = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=WAIT)
        check_eq(res.status, SERVING, f"Check({name!r}) is SERVING")
    expect_error(
        lambda: health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=WAIT),
        grpc.StatusCode.NOT_FOUND,
        "Check of an unknown service",
    )
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
    check_eq(next(watch).status, SERVING, "Watch starts with SERVING")

    stream = Stream(stub(ch), "open stream")
    stream.wait_open()
    stream.send(user("u1"), "before shutdown")
    stream.wait_text("before shutdown")

    began = time.monotonic()
    os.kill(int(pid), signal.SIGTERM)
    check_eq(next(watch).status, NOT_SERVING, "Watch hears NOT_SERVING after SIGTERM")
    # New calls: refused by the server while it drains, or by the closed
    # listener if grpcio has taken the GOAWAY and reconnects.
    expect_error(
        lambda: health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT),
        grpc.StatusCode.UNAVAILABLE,
        "a new call on the old channel during shutdown",
    )
    late = channel(addr)
    expect_error(
        lambda: health_pb2_grpc.HealthStub(late).Check(health_pb2.HealthCheckRequest(), timeout=WAIT),
        grpc.StatusCode.UNAVAILABLE,
        "a call on a new channel during shutdown",
    )
    late.close()
    check(stream.done is False, "the open stream is still open during the grace period")
    stream.wait_done()
    took = time.monotonic() - began
    check(stream.error is not None, "the open stream ended with an error")
    check_eq(stream.error.code(), grpc.StatusCode.UNAVAILABLE, "the open stream ends UNAVAILABLE")
    print(f"   stream ended {took:.2f} s after SIGTERM: {stream.error.details()!r}", flush=True)
    check(took < WAIT, "within the grace period and a little")
    expect_error(lambda: next(watch), grpc.StatusCode.UNAVAILABLE, "the watch ends UNAVAILABLE")
    ch.close()


if __name__ == "__main__":
    run(main)
