//! A room's recent messages, bounded.

use std::collections::VecDeque;

use chat_proto::ChatMessage;

use super::pages::PageBuilder;

/// The most recent messages of one room, oldest first, at most `capacity`.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    messages: VecDeque<ChatMessage>,
}

impl History {
    /// An empty history keeping at most `capacity` messages.
    pub fn new(capacity: usize) -> History {
        History {
            capacity,
            messages: VecDeque::new(),
        }
    }

    /// Records a message, dropping the oldest one when full.
    pub fn push(&mut self, msg: ChatMessage) {
        if self.capacity == 0 {
            return;
        }
        if self.messages.len() == self.capacity {
            self.messages.pop_front();
        }
        self.messages.push_back(msg);
    }

    /// The last `n` messages, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &ChatMessage> {
        let skip = self.messages.len().saturating_sub(n);
        self.messages.iter().skip(skip)
    }

    /// Up to `limit` messages numbered below `before` (0: no bound), oldest
    /// first, within [`MAX_PAGE_BYTES`](crate::limits::MAX_PAGE_BYTES), and
    /// whether older ones are kept too.
    pub fn page(&self, before: u64, limit: usize) -> (Vec<ChatMessage>, bool) {
        let mut page = PageBuilder::new(limit);
        for m in self
            .messages
            .iter()
            .rev()
            .filter(|m| before == 0 || m.seq < before)
        {
            if !page.push(m.clone()) {
                break;
            }
        }
        page.finish()
    }

    /// Number of messages kept.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> ChatMessage {
        ChatMessage {
            message: i.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_most_recent() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(msg(i));
        }
        let texts: Vec<_> = h.last(10).map(|m| m.message.clone()).collect();
        assert_eq!(texts, ["2", "3", "4"]);
        let texts: Vec<_> = h.last(2).map(|m| m.message.clone()).collect();
        assert_eq!(texts, ["3", "4"]);
    }
}
