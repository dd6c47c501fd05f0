//! A user at the real `chat-client` binary: lines typed into its stdin,
//! everything it prints collected, and waits that poll for a line rather
//! than sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any expected line may take to appear. Generous: reconnects
/// back off up to 5 s, and the machine may be busy.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running client. Dropping it kills the process.
pub struct User {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Collects what `from` prints into `into`.
fn collect(from: impl Read + Send + 'static, into: &Arc<Mutex<String>>) {
    let into = Arc::clone(into);
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => lock(&into).push_str(&String::from_utf8_lossy(&raw)),
            }
        }
    });
}

impl User {
    /// Starts `chat-client` as guest `id` named `name` in `room`, against
    /// `addr`.
    pub fn start(addr: &str, id: &str, name: &str, room: &str) -> User {
        User::start_with(addr, id, name, room, Stdio::piped())
    }

    /// [`User::start`] with `stdin` as the client's standard input.
    pub fn start_with(addr: &str, id: &str, name: &str, room: &str, stdin: Stdio) -> User {
        User::start_args(addr, id, name, room, stdin, &[])
    }

    /// [`User::start_with`] with more command-line arguments.
    pub fn start_args(
        addr: &str,
        id: &str,
        name: &str,
        room: &str,
        stdin: Stdio,
        extra: &[&str],
    ) -> User {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
            .args(["--addr", addr, "--user-id", id, "--username", name])
            .args(["--room", room])
            .args(extra)
            .env_remove("CHAT_TOKEN")
            // One clock for every line, whatever the machine's zone.
            .env("TZ", "UTC")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start chat-client");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("piped stdout"), &stdout);
        collect(child.stderr.take().expect("piped stderr"), &stderr);
        User {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot type: {e}\n{}", self.name, self.report()));
    }

    /// Ends standard input (Ctrl-D).
    pub fn end_input(&mut self) {
        self.stdin = None;
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.stdout).lines().map(str::to_owned).collect()
    }

    /// How many printed lines satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines().iter().filter(|l| pred(l)).count()
    }

    /// Waits for a printed line satisfying `pred` (`what` describes it)
    /// and returns it; panics with the output after [`PATIENCE`].
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "{} never printed {what}\n{}",
                self.name,
                self.report()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the line `line` exactly.
    pub fn wait_line(&self, line: &str) -> String {
        self.wait_for(&format!("{line:?}"), |l| l == line)
    }

    /// Waits for the process to exit, for at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the client printed, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            lock(&self.stdout),
            self.name,
            lock(&self.stderr)
        )
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `line` is a message `text` from `name` in `room`, in the one
/// form of every message: `[room] HH:MM:SS name: text`, then ` ✓ #seq` if
/// it is the author's own, delivered. Returns the seq for own lines.
pub fn parse_message<'a>(line: &'a str, room: &str, name: &str, text: &str) -> Option<Mark<'a>> {
    let rest = line.strip_prefix(&format!("[{room}] "))?;
    let (clock, rest) = rest.split_at_checked(8)?;
    let clock_ok = clock.len() == 8
        && clock.char_indices().all(|(i, c)| {
            if i == 2 || i == 5 {
                c == ':'
            } else {
                c.is_ascii_digit()
            }
        });
    if !clock_ok {
        return None;
    }
    let rest = rest.strip_prefix(&format!(" {name}: {text}"))?;
    if rest.is_empty() {
        return Some(Mark::Plain);
    }
    let seq = rest.strip_prefix(" ✓ #")?;
    seq.parse::<u64>().ok().map(|_| Mark::Own(seq))
}

/// How a message line ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Mark<'a> {
    /// Someone else's message, or ours from history.
    Plain,
    /// Our own line, delivered as this seq.
    Own(&'a str),
}
