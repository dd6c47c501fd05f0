"""Server keepalive through grpcio (the server runs with a 100 ms keepalive
time): a quiet grpcio client answers the server's pings and stays in its
room for many keepalive periods; one whose network is cut (a TCP proxy that
stops forwarding and closes nothing) is dropped, and the room hears it
leave."""

import socket
import threading
import time

import grpc

import chat_pb2
from chatutil import Stream, WAIT, channel, check_eq, expect_echo, run, stub, user


class CuttableProxy:
    """Forwards one TCP connection to `target` until cut(); then forwards
    nothing more either way and keeps both sockets open."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.is_cut = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            data = src.recv(65536)
            if not data:
                return
            if self.is_cut.is_set():
                return  # hold both sockets open, forward nothing
            dst.sendall(data)

    def cut(self):
        self.is_cut.set()


def join(st, user_id):
    """JoinChatRoom into room1; the presence lasts as long as the connection."""
    req = chat_pb2.User(user_id=user_id, username=user_id, room_id="room1")
    replies = list(st.JoinChatRoom(iter([req]), timeout=WAIT))
    check_eq([r.room_id for r in replies], ["room1"], f"{user_id} joined room1")


def main(addr):
    watcher_stub = stub(channel(addr))
    join(watcher_stub, "watcher")
    watch = Stream(watcher_stub, "watcher", metadata=[("chat-room", "room1")])
    watch.wait_open()

    quiet = stub(channel(addr))
    join(quiet, "quiet")
    proxy = CuttableProxy(addr)
    far = stub(channel(proxy.addr))
    join(far, "far")
    watch.wait_for(lambda r: ("far", True) in watch.notices(), "far's join notice")

    # Twenty keepalive periods without a byte from either client.
    time.sleep(2.0)
    expect_echo(stub(channel(addr)), user("talker"), "still here?")
    watch.wait_text("still here?")
    check_eq(
        [n for n in watch.notices() if not n[1]], [], "no one left while quiet but connected"
    )

    proxy.cut()
    watch.wait_for(lambda r: ("far", False) in watch.notices(), "far's leave notice", timeout=WAIT)
    check_eq([n for n in watch.notices() if not n[1]], [("far", False)], "only far left")
    # The quiet client's connection still works.
    expect_echo(quiet, user("quiet"), "and me")


if __name__ == "__main__":
    run(main)
