"""Exactly once across crashes (bins/tests/exactly_once.rs runs it while it
kills the server with SIGKILL and restarts it on the same address and data).

    exactly_once.py HOST:PORT[,HOST:PORT...] KILLS_FILE POSTERS PER_POSTER GATES LAGS

With several addresses (nodes of a cluster, bins/tests/cluster.rs), each
client starts on one of them and goes to the next whenever it connects
again, as a client behind a load balancer would.

Posters post PER_POSTER messages each, a few in flight, each with its own
client_msg_id, and post each again (same id, new connection, with backoff)
until its echo comes back. GATES (comma separated) keep them from running
ahead of the crashes: a poster posts its message number GATES[k] only once
KILLS_FILE says the test has killed the server more than k times.

Readers follow the room and, after every drop, resume with `chat-resume:
EPOCH:SEQ`, the last message they have. reader-0 reads everything as it
comes. reader-1 also falls behind on purpose at the two numbers of LAGS: at
the first it stops reading until the first crash, at the second until
everything is posted, then leaves its stream and resumes, so the server
must send it what it missed from the store (more than one page of it, at
the second).

At the end the History RPC must hold every (sender, client_msg_id) exactly
once, numbered 1..M without gaps; every reader must have received exactly
those messages, each once, in order; every echo must carry the number the
message is stored under.
"""

import threading
import time
import traceback

import grpc

import chat_pb2
from chatutil import Failure, Requests, channel, check, check_eq, run, stub

ROOM = "exactly-once"
IN_FLIGHT = 3
# Between a poster's echo and its next post, so that a crash finds posts
# in flight rather than a finished run.
PACE = 0.01
BACKOFF_FIRST = 0.05
BACKOFF_MOST = 0.8
# Longest the whole run may take; the test kills the script a little later.
START = time.monotonic()
DEADLINE = START + 100.0
# How a dropped call may end: the server was killed, or was not up yet.
DROPPED = {grpc.StatusCode.UNAVAILABLE}


def log(what):
    """A line of the run's timeline, shown if the test fails."""
    print(f"{time.monotonic() - START:7.3f} {what}", flush=True)


def left():
    return max(0.0, DEADLINE - time.monotonic())


def pin(*more):
    return (("chat-room", ROOM),) + more


class Backoff:
    def __init__(self):
        self.delay = BACKOFF_FIRST

    def wait(self):
        if left() == 0:
            raise Failure("out of time while reconnecting")
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, BACKOFF_MOST)

    def reset(self):
        self.delay = BACKOFF_FIRST


class Worker(threading.Thread):
    """A client thread; a failure is kept for the main thread to raise."""

    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.failure = None
        self.drops = []

    def run(self):
        try:
            self.work()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.failure = (e, traceback.format_exc())

    def dropped(self, e):
        if e.code() not in DROPPED:
            raise Failure(f"{self.name}: call ended {e.code()}: {e.details()!r}")
        self.drops.append(e.code().name)
        log(f"{self.name} dropped: {e.code().name} {e.details()!r}")


class Addrs:
    """The server's addresses, taken in turn from a start of the client's
    own: each connection goes to the next one."""

    def __init__(self, addrs, name):
        self.addrs = addrs.split(",")
        self.i = sum(map(ord, name))

    def next(self):
        self.i += 1
        return self.addrs[self.i % len(self.addrs)]


class Poster(Worker):
    def __init__(self, addr, name, count, gates, kills_file):
        super().__init__(name)
        self.addrs = Addrs(addr, name)
        self.count, self.gates, self.kills_file = count, gates, kills_file
        self.ids = [f"{name}/{i}" for i in range(count)]
        self.echoes = {}  # client_msg_id -> seq of its echo
        self.unacked = []  # ids sent, or being sent, without an echo yet
        self.next = 0  # index of the next new id
        self.resent = set()  # ids sent again after a drop

    def message(self, i):
        return chat_pb2.ChatMessage(
            user=chat_pb2.User(user_id=self.name, username=f"name of {self.name}"),
            message=f"text of {self.ids[i]}",
            client_msg_id=self.ids[i],
        )

    def allowed(self, i):
        """Whether the crashes so far let message i be posted."""
        kills = kills_so_far(self.kills_file)
        return all(i < gate for gate in self.gates[kills:])

    def top_up(self, requests):
        while (
            len(self.unacked) < IN_FLIGHT
            and self.next < self.count
            and self.allowed(self.next)
        ):
            self.unacked.append(self.next)
            requests.send(self.message(self.next))
            self.next += 1

    def gated(self):
        """Nothing in flight, and the next post waits for a crash."""
        return not self.unacked and self.next < self.count and not self.allowed(self.next)

    def work(self):
        backoff = Backoff()
        while len(self.echoes) < self.count:
            # Waiting for a crash that may come to another node (a cluster):
            # off the stream, which nothing would end.
            while self.gated():
                if left() == 0:
                    raise Failure(f"{self.name}: out of time at a gate")
                time.sleep(0.01)
            ch = channel(self.addrs.next())
            requests = Requests()
            try:
                call = stub(ch).JoinChat(requests, metadata=pin(), timeout=left())
                log(f"{self.name} opens JoinChat; in flight {self.unacked}")
                for i in self.unacked:
                    requests.send(self.message(i))
                    self.resent.add(self.ids[i])
                self.top_up(requests)
                for m in call:
                    backoff.reset()
                    if m.presence != chat_pb2.PRESENCE_NONE or m.user.user_id != self.name:
                        continue
                    self.echo(m)
                    if len(self.echoes) == self.count:
                        break
                    time.sleep(PACE)
                    self.top_up(requests)
                    if self.gated():
                        break
                else:
                    raise Failure(f"{self.name}: JoinChat ended OK before its half-close")
                requests.close()
                try:
                    for m in call:
                        if m.presence == chat_pb2.PRESENCE_NONE and m.user.user_id == self.name:
                            self.echo(m)
                except grpc.RpcError:
                    pass  # done; a crash now changes nothing
            except grpc.RpcError as e:
                self.dropped(e)
                backoff.wait()
            finally:
                requests.close()
                ch.close()

    def echo(self, m):
        i = self.ids.index(m.client_msg_id) if m.client_msg_id in self.ids else None
        if i is None:
            raise Failure(f"{self.name}: an echo of an id never posted: {m!r}")
        if m.client_msg_id in self.echoes:
            raise Failure(
                f"{self.name}: {m.client_msg_id} echoed again as #{m.seq} "
                f"(first #{self.echoes[m.client_msg_id]})"
            )
        if i not in self.unacked:
            raise Failure(f"{self.name}: an echo of {m.client_msg_id}, not in flight")
        if m.message != f"text of {m.client_msg_id}" or m.seq == 0:
            raise Failure(f"{self.name}: the echo is not the message posted: {m!r}")
        self.unacked.remove(i)
        self.echoes[m.client_msg_id] = m.seq


class Lagged(Exception):
    """A reader leaves its stream on purpose, to resume behind the room."""


class Reader(Worker):
    """Follows the room, and resumes from the last message it has after a
    drop. `lags` is a list of (seq, until): on reaching seq the reader stops
    reading until until() holds, then leaves that stream and resumes from
    seq, so that the room is far ahead of it when it comes back."""

    def __init__(self, addr, name, lags=()):
        super().__init__(name)
        self.addrs = Addrs(addr, name)
        self.lags = list(lags)
        self.epoch = None
        self.received = []
        self.resumed_from = []  # the seq of each resume after a drop or a lag
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._target = None
        self._call = None
        self._done = False

    def join_room(self):
        """JoinChatRoom: the room's epoch and newest number, and its history."""
        ch = channel(self.addrs.next())
        try:
            who = chat_pb2.User(user_id=self.name, username=f"name of {self.name}", room_id=ROOM)
            call = stub(ch).JoinChatRoom(iter([who]), timeout=left())
            room = next(iter(call))
            self.epoch = room.epoch
            check(self.epoch > 0, f"{self.name}: the room has an epoch")
            for m in room.history:
                self.take(m)
            check_eq(self.last(), room.last_seq, f"{self.name}: history on join ends at last_seq")
        finally:
            ch.close()

    def last(self):
        return self.received[-1].seq if self.received else 0

    def take(self, m):
        """A delivered message: it must be the next number, of the epoch."""
        if m.epoch != self.epoch or m.seq != self.last() + 1:
            raise Failure(
                f"{self.name}: after #{self.last()} of epoch {self.epoch} got "
                f"#{m.seq} of epoch {m.epoch}: {m.client_msg_id!r}"
            )
        self.received.append(m)

    def lag_if_due(self):
        if not self.lags or self.last() != self.lags[0][0]:
            return
        _, until = self.lags.pop(0)
        while not until():
            if left() == 0:
                raise Failure(f"{self.name}: out of time lagging at #{self.last()}")
            time.sleep(0.01)
        raise Lagged()

    def work(self):
        self.join_room()
        self.ready.set()
        backoff = Backoff()
        again = False
        while True:
            ch = channel(self.addrs.next())
            requests = Requests()  # never sends; closed when the call is over
            resume = ("chat-resume", f"{self.epoch}:{self.last()}")
            try:
                with self._lock:
                    if self._done:
                        return
                    call = stub(ch).JoinChat(requests, metadata=pin(resume), timeout=left())
                    self._call = call
                log(f"{self.name} opens JoinChat with {resume[0]}: {resume[1]}")
                if again:
                    self.resumed_from.append(self.last())
                again = True
                for m in call:
                    backoff.reset()
                    if m.presence != chat_pb2.PRESENCE_NONE:
                        continue
                    with self._lock:
                        self.take(m)
                        if self._target is not None and self.last() >= self._target:
                            self._done = True
                            call.cancel()
                    self.lag_if_due()
                raise Failure(f"{self.name}: JoinChat ended OK without a half-close")
            except Lagged:
                call.cancel()
            except grpc.RpcError as e:
                with self._lock:
                    if self._done and e.code() == grpc.StatusCode.CANCELLED:
                        return
                if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                    raise Failure(
                        f"{self.name}: cannot resume from {resume[1]}: {e.details()!r}"
                    ) from e
                self.dropped(e)
                backoff.wait()
            finally:
                requests.close()
                ch.close()

    def finish(self, target):
        """Stops once it has everything up to `target`."""
        with self._lock:
            self._target = target
            if self.last() >= target:
                self._done = True
                if self._call is not None:
                    self._call.cancel()


def history(addr):
    """The room's whole stored history, paged back with History."""
    backoff = Backoff()
    addrs = Addrs(addr, "history")
    while True:
        ch = channel(addrs.next())
        try:
            messages, before = [], 0
            while True:
                req = chat_pb2.HistoryRequest(room_id=ROOM, before_seq=before, limit=100)
                page = stub(ch).History(req, timeout=left())
                messages[:0] = page.messages
                if not page.more:
                    return messages
                check(page.messages, "a page that says more has messages")
                before = page.messages[0].seq
        except grpc.RpcError as e:
            if e.code() not in DROPPED:
                raise
            backoff.wait()
        finally:
            ch.close()


def wait_all(workers, what):
    for w in workers:
        w.join(left())
        if w.is_alive():
            raise Failure(f"{w.name}: did not finish {what} in time; {state(w)}")
        if w.failure is not None:
            e, tb = w.failure
            print(tb, flush=True)
            raise Failure(f"{w.name} failed: {e}")


def state(w):
    if isinstance(w, Poster):
        return f"echoed {len(w.echoes)}, in flight {w.unacked}, next {w.next}, drops {w.drops}"
    return f"received up to #{w.last()}, drops {w.drops}"


def kills_so_far(kills_file):
    with open(kills_file) as f:
        return int(f.read().strip() or 0)


def main(addr, kills_file, posters, per_poster, gates, lags):
    single = "," not in addr
    posters, per_poster = int(posters), int(per_poster)
    gates = [int(g) for g in gates.split(",")]
    posted = threading.Event()

    def after(kills):
        return lambda: kills_so_far(kills_file) >= kills

    # reader-0 follows the room live; reader-1 lags at its first point until
    # the first crash, and at its second until everything is posted.
    lag_at = [int(n) for n in lags.split(",")]
    lag_plan = [(lag_at[0], after(1)), (lag_at[1], posted.is_set)]
    readers = [Reader(addr, "reader-0"), Reader(addr, "reader-1", lag_plan)]
    for r in readers:
        r.start()
    for r in readers:
        while not r.ready.wait(0.05):
            if not r.is_alive() or left() == 0:
                wait_all([r], "joining")
    writers = [Poster(addr, f"poster-{i}", per_poster, gates, kills_file) for i in range(posters)]
    for p in writers:
        p.start()
    wait_all(writers, "posting")
    posted.set()
    log("all posted")
    print("posted: " + ", ".join(f"{p.name} {state(p)}" for p in writers), flush=True)

    stored = history(addr)
    total = posters * per_poster
    check_eq([m.seq for m in stored], list(range(1, len(stored) + 1)), "stored numbers are 1..M")
    keys = [(m.user.user_id, m.client_msg_id) for m in stored]
    want = sorted((p.name, i) for p in writers for i in p.ids)
    check_eq(sorted(keys), want, f"History holds each of the {total} posts exactly once")
    check(all(m.epoch == readers[0].epoch for m in stored), "one epoch throughout")
    for p in writers:
        by_key = {m.client_msg_id: m.seq for m in stored if m.user.user_id == p.name}
        check_eq(p.echoes, by_key, f"{p.name}: each echo carries the stored number")

    log("History checked")
    for r in readers:
        r.finish(total)
    wait_all(readers, "reading")
    for r in readers:
        got = [(m.seq, m.user.user_id, m.client_msg_id, m.message) for m in r.received]
        stored_rows = [(m.seq, m.user.user_id, m.client_msg_id, m.message) for m in stored]
        check_eq(got, stored_rows, f"{r.name}: received every message once, in order")
        if single:
            check(r.resumed_from, f"{r.name}: resumed {len(r.resumed_from)} times")
    # One server: every client was cut off by its crashes. Several nodes:
    # only the clients of a killed node were (Redis failing cuts off none:
    # the nodes keep their streams open).
    for p in writers:
        if single:
            check(p.drops, f"{p.name}: reconnected after {len(p.drops)} drops")
    resent = sorted(i for p in writers for i in p.resent)
    print(
        f"summary: {total} messages; {len(resent)} posts sent again; drops: "
        + ", ".join(f"{w.name} {len(w.drops)}" for w in readers + writers),
        flush=True,
    )
    print("sent again: " + " ".join(resent), flush=True)
    for r in readers:
        print(f"{r.name} resumed from: " + " ".join(map(str, r.resumed_from)), flush=True)


if __name__ == "__main__":
    run(main)
