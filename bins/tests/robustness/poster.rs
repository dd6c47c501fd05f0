//! A raw poster: one JoinChat stream in a room, posting as fast as the
//! server's flow-control windows allow, reading (and counting) its echoes
//! so it is never a slow consumer itself.

use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_proto::{paths, ChatMessage, User};

use crate::calls::Client;
use crate::frames::{self, Conn};

/// What to post.
#[derive(Clone, Debug)]
pub struct Post {
    pub room: String,
    pub user: String,
    /// Bytes of text per message.
    pub text_len: usize,
    /// Stop after this many messages (then wait for their echoes).
    pub limit: Option<usize>,
    /// Stop at this time in any case.
    pub until: Instant,
}

/// What a poster did.
#[derive(Debug, Default)]
pub struct Posted {
    /// Messages written to the socket.
    pub sent: usize,
    /// Messages received on the stream (echoes: nobody else posts there).
    pub echoed: usize,
    /// How the stream ended, if it did before `until`.
    pub end: Option<String>,
    /// Seconds spent.
    pub secs: f64,
}

impl Posted {
    /// A one-line summary.
    pub fn describe(&self) -> String {
        format!(
            "{} sent, {} echoed in {:.1} s ({:.0}/s){}",
            self.sent,
            self.echoed,
            self.secs,
            self.echoed as f64 / self.secs.max(0.001),
            self.end
                .as_ref()
                .map(|e| format!("; ended: {e}"))
                .unwrap_or_default()
        )
    }
}

/// Starts a poster thread.
pub fn start(addr: SocketAddr, post: Post) -> JoinHandle<Posted> {
    thread::spawn(move || run(addr, post))
}

fn run(addr: SocketAddr, post: Post) -> Posted {
    let t0 = Instant::now();
    let mut done = Posted::default();
    let mut client = match Conn::reader(addr) {
        Ok(conn) => Client::new(conn),
        Err(e) => {
            done.end = Some(format!("connect: {e}"));
            return done;
        }
    };
    let metadata: [(&str, &[u8]); 1] = [("chat-room", post.room.as_bytes())];
    let stream = match client.open(paths::JOIN_CHAT, &metadata, &[], false) {
        Ok(s) => s,
        Err(e) => {
            done.end = Some(format!("open: {e}"));
            return done;
        }
    };
    // The server's SETTINGS (its initial window) before the first post.
    client.poll(Duration::from_millis(100));
    let one = frames::grpc(&ChatMessage {
        user: Some(User {
            user_id: post.user.clone(),
            username: post.user.clone(),
            room_id: String::new(),
        }),
        message: "p".repeat(post.text_len),
        ..ChatMessage::default()
    });
    let (mut queue, mut queued, mut written) = (Vec::new(), 0usize, 0usize);
    while Instant::now() < post.until && done.end.is_none() && !client.dead() {
        while queue.len() < 64 * 1024 && post.limit.is_none_or(|l| queued < l) {
            queue.extend_from_slice(&one);
            queued += 1;
        }
        let n = match client.send_data(stream, &queue) {
            Ok(n) => n,
            Err(e) => {
                done.end = Some(format!("write: {e}"));
                break;
            }
        };
        queue.drain(..n);
        written += n;
        done.sent = written / one.len();
        let wait = if n == 0 { 20 } else { 1 };
        for (id, outcome) in client.poll(Duration::from_millis(wait)) {
            if id == stream {
                done.echoed = outcome.count;
                done.end = Some(outcome.describe());
            }
        }
        if let Some(o) = client.outcome(stream) {
            done.echoed = o.count;
        }
        if post.limit.is_some_and(|l| done.echoed >= l) {
            break;
        }
    }
    if done.end.is_none() && client.dead() {
        done.end = client.closed.clone();
    }
    client.conn.shutdown();
    done.secs = t0.elapsed().as_secs_f64();
    done
}
