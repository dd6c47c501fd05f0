"""The moderation service (chat.admin.ChatAdmin) through grpcio, with the
server on bins/chat.example.toml (alice is an admin, bob is not).

    admin.py HOST:PORT [main|after-restart|cross OTHER_HOST:PORT]

main (on one server, or one node): who may call; kick (bob's calls end with the reason, the room hears
him leave, he may come back); ban and unban (refused, then let in); the
room list; a deletion (the room's stream gets the tombstone; History and
the next joiner's history show it; NOT_FOUND for no such message); ends
with bob banned. after-restart (the same server restarted, or another
node): History shows the tombstone; bob is refused, then unbanned. cross
(a cluster): a deletion and a kick made on the other node reach this one.
"""

import grpc

import admin_pb2
import admin_pb2_grpc
import chat_pb2
from chatutil import WAIT, Stream, channel, check, check_eq, expect_error, run, stub, user

ALICE = [("authorization", "Bearer alice-secret-token")]
BOB = [("authorization", "Bearer bob-secret-token")]


def admin_stub(ch):
    return admin_pb2_grpc.ChatAdminStub(ch)


def bob_stream(ch, name):
    s = Stream(stub(ch), name, metadata=BOB + [("chat-room", "room1")])
    s.wait_open()
    return s


def cross(addr, other):
    """Actions taken on another node reach this one: a deletion's tombstone
    reaches a stream here, a kick ends bob's stream here."""
    ch = channel(addr)
    adm = admin_stub(channel(other))
    watcher = Stream(stub(ch), "eve here", metadata=[("chat-room", "room1")])
    watcher.wait_open()
    bob = bob_stream(channel(addr), "bob here")
    bob.send(chat_pb2.User(), "to be deleted")
    watcher.wait_for(lambda r: any(m.message == "to be deleted" for m in r), "bob's message")
    target = next(m for m in watcher.received if m.message == "to be deleted")
    adm.DeleteMessage(admin_pb2.DeleteMessageRequest(room_id="room1", seq=target.seq), metadata=ALICE, timeout=WAIT)
    watcher.wait_for(lambda r: any(m.deleted and m.seq == target.seq for m in r), "the tombstone made on the other node")
    adm.Kick(admin_pb2.KickRequest(user_id="bob", reason="elsewhere"), metadata=ALICE, timeout=WAIT)
    bob.wait_for(lambda r: bob.done, "bob's stream to end on a kick made on the other node")
    check_eq(bob.error.code(), grpc.StatusCode.PERMISSION_DENIED, "bob's stream here ends")
    check("elsewhere" in bob.error.details(), f"with the reason: {bob.error.details()!r}")
    watcher.call.cancel()


def main(addr, mode="main", other=None):
    if mode == "cross":
        return cross(addr, other)
    ch = channel(addr)
    adm = admin_stub(ch)
    if mode == "after-restart":
        page = stub(ch).History(chat_pb2.HistoryRequest(room_id="room1"), timeout=WAIT)
        check(any(m.deleted and m.message == "" for m in page.messages), "History here shows the tombstone")
        expect_error(
            lambda: list(stub(ch).JoinChat(iter([]), metadata=BOB, timeout=WAIT)),
            grpc.StatusCode.PERMISSION_DENIED,
            "bob, banned before the restart",
        )
        adm.Unban(admin_pb2.UnbanRequest(user_id="bob"), metadata=ALICE, timeout=WAIT)
        list(stub(ch).JoinChat(iter([]), metadata=BOB, timeout=WAIT))
        check(True, "bob let in again")
        return

    expect_error(
        lambda: adm.ListRooms(admin_pb2.ListRoomsRequest(), timeout=WAIT),
        grpc.StatusCode.UNAUTHENTICATED,
        "a guest calls the admin service",
    )
    expect_error(
        lambda: adm.ListRooms(admin_pb2.ListRoomsRequest(), metadata=BOB, timeout=WAIT),
        grpc.StatusCode.PERMISSION_DENIED,
        "bob (not an admin) calls it",
    )

    # Kick: bob in room1 (a session and a stream), eve watching.
    bob_ch = channel(addr)
    list(stub(bob_ch).JoinChatRoom(iter([chat_pb2.User(room_id="room1")]), metadata=BOB, timeout=WAIT))
    bob = bob_stream(bob_ch, "bob")
    watcher = Stream(stub(ch), "eve watching", metadata=[("chat-room", "room1")])
    watcher.wait_open()
    bob.send(chat_pb2.User(), "hello from bob")
    watcher.wait_for(lambda r: any(m.message == "hello from bob" for m in r), "bob's message")
    reply = adm.Kick(admin_pb2.KickRequest(user_id="bob", reason="spam"), metadata=ALICE, timeout=WAIT)
    print(f"   kick: {reply.outcome}", flush=True)
    bob.wait_for(lambda r: False or bob.done, "bob's stream to end")
    check_eq(bob.error.code(), grpc.StatusCode.PERMISSION_DENIED, "bob's stream ends")
    check("spam" in bob.error.details(), f"with the reason: {bob.error.details()!r}")
    watcher.wait_for(lambda r: any(m.presence == chat_pb2.PRESENCE_LEFT and m.user.user_id == "bob" for m in r), "bob's leave notice")
    back = bob_stream(channel(addr), "bob back")
    back.send(chat_pb2.User(), "bob is back")
    back.wait_for(lambda r: any(m.message == "bob is back" for m in r), "bob's echo after a kick")

    # Ban: refused until unbanned.
    adm.Ban(admin_pb2.KickRequest(user_id="bob", reason="again"), metadata=ALICE, timeout=WAIT)
    back.wait_for(lambda r: back.done, "bob's stream to end on the ban")
    check_eq(back.error.code(), grpc.StatusCode.PERMISSION_DENIED, "a ban ends bob's stream")
    err = expect_error(
        lambda: list(stub(channel(addr)).JoinChat(iter([]), metadata=BOB, timeout=WAIT)),
        grpc.StatusCode.PERMISSION_DENIED,
        "a banned user's next call",
    )
    check("banned" in err.details(), "says banned")
    check_eq(
        adm.Unban(admin_pb2.UnbanRequest(user_id="bob"), metadata=ALICE, timeout=WAIT).outcome,
        "unbanned",
        "unban",
    )
    again = bob_stream(channel(addr), "bob again")
    again.send(chat_pb2.User(), "let in again")
    again.wait_for(lambda r: any(m.message == "let in again" for m in r), "bob's echo after unban")

    # The room list.
    rooms = adm.ListRooms(admin_pb2.ListRoomsRequest(), metadata=ALICE, timeout=WAIT).rooms
    room1 = [r for r in rooms if r.room_id == "room1"]
    check_eq(len(room1), 1, "room1 is listed")
    check(room1[0].last_seq >= 3 and room1[0].streams >= 2, f"with its log and streams: {room1[0]}")

    # Delete bob's first message.
    target = next(m for m in watcher.received if m.message == "hello from bob")
    adm.DeleteMessage(
        admin_pb2.DeleteMessageRequest(room_id="room1", seq=target.seq, reason="rude"),
        metadata=ALICE,
        timeout=WAIT,
    )
    watcher.wait_for(lambda r: any(m.deleted and m.seq == target.seq for m in r), "the tombstone notice")
    page = stub(ch).History(chat_pb2.HistoryRequest(room_id="room1"), timeout=WAIT)
    dead = [m for m in page.messages if m.seq == target.seq]
    check(len(dead) == 1 and dead[0].deleted and dead[0].message == "", f"History shows the tombstone: {dead}")
    check_eq(dead[0].user.user_id, "bob", "the tombstone keeps its sender")
    room = list(stub(ch).JoinChatRoom(iter([chat_pb2.User(user_id="zoe", room_id="room1")]), timeout=WAIT))[0]
    check(any(m.seq == target.seq and m.deleted for m in room.history), "history on join shows it")
    expect_error(
        lambda: adm.DeleteMessage(admin_pb2.DeleteMessageRequest(room_id="room1", seq=9999), metadata=ALICE, timeout=WAIT),
        grpc.StatusCode.NOT_FOUND,
        "deleting a message that is not there",
    )

    # Left banned, for the restart.
    adm.Ban(admin_pb2.KickRequest(user_id="bob", reason="for the restart"), metadata=ALICE, timeout=WAIT)
    again.wait_for(lambda r: again.done, "bob's stream ends")
    watcher.call.cancel()


if __name__ == "__main__":
    run(main)
