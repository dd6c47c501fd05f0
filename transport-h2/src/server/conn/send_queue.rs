//! One call's h2 stream and its send queue: framed messages wait here for
//! the stream's flow-control window, so h2 never buffers without bound;
//! several waiting messages go out as one DATA frame; and a client that
//! stops reading is cut off by the slow-consumer policy.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::Timer;
use bytes::{Bytes, BytesMut};
use chat_sansio::metadata::Metadata;
use chat_sansio::server::stalled_status;
use chat_sansio::Status;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};

use crate::headers;
use crate::server::config::ServerConfig;

/// Most bytes of queued messages copied together into one DATA frame (h2's
/// default frame size).
const MAX_COALESCE: usize = 16 * 1024;

/// One call's h2 stream.
pub(super) struct Stream {
    /// Until response headers go out.
    pub respond: Option<SendResponse<Bytes>>,
    /// After response headers went out.
    pub send: Option<SendStream<Bytes>>,
    /// Until the client half-closes or resets.
    pub recv: Option<RecvStream>,
    /// Framed messages waiting for the send window.
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The first queued message has been partly handed to h2.
    partial: bool,
    /// The largest send capacity h2 has granted this stream: a message no
    /// larger waits for that much window instead of being split, so a
    /// slow client can almost always be cut off between whole messages.
    max_capacity: usize,
    /// After a stall that left a message half sent: how long its client
    /// has to take the rest before the stream is reset.
    grace: Option<Timer>,
    /// Status and trailing metadata to send once the queue is empty.
    trailers: Option<(Status, Metadata)>,
    /// The core has ended this call: ignore what the client still sends.
    pub ended: bool,
    /// Ended here as a slow consumer; the core's own ending is ignored.
    stalled: bool,
    /// The core wants to hear when the queue is empty.
    pub want_drained: bool,
}

/// What one pass over a stream's send queue came to.
#[derive(Default)]
pub(super) struct Pass {
    /// Something was handed to h2.
    pub progress: bool,
    /// The client fell too far behind: the call was ended here, and the
    /// core must be told.
    pub stalled: bool,
    /// The stream is finished: its trailers or its reset went out.
    pub done: bool,
    /// h2 refused to send: the client's side is gone.
    pub broken: bool,
    /// The queue is empty and the core asked to hear of it.
    pub drained: bool,
    /// Bytes of DATA handed to h2.
    pub handed: usize,
}

impl Stream {
    /// A stream whose request headers just arrived.
    pub(super) fn new(respond: SendResponse<Bytes>, recv: RecvStream) -> Stream {
        Stream {
            respond: Some(respond),
            send: None,
            recv: Some(recv),
            queue: VecDeque::new(),
            queued: 0,
            partial: false,
            max_capacity: 0,
            grace: None,
            trailers: None,
            ended: false,
            stalled: false,
            want_drained: false,
        }
    }

    /// Whether the client has reset the stream.
    pub(super) fn poll_reset(&mut self, cx: &mut Context<'_>) -> bool {
        let reset = match (&mut self.send, &mut self.respond) {
            (Some(s), _) => s.poll_reset(cx),
            (None, Some(r)) => r.poll_reset(cx),
            (None, None) => return false,
        };
        reset.is_ready()
    }

    /// Queues a framed message, unless the call has ended.
    pub(super) fn push(&mut self, frame: Bytes) {
        if !self.ended {
            self.queued += frame.len();
            self.queue.push_back(frame);
        }
    }

    /// The core ended the call: trailers go out once the queue is empty
    /// (unless the call was already ended here as a slow consumer).
    pub(super) fn finish(&mut self, status: Status, metadata: Metadata) {
        self.ended = true;
        if !self.stalled {
            self.trailers = Some((status, metadata));
        }
    }

    /// Hands queued messages to h2 as its flow-control window allows, and
    /// the trailers behind them; applies the slow-consumer policy.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>, config: &ServerConfig) -> Pass {
        let mut pass = Pass::default();
        if self.want_drained && self.queue.is_empty() {
            self.want_drained = false;
            pass.drained = true;
        }
        let Some(send) = &mut self.send else {
            return pass;
        };
        while let Some(front) = self.queue.front_mut() {
            let mut capacity = send.capacity();
            if capacity < front.len() {
                send.reserve_capacity(self.queued);
                capacity = send.capacity();
                self.max_capacity = self.max_capacity.max(capacity);
            }
            // Split a message only if it is larger than any window this
            // client has given, or if it is already partly sent.
            let whole_fits_later = !self.partial && front.len() <= self.max_capacity;
            if capacity == 0 || (capacity < front.len() && whole_fits_later) {
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => pass.broken = true,
                    Poll::Pending => {}
                }
                break;
            }
            let chunk = if capacity >= front.len() {
                self.partial = false;
                coalesce(&mut self.queue, capacity)
            } else {
                self.partial = true;
                front.split_to(capacity)
            };
            self.queued -= chunk.len();
            pass.handed += chunk.len();
            pass.progress = true;
            if send.send_data(chunk, false).is_err() {
                pass.broken = true;
                break;
            }
        }
        if pass.broken {
            return pass;
        }
        // Emptied by this pass: nothing else may wake this task, so say so
        // now (a resuming stream waits for it to ask for its next page).
        if self.want_drained && self.queue.is_empty() {
            self.want_drained = false;
            pass.drained = true;
        }
        if !self.stalled && self.over_limit(config) {
            self.stall(config.stall_grace);
            pass.stalled = true;
        }
        let Some(send) = &mut self.send else {
            return pass;
        };
        if self.queue.is_empty() {
            if let Some((status, metadata)) = self.trailers.take() {
                pass.progress = true;
                let _ = send.send_trailers(headers::trailers(&status, &metadata));
                pass.done = true;
            }
        } else if let Some(grace) = &mut self.grace {
            if Pin::new(grace).poll(cx).is_ready() {
                // The client never took the rest of its last message: the
                // byte stream is incomplete, so reset rather than end it
                // with trailers (PROTOCOL-HTTP2.md, "Errors").
                send.send_reset(h2::Reason::CANCEL);
                pass.done = true;
            }
        }
        pass
    }

    /// Bytes waiting in the queue.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// Whether the call was cut as a slow consumer.
    pub(super) fn is_cut(&self) -> bool {
        self.stalled
    }

    /// Cuts the call as a slow consumer now, whatever the per-call policy
    /// says (the connection or the process is over its budget). True if it
    /// was not cut already: the core must then be told.
    pub(super) fn cut(&mut self, config: &ServerConfig) -> bool {
        if self.stalled || self.send.is_none() {
            return false;
        }
        self.stall(config.stall_grace);
        true
    }

    /// Whether more waits behind the message being sent than the
    /// slow-consumer policy allows.
    fn over_limit(&self, config: &ServerConfig) -> bool {
        self.behind() > config.max_queued_bytes_per_call
            || self.queue.len().saturating_sub(1) > config.max_queued_messages_per_call
    }

    /// Bytes waiting behind the message in flight: what the slow-consumer
    /// policy and the connection's budget count. One message of any size
    /// may always be in flight, once the client has opened a window at
    /// all: against a client that never has (a zero window), every byte
    /// counts.
    pub(super) fn behind(&self) -> usize {
        let front = match self.max_capacity {
            0 => 0,
            _ => self.queue.front().map_or(0, Bytes::len),
        };
        self.queued - front
    }

    /// Ends a stream whose client is not reading: drops what it has not
    /// been sent, except the rest of a message already partly sent (so the
    /// client never sees a cut message), and ends with RESOURCE_EXHAUSTED
    /// after that, whatever the core had decided.
    fn stall(&mut self, grace: Duration) {
        let keep = if self.partial {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.clear();
        self.queued = 0;
        if let Some(rest) = keep {
            self.queued = rest.len();
            self.queue.push_back(rest);
            self.grace = Some(Timer::after(grace));
        }
        self.stalled = true;
        self.ended = true;
        self.trailers = Some((stalled_status(), Metadata::new()));
    }
}

/// Takes the first queued message, and as many whole messages after it as
/// fit in `capacity` (up to [`MAX_COALESCE`] bytes), as one buffer: several
/// gRPC messages in one DATA frame cost h2, the socket and the client one
/// frame instead of several. A lone message goes as it is, without copying.
fn coalesce(queue: &mut VecDeque<Bytes>, capacity: usize) -> Bytes {
    let Some(first) = queue.pop_front() else {
        return Bytes::new();
    };
    let limit = capacity.min(MAX_COALESCE);
    let mut len = first.len();
    let mut more = 0;
    for next in queue.iter() {
        if len + next.len() > limit {
            break;
        }
        len += next.len();
        more += 1;
    }
    if more == 0 {
        return first;
    }
    let mut buf = BytesMut::with_capacity(len);
    buf.extend_from_slice(&first);
    for m in queue.drain(..more) {
        buf.extend_from_slice(&m);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(sizes: &[usize]) -> VecDeque<Bytes> {
        sizes
            .iter()
            .map(|&n| Bytes::from(vec![n as u8; n]))
            .collect()
    }

    #[test]
    fn coalescing_takes_whole_messages_that_fit() {
        let mut q = queue(&[10, 20, 30, 40]);
        let first = coalesce(&mut q, 65);
        assert_eq!(first.len(), 60); // 10 + 20 + 30; 40 more would not fit
        assert_eq!(&first[..10], &[10u8; 10]);
        assert_eq!(&first[30..], &[30u8; 30]);
        assert_eq!(q.len(), 1);
        // A lone message is returned as it is (no copy), even if larger than
        // the capacity: the caller only calls with room for the first.
        let mut q = queue(&[40]);
        let ptr = q[0].as_ptr();
        assert_eq!(coalesce(&mut q, 40).as_ptr(), ptr);
        // Never more than MAX_COALESCE bytes at once.
        let mut q = queue(&[200; 200]);
        let chunk = coalesce(&mut q, usize::MAX);
        assert!(chunk.len() <= MAX_COALESCE && chunk.len() > MAX_COALESCE - 200);
    }
}
