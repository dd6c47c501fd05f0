"""TLS through grpcio: the server runs with --tls-cert/--tls-key (a fresh
self-signed certificate for localhost and 127.0.0.1); a grpcio client
trusting it joins and chats over TLS, by name and by address; one that
trusts nothing else is refused, and a plaintext client gets UNAVAILABLE."""

import grpc

import chat_pb2
from chatutil import WAIT, Stream, check_eq, expect_echo, expect_error, run, stub, user

OPTIONS = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_http_proxy", 0)]


def secure(target, ca_pem):
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(target, creds, options=OPTIONS)


def main(addr, ca_path):
    port = addr.rsplit(":", 1)[1]
    with open(ca_path, "rb") as f:
        ca_pem = f.read()

    by_name = stub(secure(f"localhost:{port}", ca_pem))
    req = chat_pb2.User(user_id="tls", username="tls", room_id="room1")
    rooms = list(by_name.JoinChatRoom(iter([req]), timeout=WAIT))
    check_eq([r.room_id for r in rooms], ["room1"], "JoinChatRoom over TLS")
    listener = Stream(by_name, "listener over TLS")
    listener.wait_open()
    expect_echo(by_name, user("tls"), "over TLS, by name")
    expect_echo(stub(secure(f"127.0.0.1:{port}", ca_pem)), user("tls"), "over TLS, by address")
    listener.wait_count(2)
    listener.finish()

    # A client that trusts nothing of ours (the system's roots) refuses.
    untrusting = stub(grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(), options=OPTIONS))
    expect_error(
        lambda: expect_echo(untrusting, user("tls"), "untrusted"),
        grpc.StatusCode.UNAVAILABLE,
        "a client that does not trust the certificate",
    )
    # Plaintext HTTP/2 on the TLS port.
    plain = stub(grpc.insecure_channel(addr, options=OPTIONS))
    expect_error(
        lambda: list(plain.JoinChat(iter([chat_pb2.ChatMessage(user=user("tls"), message="plain")]), timeout=5)),
        grpc.StatusCode.UNAVAILABLE,
        "plaintext on the TLS port",
    )
    expect_echo(by_name, user("tls"), "still served")


if __name__ == "__main__":
    run(main)
