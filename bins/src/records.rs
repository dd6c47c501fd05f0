//! The login and message records, as the seed's `login_history.txt` and
//! `message_history.txt`: appended by a thread of their own, so file I/O
//! never runs on the executor.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};

use chat_sansio::chat::ChatEvent;
use chat_sansio::Time;

/// Hands events to the record-writing thread.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<ChatEvent>,
}

impl Recorder {
    /// Opens (creating if needed) `dir/login_history.txt` and
    /// `dir/message_history.txt` for appending, and starts the writer.
    pub fn start(dir: &Path) -> io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let open = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .map(BufWriter::new)
        };
        let logins = open("login_history.txt")?;
        let messages = open("message_history.txt")?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("records".into())
            .spawn(move || write_all(rx, logins, messages))?;
        Ok(Recorder { tx })
    }

    /// Queues an event for the records.
    pub fn record(&self, event: &ChatEvent) {
        let _ = self.tx.send(event.clone());
    }
}

fn write_all(rx: Receiver<ChatEvent>, mut logins: BufWriter<File>, mut messages: BufWriter<File>) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(event) = next {
            let result = match &event {
                ChatEvent::Message {
                    room,
                    seq,
                    user_id,
                    username,
                    text,
                    at,
                } => writeln!(
                    messages,
                    "userid: {user_id}, userName: {username}, room: {room}, seq: {seq}, message: {text:?}, time: {}",
                    utc(*at)
                ),
                ChatEvent::Login {
                    user_id,
                    room,
                    peer,
                    outcome,
                    at,
                } => writeln!(
                    logins,
                    "userid: {user_id}, room: {room}, peer: {}, outcome: {}, time: {}",
                    peer.as_deref().unwrap_or("-"),
                    match outcome {
                        Ok(()) => "ok".to_owned(),
                        Err(status) => status.to_string(),
                    },
                    utc(*at)
                ),
            };
            if let Err(e) = result {
                tracing::error!("cannot write records: {e}");
            }
            next = rx.try_recv().ok();
        }
        for f in [&mut logins, &mut messages] {
            if let Err(e) = f.flush() {
                tracing::error!("cannot write records: {e}");
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
pub fn utc(t: Time) -> String {
    let micros = t.as_micros();
    let secs = micros / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        micros % 1_000_000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(Time::ZERO), "1970-01-01 00:00:00.000000");
        assert_eq!(
            utc(Time::from_micros(1_795_999_999_123_456)),
            "2026-11-30 00:53:19.123456"
        );
        assert_eq!(
            utc(Time::from_micros(951_782_400_000_000)),
            "2000-02-29 00:00:00.000000"
        );
    }
}
