"""Rooms, switching, history, authentication and permissions through grpcio,
with only the .proto and metadata. The server runs with
bins/chat.example.toml: alice and bob have tokens; room1 is open to guests;
staff is for alice (read and post) and bob (read only); announcements is
readable by guests, postable by alice only."""

import grpc

import chat_pb2
from chatutil import (
    WAIT,
    Stream,
    channel,
    check,
    check_eq,
    expect_error,
    run,
    stub,
    texts,
    user,
)

ALICE = [("authorization", "Bearer alice-secret-token")]
BOB = [("authorization", "Bearer bob-secret-token")]


def join(st, u, room="", metadata=None):
    """One JoinChatRoom call with one User; returns its ChatRoom."""
    req = chat_pb2.User(user_id=u.user_id, username=u.username, room_id=room)
    call = st.JoinChatRoom(iter([req]), timeout=WAIT, metadata=metadata)
    rooms = list(call)
    check_eq(len(rooms), 1, f"join {room or 'room1'} as {u.user_id or '(token)'}: one ChatRoom")
    return rooms[0]


def main(addr):
    guest_ch, alice_ch, bob_ch = channel(addr), channel(addr), channel(addr)
    guest, alice, bob = stub(guest_ch), stub(alice_ch), stub(bob_ch)
    eve = user("eve", "Eve")

    # Guests: room1 yes; staff no (join or stream); unknown rooms do not exist.
    check_eq(join(guest, eve).room_id, "room1", "a guest joins room1")
    expect_error(lambda: join(guest, eve, "staff"), grpc.StatusCode.PERMISSION_DENIED, "guest joins staff")
    pinned = Stream(guest, "guest pinned to staff", metadata=[("chat-room", "staff")])
    pinned.wait_done()
    check_eq(pinned.call.code(), grpc.StatusCode.PERMISSION_DENIED, "guest stream pinned to staff")
    expect_error(lambda: join(guest, eve, "nowhere"), grpc.StatusCode.NOT_FOUND, "a room the config lacks")

    # Bad credentials.
    bad = [("authorization", "Bearer not-a-token")]
    expect_error(lambda: join(guest, eve, "", bad), grpc.StatusCode.UNAUTHENTICATED, "a wrong token")
    expect_error(
        lambda: join(guest, eve, "", [("authorization", "Basic abc")]),
        grpc.StatusCode.UNAUTHENTICATED,
        "a non-Bearer authorization",
    )

    # Alice joins staff by token alone (no user id given): the server knows her.
    room = join(alice, chat_pb2.User(), "staff", ALICE)
    check_eq(room.room_id, "staff", "alice is in staff")
    check_eq([(u.user_id, u.username) for u in room.users], [("alice", "Alice")], "staff: alice present")
    a_stream = Stream(alice, "alice", metadata=ALICE)  # follows her connection: staff
    a_stream.wait_open()

    # Bob reads staff through a pinned stream, and may not post there.
    b_stream = Stream(bob, "bob in staff", metadata=BOB + [("chat-room", "staff")])
    b_stream.wait_open()
    a_stream.send(chat_pb2.User(), "hello staff")
    b_stream.wait_text("hello staff")
    got = b_stream.chat()[0]
    check_eq((got.user.user_id, got.user.username, got.room_id, got.seq), ("alice", "Alice", "staff", 1), "delivered with sender, room and number")
    check(got.timestamp_us > 0, "delivered with a server timestamp")
    b_stream.send(user("bob"), "may I?")
    b_stream.wait_done()
    check_eq(b_stream.call.code(), grpc.StatusCode.PERMISSION_DENIED, "bob may read staff but not post")

    # Spoofing: alice claiming to be bob is refused and nothing is delivered.
    watcher = Stream(bob, "bob watching staff", metadata=BOB + [("chat-room", "staff")])
    watcher.wait_open()
    a_stream.send(user("bob"), "I am bob")
    a_stream.wait_done()
    check_eq(a_stream.call.code(), grpc.StatusCode.PERMISSION_DENIED, "alice claiming bob's id")
    expect_error(
        lambda: list(guest.JoinChat(iter([chat_pb2.ChatMessage(user=user("alice"), message="I am alice")]), timeout=WAIT)),
        grpc.StatusCode.PERMISSION_DENIED,
        "a guest claiming a registered id",
    )

    # Guests may read announcements but not post there.
    ann = Stream(guest, "guest in announcements", metadata=[("chat-room", "announcements")])
    ann.wait_open()
    ann.send(eve, "hi all")
    ann.wait_done()
    check_eq(ann.call.code(), grpc.StatusCode.PERMISSION_DENIED, "a guest posting in announcements")

    # Switching: alice's connection moves to room1; her following stream
    # moves with it, and staff hears that she left.
    a_stream = Stream(alice, "alice again", metadata=ALICE)
    a_stream.wait_open()
    a_stream.send(chat_pb2.User(), "second in staff")
    watcher.wait_text("second in staff")
    room = join(alice, chat_pb2.User(), "room1", ALICE)
    check_eq(room.room_id, "room1", "alice switched to room1")
    check_eq(sorted(u.user_id for u in room.users), ["alice", "eve"], "room1: eve and alice present")
    watcher.wait_for(lambda r: any(m.presence == chat_pb2.PRESENCE_LEFT for m in r), "alice's leave notice")
    check_eq(watcher.notices(), [("alice", False)], "staff heard alice leave")
    g_stream = Stream(guest, "eve in room1")
    g_stream.wait_open()
    for i in range(7):
        g_stream.send(eve, f"room1 #{i}")
    a_stream.wait_text("room1 #6")
    in_room1 = [m for m in a_stream.chat() if m.room_id == "room1"]
    check_eq(texts(in_room1), [f"room1 #{i}" for i in range(7)], "alice's stream follows her to room1")
    check_eq([m.seq for m in in_room1], list(range(1, 8)), "room1 numbers 1..7, no gaps")
    check(all(m.room_id == "staff" for m in watcher.chat()), "nothing of room1 reaches the staff-only stream")

    # History on join, oldest first, with its numbers.
    late = stub(channel(addr))
    room = join(late, user("late", "Late"))
    check_eq(texts(room.history), [f"room1 #{i}" for i in range(7)], "history on join")
    check_eq([m.seq for m in room.history], list(range(1, 8)), "history keeps the numbers")
    room = join(bob, chat_pb2.User(), "staff", BOB)
    check_eq(texts(room.history), ["hello staff", "second in staff"], "staff history for bob")

    # Paging back through stored history with the History RPC.
    page = late.History(chat_pb2.HistoryRequest(room_id="room1", limit=3), timeout=WAIT)
    check_eq([m.seq for m in page.messages], [5, 6, 7], "History: the newest page, oldest first")
    check(page.more, "History: older messages exist")
    page = late.History(chat_pb2.HistoryRequest(room_id="room1", before_seq=5, limit=10), timeout=WAIT)
    check_eq(texts(page.messages), [f"room1 #{i}" for i in range(4)], "History: the page before")
    check(not page.more, "History: nothing older")
    expect_error(
        lambda: late.History(chat_pb2.HistoryRequest(room_id="staff"), timeout=WAIT),
        grpc.StatusCode.PERMISSION_DENIED,
        "History of a room a guest may not read",
    )

    for s in (watcher, a_stream, g_stream):
        s.finish()
    for ch in (guest_ch, alice_ch, bob_ch):
        ch.close()


if __name__ == "__main__":
    run(main)
