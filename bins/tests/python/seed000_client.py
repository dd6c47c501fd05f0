"""Test 1: the seed 000 client's flow, with its exact calls.

The seed client joins with `stub.JoinChatRoom(iter([user]))`, prints the room
and its history, then sends each message on a new `stub.JoinChat(iter([msg]))`
call and prints every reply. The seed server answered "Received your
message!"; ours broadcasts the message itself to every JoinChat stream, the
sender's included (seed 001), so the one reply is the message unchanged.
"""

import time

import grpc

from chatutil import WAIT, as_sent, channel, check, check_eq, run, stub, texts, user, message

MESSAGES = ["hello", "how are you?", "héllo wörld ✓", "bye"]


def join(st, u):
    """The seed's join, verbatim but for the checks; returns the rooms."""
    chat_room_stream = st.JoinChatRoom(iter([u]), timeout=WAIT)
    rooms = []
    for chat_room in chat_room_stream:
        print(f"Joined chat room {chat_room.room_id}")
        for m in chat_room.history:
            print(f"{m.user.username}: {m.message}")
        rooms.append(chat_room)
    check_eq(chat_room_stream.code(), grpc.StatusCode.OK, f"JoinChatRoom({u.user_id}) ends OK")
    check_eq(len(rooms), 1, f"JoinChatRoom({u.user_id}) answers one User with one ChatRoom")
    return rooms[0]


def main(addr):
    ch1 = channel(addr)
    st1 = stub(ch1)
    alice = user("u1", "alice")

    room = join(st1, alice)
    check_eq(room.room_id, "room1", "room id is the seed's room1")
    check_eq(list(room.history), [], "a fresh server has no history")
    check(alice in room.users, "the joining user is listed in the room")

    for text in MESSAGES:
        chat_message = message(alice, text)
        response = st1.JoinChat(iter([chat_message]), timeout=WAIT)
        replies = []
        for resp in response:
            print(f"Server response: {resp.message}")
            replies.append(resp)
        check_eq(response.code(), grpc.StatusCode.OK, f"JoinChat({text!r}) ends OK")
        check_eq([as_sent(r) for r in replies], [chat_message], f"JoinChat({text!r}) yields the echoed message")

    # A second seed client starts up: it sees the messages in history, in order.
    ch2 = channel(addr)
    st2 = stub(ch2)
    bob = user("u2", "bob")
    room = join(st2, bob)
    check_eq(room.room_id, "room1", "second join: room1")
    check_eq(texts(room.history), MESSAGES, "second join: history holds the messages in order")
    check(all(m.user == alice for m in room.history), "second join: history keeps the sender")
    ids = sorted(u.user_id for u in room.users)
    check_eq(ids, ["u1", "u2"], "second join: both users present (u1's connection is open)")

    # Presence lasts as long as the connection the user joined from. (One
    # chat session per connection: carol joins on a channel of her own.)
    ch1.close()
    ch3 = channel(addr)
    st3 = stub(ch3)
    deadline = time.monotonic() + WAIT
    while True:
        room = join(st3, user("u3", "carol"))
        ids = sorted(u.user_id for u in room.users)
        if "u1" not in ids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check_eq(ids, ["u2", "u3"], "after u1's channel closed, u1 is no longer present")
    ch2.close()
    ch3.close()


if __name__ == "__main__":
    run(main)
