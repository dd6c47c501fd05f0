//! Shared helpers of the integration tests: the real `chat-server` binary,
//! started on a free port, with its output captured for assertions.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod python;
pub mod redis;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What every server binary prints once it accepts connections, followed by
/// the address.
const LISTENING: &str = " listening on ";

/// A new empty directory under the workspace's `target/test-data`.
pub fn fresh_dir(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-data")
        .join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot make a test data directory");
    dir
}

/// Longest wait for the server to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `chat-server` child process. Dropping it kills the process and
/// waits for it.
pub struct ChatServer {
    child: Child,
    addr: SocketAddr,
    /// Its data directory (records).
    pub data_dir: PathBuf,
    /// Whether the data directory is this server's alone, removed on drop.
    owns_data_dir: bool,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl ChatServer {
    /// Starts the server on `127.0.0.1:0` with its defaults.
    pub fn start() -> ChatServer {
        ChatServer::start_with(&[])
    }

    /// Starts the server on `127.0.0.1:0` with `extra` arguments, and
    /// returns once it has printed the address it listens on.
    pub fn start_with(extra: &[&str]) -> ChatServer {
        ChatServer::start_binary(env!("CARGO_BIN_EXE_chat-server"), &[], true, extra)
    }

    /// Starts `binary` with `before` arguments (a subcommand), then
    /// `--addr 127.0.0.1:0`, `--data-dir <fresh>` if `data_dir_flag`, and
    /// `extra`; returns once it has printed the address it listens on.
    pub fn start_binary(
        binary: &str,
        before: &[&str],
        data_dir_flag: bool,
        extra: &[&str],
    ) -> ChatServer {
        ChatServer::start_binary_at(binary, before, "127.0.0.1:0", data_dir_flag, extra)
    }

    /// [`ChatServer::start_binary`] listening on `addr` (a restart on the
    /// port its clients know).
    pub fn start_binary_at(
        binary: &str,
        before: &[&str],
        addr: &str,
        data_dir_flag: bool,
        extra: &[&str],
    ) -> ChatServer {
        let data_dir = fresh_dir("chat-data");
        let mut command = Command::new(binary);
        command.args(before).args(["--addr", addr]);
        if data_dir_flag {
            command.arg("--data-dir").arg(&data_dir);
        }
        command.args(extra);
        ChatServer::launch(command, data_dir, true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `chat-server` on `addr` with `--data-dir data_dir`, which it
    /// leaves in place when dropped, so that another server can be started
    /// on the same address and data, as after a crash. Until `deadline` it
    /// tries again while the address is still in use (a client's connection
    /// may hold the port for a moment); it panics with the output if the
    /// server never starts.
    pub fn start_on(addr: SocketAddr, data_dir: &Path, deadline: Instant) -> ChatServer {
        loop {
            let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
            command
                .arg("--addr")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir);
            match ChatServer::launch(command, data_dir.to_owned(), false) {
                Ok(server) => return server,
                Err(e) if e.contains("in use") && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Runs `command` with its output captured; returns once it has printed
    /// the address it listens on, or what it printed if it did not.
    fn launch(
        mut command: Command,
        data_dir: PathBuf,
        owns_data_dir: bool,
    ) -> Result<ChatServer, String> {
        // The chat servers' rate limits are off unless a test sets one of
        // them (then the others come from its config file or the
        // defaults): tests post faster than a person types (and
        // tests/limits.rs and tests/reload.rs have them on).
        let program = command.get_program().to_string_lossy().into_owned();
        let chat = program.ends_with("chat-server") || program.ends_with("chat-server-tokio");
        let set = command.get_args().any(|a| {
            let a = a.to_string_lossy();
            [
                "--messages-per-second",
                "--message-burst",
                "--joins-per-second",
                "--join-burst",
            ]
            .iter()
            .any(|flag| a.starts_with(flag))
        });
        if chat && !set {
            command.args(["--messages-per-second", "0", "--joins-per-second", "0"]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the chat-server binary");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().expect("piped stdout");
        let buf = Arc::clone(&stdout);
        thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&raw).into_owned();
                lock(&buf).push_str(&line);
                // Nobody listens once the server has started; that is fine.
                let _ = tx.send(line);
            }
        });
        let err = child.stderr.take().expect("piped stderr");
        let buf = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut chunk = [0u8; 4096];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => lock(&buf).push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, rest)) = line.trim_end().split_once(LISTENING) {
                        // The address, then maybe a note such as "(TLS)".
                        let rest = rest.split_whitespace().next().unwrap_or_default();
                        break rest
                            .parse::<SocketAddr>()
                            .unwrap_or_else(|e| panic!("bad listening address {rest:?}: {e}"));
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    // Let the reader threads catch the last output.
                    thread::sleep(Duration::from_millis(100));
                    return Err(format!(
                        "chat-server did not report its address ({e:?}); exit: {status:?}\n\
                         --- stdout ---\n{}\n--- stderr ---\n{}",
                        lock(&stdout),
                        lock(&stderr)
                    ));
                }
            }
        };
        Ok(ChatServer {
            child,
            addr,
            data_dir,
            owns_data_dir,
            stdout,
            stderr,
        })
    }

    /// Kills the server with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the server to exit by itself; its exit code and output.
    pub fn wait_exit(&mut self) -> (Option<i32>, String) {
        let status = self.child.wait().ok().and_then(|s| s.code());
        (status, self.output_report())
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The exit code once the server has exited (`Some(None)`: killed by a
    /// signal); `None` while it runs.
    pub fn try_exit_code(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed to stdout so far.
    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// Everything the server printed to stderr (its logs) so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Stdout lines equal to `line` (without the newline).
    pub fn count_lines(&self, line: &str) -> usize {
        lock(&self.stdout).lines().filter(|l| *l == line).count()
    }

    /// Stdout lines starting with `prefix`.
    pub fn count_lines_starting(&self, prefix: &str) -> usize {
        lock(&self.stdout)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// Waits until `pred` holds for the server's stdout, for at most
    /// `timeout`; returns whether it did.
    pub fn wait_for_stdout(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&lock(&self.stdout)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the stdout line `line`; panics with the
    /// output if it never comes.
    pub fn expect_line(&self, line: &str, timeout: Duration) {
        if !self.wait_for_stdout(timeout, |out| out.lines().any(|l| l == line)) {
            panic!(
                "chat-server never printed {line:?}\n{}",
                self.output_report()
            );
        }
    }

    /// Panics if the server has exited or has logged a panic.
    pub fn assert_healthy(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!(
                "chat-server exited unexpectedly: {status}\n{}",
                self.output_report()
            ),
            Err(e) => panic!("cannot query chat-server: {e}"),
        }
        let err = self.stderr();
        assert!(
            !err.contains("panicked"),
            "chat-server logged a panic\n{}",
            self.output_report()
        );
    }

    /// The server's output so far, for failure messages (the end of each
    /// stream if it is long).
    pub fn output_report(&self) -> String {
        format!(
            "--- chat-server stdout ---\n{}\n--- chat-server stderr ---\n{}",
            tail(&self.stdout(), 8000),
            tail(&self.stderr(), 8000)
        )
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    // A panicking test thread must not hide the output from the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The last `max` bytes of `s` (at a char boundary), marked if cut.
pub fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes cut ...]\n{}", &s[start..])
}
