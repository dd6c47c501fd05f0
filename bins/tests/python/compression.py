"""Compression through grpcio: channels made with
`compression=grpc.Compression.Gzip` and `...Deflate` compress every request
(grpc-encoding), and call Health/Check, JoinChat (one message per call, and
a stream that sends and hears) and JoinChatRoom (whose history holds the
long text); a plain channel hears the compressed channels' messages.

Run as `compression.py HOST:PORT`. The server may compress its responses
(`--compress-min-bytes`) or not: grpcio inflates them either way, so the
checks are the same."""

import grpc

import health_pb2
import health_pb2_grpc
from chatutil import Stream, WAIT, channel, check, check_eq, expect_echo, run, stub, user


def main(addr):
    plain = channel(addr)
    listener = Stream(stub(plain), "plain listener")
    listener.wait_open()
    for name, algo in [("gzip", grpc.Compression.Gzip), ("deflate", grpc.Compression.Deflate)]:
        ch = channel(addr, compression=algo)
        res = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
        check_eq(res.status, health_pb2.HealthCheckResponse.SERVING, f"{name}: Check is SERVING")

        st = stub(ch)
        u = user(f"{name}-poster", f"{name}-poster")
        # Long and repetitive, so compression shrinks it (grpcio sends a
        # message plain when compressing does not help).
        long_text = f"{name} squeezes well. " * 400
        expect_echo(st, u, long_text)
        expect_echo(st, u, f"{name}: short")

        stream = Stream(st, f"{name} stream")
        stream.wait_open()
        stream.send(u, f"{name} on a stream " * 50)
        stream.wait_text(f"{name} on a stream " * 50)
        stream.finish()
        listener.wait_text(long_text)
        listener.wait_text(f"{name} on a stream " * 50)

        rooms = list(st.JoinChatRoom(iter([user(f"{name}-joiner")]), timeout=WAIT))
        check_eq(len(rooms), 1, f"{name}: JoinChatRoom answers one ChatRoom")
        history = [m.message for m in rooms[0].history]
        check(long_text in history, f"{name}: the room's history holds the long text")
        ch.close()
    listener.finish()
    plain.close()


if __name__ == "__main__":
    run(main)
