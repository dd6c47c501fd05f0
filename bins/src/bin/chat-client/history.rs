//! `/history [N]`: the N messages of the room we are in from before the
//! oldest one shown, one History call per page, each page after the last
//! one asked for.

use chat_bins::say;
use chat_proto::HistoryPage;
use chat_sansio::Status;

use crate::client::{status_text, Client, Link};
use crate::link::Event;
use crate::show;

/// Messages a page shows when `/history` names no number.
pub const DEFAULT_PAGE: u32 = 20;

/// The most a page may ask for (the server's own cap on a History page).
pub const MAX_PAGE: u32 = 1000;

impl Client {
    /// `/history ARG`: asks for the page before the oldest message shown.
    pub(crate) fn ask_history(&mut self, arg: &str) {
        let limit = match arg {
            "" => DEFAULT_PAGE,
            n => match n.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => return say(format_args!("usage: /history [N], N from 1 to {MAX_PAGE}")),
            },
        };
        if let Some(room) = &self.paging {
            return say(format_args!(
                "-- still fetching earlier messages of {}",
                show::room(room)
            ));
        }
        let Link::Up { channel, .. } = &self.link else {
            return;
        };
        let room = self.room.clone();
        let (_, before) = self.rooms.get(&room).map_or((0, 0), |log| log.before());
        if before == 1 {
            return say(format_args!(
                "-- no earlier messages in {}",
                show::room(&room)
            ));
        }
        self.paging = Some(room.clone());
        let (target, channel, events) = (self.target.clone(), channel.clone(), self.events.clone());
        smol::spawn(async move {
            let result = target.history(&channel, &room, before, limit).await;
            let _ = events.send(Event::History { room, result }).await;
        })
        .detach();
    }

    /// A `/history` page has come (or its call failed): prints it, oldest
    /// first, and moves the room's cursor back.
    pub(crate) fn history_page(&mut self, room: String, result: Result<HistoryPage, Status>) {
        self.paging = None;
        let page = match result {
            Ok(page) => page,
            Err(status) => {
                return say(format_args!(
                    "-- earlier messages of {} not fetched: {}",
                    show::room(&room),
                    status_text(&status)
                ))
            }
        };
        let Some(first) = page.messages.first() else {
            return say(format_args!(
                "-- no earlier messages in {}",
                show::room(&room)
            ));
        };
        let (epoch, first) = (first.epoch, first.seq);
        say(format_args!(
            "-- {} earlier message{} in {}:",
            page.messages.len(),
            if page.messages.len() == 1 { "" } else { "s" },
            show::room(&room)
        ));
        for msg in &page.messages {
            say(format_args!("{}", show::message(msg, false)));
        }
        say(format_args!(
            "-- {}",
            if page.more {
                "/history for more"
            } else {
                "that is the room's first message"
            }
        ));
        if let Some(log) = self.rooms.get_mut(&room) {
            log.shown_older(epoch, first);
        }
    }
}
