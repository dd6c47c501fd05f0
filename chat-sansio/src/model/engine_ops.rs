//! The engine's side of a run: the model answers what the chat asked, when
//! the operations say and in the order they pick (late, twice, failed), and
//! appends entries of other nodes; `settle` answers everything and checks
//! that every stream has then caught up with its room.

use chat_proto::User;

use crate::chat::ChatInput;
use crate::chat::ReadToken;
use crate::server::CallId;
use crate::status::Code;

use super::drain::{check_state, drain};
use super::record::ChatServer;
use super::rules::ROOMS;
use super::state::{Kind, Model, Opened, ReadAsk};

/// Most answers one `settle` gives before it calls the chat stuck.
const SETTLE_LIMIT: usize = 100_000;

/// Feeds an input and drains.
fn feed(server: &mut ChatServer, model: &mut Model, input: ChatInput) {
    model.asked.keep(&input);
    server.handle_input(model.now(), input);
    drain(server, model, None);
}

/// The engine answers the open of a room: where its log stands (what
/// waited for it goes on), or a failure (what waited for it, and every
/// stream in it, ends with UNAVAILABLE; the room is asked for again on its
/// next use).
pub fn open(server: &mut ChatServer, model: &mut Model, index: u8, fail: bool) {
    if model.asked.opens.is_empty() {
        return;
    }
    let room = model
        .asked
        .opens
        .remove(usize::from(index) % model.asked.opens.len());
    let input = if fail {
        ChatInput::OpenFailed {
            room,
            reason: "disk on fire".to_owned(),
        }
    } else {
        model.engine.open(&room)
    };
    answer_open(server, model, input);
}

/// What an open's answer (or a replay of one) does to the model.
fn answer_open(server: &mut ChatServer, model: &mut Model, input: ChatInput) {
    match &input {
        ChatInput::RoomOpened {
            room,
            epoch,
            last_seq,
            first_seq,
        } => {
            if let Some(node) = model.rooms.get_mut(room).filter(|n| n.open.is_none()) {
                node.opening = false;
                node.open = Some(Opened {
                    epoch: *epoch,
                    delivered: *last_seq,
                    first: (*first_seq).min(last_seq + 1).max(1),
                });
                node.waiting_replies.clear();
            }
        }
        ChatInput::OpenFailed { room, .. } => {
            let Some(node) = model.rooms.get_mut(room).filter(|n| n.open.is_none()) else {
                return feed(server, model, input);
            };
            node.opening = false;
            let mut failed: Vec<CallId> = node.waiting_replies.drain(..).collect();
            let posts: Vec<u64> = node.waiting_posts.drain(..).collect();
            failed.extend(posts.iter().map(|id| model.posts[id].poster));
            failed.extend(model.streams_in(room));
            for call in failed {
                if let Some(c) = model.calls.get_mut(&call).filter(|c| c.live()) {
                    c.must_end = Some(Code::Unavailable);
                }
            }
        }
        _ => unreachable!("not an open's answer"),
    }
    feed(server, model, input);
}

/// The engine stores an append: its poster gets the entry when the room
/// delivers it, or at once (the echo) if the room has delivered it already
/// (a retry of a stored post). With `reported_first`, a new entry reaches
/// the chat as a report before the answer.
pub fn commit(server: &mut ChatServer, model: &mut Model, index: u8, reported_first: bool) {
    let Some(id) = pick(model.asked.appends.keys().copied(), index) else {
        return;
    };
    let request = model.asked.appends.remove(&id).expect("picked");
    let input = model.engine.commit(&request);
    let ChatInput::Committed {
        entry, duplicate, ..
    } = &input
    else {
        unreachable!("a commit");
    };
    if reported_first && !*duplicate {
        let report = ChatInput::Entries {
            room: request.room.clone(),
            entries: vec![entry.clone()],
        };
        feed(server, model, report);
    }
    let poster = model.posts[&id].poster;
    let node = model.node_mut(&request.room);
    let delivered = node.open.expect("appended to an open room").delivered;
    if entry.seq <= delivered {
        // Delivered to the room already (a fill came first): the poster
        // had it with the others; only a retry's original that its stream
        // has not had (nor will have, catching up) is echoed.
        if model.is_live(poster) {
            let c = model.call(poster);
            let has_it = model.room_of(c) == request.room
                && (c.got.contains(&entry.seq) || c.resuming.is_some_and(|r| r.from < entry.seq));
            if *duplicate && !has_it {
                model.call_mut(poster).echoes.push_back(entry.clone());
            }
            model.one_settled(poster);
        }
    } else {
        node.owners.entry(entry.seq).or_default().push(poster);
    }
    feed(server, model, input);
    let c = model.call(poster);
    assert!(c.echoes.is_empty(), "{poster:?} did not get its echo");
}

/// The engine fails an append: its poster ends with UNAVAILABLE. With
/// `stored`, the entry was stored all the same (the failure was the
/// answer's): other nodes report it, and a retry finds it.
pub fn fail_append(server: &mut ChatServer, model: &mut Model, index: u8, stored: bool) {
    let Some(id) = pick(model.asked.appends.keys().copied(), index) else {
        return;
    };
    let request = model.asked.appends.remove(&id).expect("picked");
    if stored {
        let (entry, duplicate) = model.engine.append(&request);
        if !duplicate {
            model.asked.unreported.push(entry);
        }
    }
    let poster = model.posts[&id].poster;
    if let Some(c) = model.calls.get_mut(&poster).filter(|c| c.live()) {
        c.must_end = Some(Code::Unavailable);
    }
    let reason = "disk on fire".to_owned();
    feed(server, model, ChatInput::AppendFailed { id, reason });
}

/// The engine answers a read: with what it holds, or an error (the read's
/// owner, if it is a call, may then end with UNAVAILABLE).
pub fn read(server: &mut ChatServer, model: &mut Model, index: u8, ok: bool) {
    if model.asked.reads.is_empty() {
        return;
    }
    let read = model
        .asked
        .reads
        .remove(usize::from(index) % model.asked.reads.len());
    let input = match read {
        ReadAsk::Range {
            token,
            room,
            after,
            up_to,
            limit,
        } => {
            let (entries, first_seq) = model.engine.range(&room, after, up_to, limit);
            if !ok {
                model.read_failed = model
                    .streams_in(&room)
                    .into_iter()
                    .filter(|c| {
                        // A page after what it has, or the check of its point.
                        model.calls[c]
                            .resuming
                            .is_some_and(|r| r.has == after || (limit == 1 && r.has == up_to))
                    })
                    .collect();
            }
            ChatInput::Range {
                token: ReadToken(token),
                entries: if ok {
                    Ok(entries)
                } else {
                    Err("disk on fire".into())
                },
                first_seq,
            }
        }
        ReadAsk::History {
            token,
            room,
            before,
            limit,
        } => {
            let page = model.engine.page(&room, before, limit);
            if ok {
                model.answered.push(page.clone());
            } else {
                model.read_failed = model
                    .calls
                    .iter()
                    .filter(|(_, c)| c.live())
                    .filter(|(_, c)| match c.kind {
                        Kind::History => c.asked,
                        Kind::JoinChatRoom => c.replies.contains(&room),
                        _ => false,
                    })
                    .map(|(id, _)| *id)
                    .collect();
            }
            ChatInput::HistoryPage {
                token: ReadToken(token),
                page: if ok {
                    Ok(page)
                } else {
                    Err("disk on fire".into())
                },
            }
        }
    };
    feed(server, model, input);
}

/// The engine gives an answer it gave before, again: nothing changes but
/// what the answer can still mean (an entry not yet delivered).
pub fn replay(server: &mut ChatServer, model: &mut Model, index: u8) {
    let answers = &model.asked.answers;
    if answers.is_empty() {
        return;
    }
    let input = answers[usize::from(index) % answers.len()].clone();
    match input {
        ChatInput::RoomOpened { .. } | ChatInput::OpenFailed { .. } => {
            answer_open(server, model, input);
        }
        input => feed(server, model, input),
    }
}

/// Another node appends to one of the listed rooms; the engine tells the
/// chat at once, or later.
pub fn foreign(server: &mut ChatServer, model: &mut Model, room: u8, text: String, report: bool) {
    let room = ROOMS[usize::from(room) % ROOMS.len()];
    let user = User {
        user_id: "elsewhere".to_owned(),
        username: "Someone Elsewhere".to_owned(),
        room_id: String::new(),
    };
    let entry = model.engine.push(room, user, &text, model.now());
    if report {
        let input = ChatInput::Entries {
            room: room.to_owned(),
            entries: vec![entry],
        };
        feed(server, model, input);
    } else {
        model.asked.unreported.push(entry);
    }
}

/// The engine tells the chat of every entry it has not told, one `Entries`
/// per room, in order or newest first.
pub fn report(server: &mut ChatServer, model: &mut Model, reverse: bool) {
    let mut entries = std::mem::take(&mut model.asked.unreported);
    if reverse {
        entries.reverse();
    }
    let mut rooms: Vec<String> = entries.iter().map(|e| e.room_id.clone()).collect();
    rooms.dedup();
    rooms.sort();
    rooms.dedup();
    for room in rooms {
        let entries = entries
            .iter()
            .filter(|e| e.room_id == room)
            .cloned()
            .collect();
        feed(server, model, ChatInput::Entries { room, entries });
    }
}

/// Retention removes all but the newest `keep` entries of a room.
pub fn trim(model: &mut Model, room: u8, keep: u8) {
    let room = ROOMS[usize::from(room) % ROOMS.len()];
    model.engine.trim(room, u64::from(keep % 16));
}

/// The transport has sent on what was queued for a call that asked.
pub fn drained(server: &mut ChatServer, model: &mut Model, index: u8) {
    if model.asked.drains.is_empty() {
        return;
    }
    let call = model
        .asked
        .drains
        .remove(usize::from(index) % model.asked.drains.len());
    server.handle_drained(model.now(), call);
    drain(server, model, None);
}

/// Answers everything the chat asked, in order, and what that asks in turn,
/// until nothing is asked; then every room the chat has open has delivered
/// the engine's whole log, and every call has what it waited for.
pub fn settle(server: &mut ChatServer, model: &mut Model) {
    let mut answers = 0;
    while !model.asked.is_empty() {
        answers += 1;
        assert!(
            answers < SETTLE_LIMIT,
            "the chat keeps asking: {:?}",
            model.asked
        );
        if !model.asked.opens.is_empty() {
            open(server, model, 0, false);
        } else if !model.asked.appends.is_empty() {
            commit(server, model, 0, false);
        } else if !model.asked.reads.is_empty() {
            read(server, model, 0, true);
        } else if !model.asked.drains.is_empty() {
            drained(server, model, 0);
        } else {
            report(server, model, false);
        }
        check_state(server, model);
    }
    settled(model);
}

/// What holds once the engine has answered everything.
fn settled(model: &Model) {
    for (room, node) in &model.rooms {
        let newest = model.engine.log(room).map_or(0, |l| l.last_seq());
        if let Some(open) = node.open {
            assert_eq!(open.delivered, newest, "{room:?} delivered its whole log");
        }
        assert!(node.owners.is_empty(), "{room:?} owes deliveries");
        assert!(node.waiting_posts.is_empty() && node.waiting_replies.is_empty());
    }
    for (id, c) in &model.calls {
        if !c.live() {
            continue;
        }
        assert_eq!(c.undelivered, 0, "{id:?} has posts the engine answered");
        assert!(c.replies.is_empty(), "{id:?} is owed answers");
        assert!(
            c.kind != Kind::History || !c.asked,
            "{id:?} still waits for its page"
        );
        if let Some(r) = c.resuming {
            let room = model.room_of(c);
            let delivered = model.node(&room).open.map_or(0, |o| o.delivered);
            assert!(
                r.from > delivered && r.has == r.from,
                "{id:?} stopped catching up at {} of {delivered}",
                r.has
            );
        }
    }
}

/// The `index`th (modulo their number) of `items`.
fn pick(items: impl Iterator<Item = u64>, index: u8) -> Option<u64> {
    let items: Vec<u64> = items.collect();
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()])
}
