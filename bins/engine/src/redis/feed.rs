//! The subscriber thread: one PUB/SUB connection, a channel per room the
//! chat has open here, and what arrives on them handed to the core.
//!
//! PUB/SUB is lossy (a reconnect, a subscriber Redis cut off for being
//! slow): the core fills any gap it sees from the log, and the control
//! thread (`super::nodes`) catches up after a reconnect and checks quiet
//! rooms, so a lost message is never lost for long.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use super::messages::{Control, Seen, Sub};
use super::stats::RedisStats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chat_sansio::chat::ChatInput;

use super::link::{CONNECT_TIMEOUT, IO_TIMEOUT};
use super::wire::{self, Published};
use crate::writer::Deliver;

/// How long a wait for a published message lasts before the thread looks
/// at its requests (subscribe, unsubscribe) again: the most a new room
/// waits for its subscription.
const POLL: Duration = Duration::from_millis(20);
/// Waits between two attempts to reach Redis, growing from the first to
/// the second.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MOST: Duration = Duration::from_millis(2000);

/// The thread's body: runs until the requests' sender or the core is gone.
pub fn run<D: Deliver>(
    node: &str,
    client: redis::Client,
    requests: Receiver<Sub>,
    told: Sender<Control>,
    seen: Seen,
    stats: Arc<RedisStats>,
    mut deliver: D,
) {
    let mut rooms: HashSet<String> = HashSet::new();
    let mut wait = RECONNECT_FIRST;
    let mut first = true;
    loop {
        let mut con = match client.get_connection_with_timeout(CONNECT_TIMEOUT) {
            Ok(con) => con,
            Err(e) => {
                tracing::warn!("redis subscriber: cannot connect: {e}; again in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(RECONNECT_MOST);
                // Requests that came meanwhile are kept for the next try.
                if !take_requests(&requests, &mut rooms, None, &told) {
                    return;
                }
                continue;
            }
        };
        wait = RECONNECT_FIRST;
        let mut pubsub = con.as_pubsub();
        let subscribed = (|| {
            pubsub.set_read_timeout(Some(IO_TIMEOUT))?;
            pubsub.subscribe(wire::ADMIN_CHANNEL)?;
            for room in &rooms {
                pubsub.subscribe(wire::channel(room))?;
            }
            pubsub.set_read_timeout(Some(POLL))
        })();
        if let Err(e) = subscribed {
            tracing::warn!("redis subscriber: cannot subscribe: {e}");
            continue;
        }
        stats.subscribed.store(true, Ordering::Relaxed);
        if !first {
            RedisStats::bump(&stats.reconnects);
            tracing::info!("redis subscriber: connected again; catching up");
            let _ = told.send(Control::Reconnected);
        }
        first = false;
        loop {
            if !take_requests(&requests, &mut rooms, Some(&mut pubsub), &told) {
                return;
            }
            let msg = match pubsub.get_message() {
                Ok(msg) => msg,
                Err(e) if e.is_timeout() => continue,
                Err(e) => {
                    stats.subscribed.store(false, Ordering::Relaxed);
                    tracing::warn!("redis subscriber: connection lost: {e}");
                    break;
                }
            };
            let Some(room) = wire::room_of_channel(msg.get_channel_name().as_bytes())
                .or_else(|| (msg.get_channel_name() == wire::ADMIN_CHANNEL).then_some(""))
            else {
                continue;
            };
            let input = match wire::published(msg.get_payload_bytes()) {
                // Made here: the chat told its streams already.
                Some(Published::Tombstone(from, _)) if from == node => continue,
                Some(Published::Tombstone(_, entry)) => ChatInput::Tombstone { entry },
                Some(Published::Ban(_, user_id, banned)) => ChatInput::Banned { user_id, banned },
                Some(Published::Kick(from, _, _)) if from == node => continue,
                Some(Published::Kick(_, user_id, reason)) => ChatInput::Kicked { user_id, reason },
                Some(Published::Entry(entry)) => {
                    if let Ok(mut seen) = seen.lock() {
                        let s = seen.entry(room.to_owned()).or_default();
                        *s = (*s).max(entry.seq);
                    }
                    ChatInput::Entries {
                        room: room.to_owned(),
                        entries: vec![entry],
                    }
                }
                // Told to this node's chat by the change's own answer.
                Some(Published::Presence(from, _, _)) if from == node => continue,
                Some(Published::Presence(_, user, present)) => ChatInput::Presence {
                    room: room.to_owned(),
                    user,
                    present,
                },
                None => continue,
            };
            if !deliver.deliver(input) {
                return;
            }
        }
    }
}

/// Applies the queued requests: to the connection if there is one (and
/// tells the control thread of each room followed), else only to the set
/// subscribed on the next connection. False once the sender is gone.
fn take_requests(
    requests: &Receiver<Sub>,
    rooms: &mut HashSet<String>,
    mut pubsub: Option<&mut redis::PubSub<'_>>,
    told: &Sender<Control>,
) -> bool {
    loop {
        let request = match requests.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        };
        match request {
            Sub::Follow(room) => {
                if let Some(p) = pubsub.as_deref_mut() {
                    let done = p
                        .set_read_timeout(Some(IO_TIMEOUT))
                        .and_then(|()| p.subscribe(wire::channel(&room)))
                        .and_then(|()| p.set_read_timeout(Some(POLL)));
                    if let Err(e) = done {
                        // The next get_message fails too, and the
                        // reconnect subscribes every room in the set.
                        tracing::warn!("redis subscriber: subscribe {room:?}: {e}");
                    }
                }
                let _ = told.send(Control::Following(room.clone()));
                rooms.insert(room);
            }
            Sub::Drop(room) => {
                if let Some(p) = pubsub.as_deref_mut() {
                    let _ = p
                        .set_read_timeout(Some(IO_TIMEOUT))
                        .and_then(|()| p.unsubscribe(wire::channel(&room)))
                        .and_then(|()| p.set_read_timeout(Some(POLL)));
                }
                rooms.remove(&room);
            }
        }
    }
}
