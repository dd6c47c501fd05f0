"""Helpers of the grpcio interop scripts (bins/tests/grpcio.rs runs them).

Each script is run as `python script.py HOST:PORT [args...]` with the
stubs generated from proto/chat.proto (chat_pb2, chat_pb2_grpc) on
PYTHONPATH. It prints what it does and exits 0 only if every check passed.
"""

import os
import queue
import sys
import threading
import traceback

import grpc

import chat_pb2
import chat_pb2_grpc

# Longest wait for anything the server should do promptly.
WAIT = 15.0


class Failure(Exception):
    """A check failed."""


def check(cond, what):
    if not cond:
        raise Failure(what)
    print(f"ok: {what}", flush=True)


def check_eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}", flush=True)


def run(main):
    """Calls main(addr, *rest) with the command line; exits 0 if it
    returned, 1 if it raised. os._exit skips interpreter shutdown, which
    can hang on grpc threads still blocked in request iterators."""
    try:
        main(sys.argv[1], *sys.argv[2:])
    except BaseException:  # noqa: BLE001 - report everything, then fail
        traceback.print_exc()
        print("FAIL", flush=True)
        sys.stderr.flush()
        os._exit(1)
    print("PASS", flush=True)
    sys.stderr.flush()
    os._exit(0)


def channel(addr, compression=None, **options):
    """A channel of its own: its own TCP connection (grpcio otherwise shares
    one connection between channels to the same target), no proxy.
    `compression` (a grpc.Compression) compresses every request."""
    opts = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_http_proxy", 0)]
    opts += [(f"grpc.{k}", v) for k, v in options.items()]
    return grpc.insecure_channel(addr, options=opts, compression=compression)


def stub(ch):
    return chat_pb2_grpc.ChatServiceStub(ch)


def user(user_id, username=None):
    return chat_pb2.User(user_id=user_id, username=username or f"name-{user_id}")


def message(u, text):
    return chat_pb2.ChatMessage(user=u, message=text)


def texts(msgs):
    return [m.message for m in msgs]


def as_sent(m):
    """A delivered message without what the server adds on delivery (room,
    number, time), to compare with what was sent. Checks they were added."""
    check_server_fields(m)
    return chat_pb2.ChatMessage(user=m.user, message=m.message)


def check_server_fields(m):
    if not (m.room_id and m.seq > 0 and m.timestamp_us > 0):
        raise Failure(f"a delivered message lacks its room, number or time: {m!r}")


def round_trip(st, u, text):
    """The seed 000 client's way of sending: one JoinChat call per message,
    half-closed at once. Returns the replies; checks the call ended OK."""
    call = st.JoinChat(iter([message(u, text)]), timeout=WAIT)
    replies = list(call)
    check_eq(call.code(), grpc.StatusCode.OK, f"JoinChat({text!r}) ends OK")
    return replies


def expect_echo(st, u, text):
    """round_trip, and the only reply is the message itself."""
    replies = round_trip(st, u, text)
    check_eq([as_sent(r) for r in replies], [message(u, text)], f"JoinChat({text!r}) echoes the message")


def expect_error(call_thunk, code, what):
    """Runs call_thunk (which must consume a call) and checks it raised an
    RpcError with `code`. Returns the error."""
    try:
        result = call_thunk()
    except grpc.RpcError as e:
        check_eq(e.code(), code, f"{what}: status")
        print(f"   details: {e.details()!r}", flush=True)
        return e
    raise Failure(f"{what}: no error, got {result!r}")


class Requests:
    """A request iterator fed from a queue; close() half-closes the call."""

    def __init__(self):
        self._q = queue.Queue()

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is None:
            raise StopIteration
        return item

    def send(self, msg):
        self._q.put(msg)

    def close(self):
        self._q.put(None)


class Stream:
    """A long-lived JoinChat call (seed 001's threaded client): requests
    from a queue, responses collected by a reader thread."""

    def __init__(self, st, name, timeout=None, metadata=None):
        self.name = name
        self.requests = Requests()
        self.call = st.JoinChat(self.requests, timeout=timeout, metadata=metadata)
        self.received = []
        self.error = None
        self.done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for m in self.call:
                with self._cond:
                    self.received.append(m)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            with self._cond:
                self.error = e
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def wait_open(self):
        """Blocks until the server answered with response headers, that is
        until it has registered the stream."""
        self.call.initial_metadata()

    def send(self, u, text):
        self.requests.send(message(u, text))

    def chat(self):
        """The chat messages received so far (presence notices left out)."""
        with self._cond:
            return [m for m in self.received if m.presence == chat_pb2.PRESENCE_NONE]

    def notices(self):
        """The presence notices received so far, as (user id, joined)."""
        with self._cond:
            return [
                (m.user.user_id, m.presence == chat_pb2.PRESENCE_JOINED)
                for m in self.received
                if m.presence != chat_pb2.PRESENCE_NONE
            ]

    def wait_for(self, pred, what, timeout=WAIT):
        with self._cond:
            self._cond.wait_for(lambda: pred(self.received) or self.done, timeout)
            if not pred(self.received):
                raise Failure(
                    f"{self.name}: {what} did not happen; received "
                    f"{texts(self.received)!r}, done={self.done}, error={self.error!r}"
                )

    def wait_text(self, text, timeout=WAIT):
        self.wait_for(lambda r: text in texts(r), f"receiving {text!r}", timeout)

    def wait_count(self, n, timeout=WAIT):
        self.wait_for(lambda r: len(r) >= n, f"receiving {n} messages", timeout)

    def wait_done(self, timeout=WAIT):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise Failure(f"{self.name}: the call did not end; received {texts(self.received)!r}")

    def finish(self, timeout=WAIT):
        """Half-closes, waits for the end, checks it is OK."""
        self.requests.close()
        self.wait_done(timeout)
        if self.error is not None:
            raise Failure(f"{self.name}: call failed after half-close: {self.error!r}")
        check_eq(self.call.code(), grpc.StatusCode.OK, f"{self.name}: ends OK after half-close")

    def snapshot(self):
        with self._cond:
            return list(self.received)
