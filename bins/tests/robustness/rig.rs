//! One attack's rig: the server (one at a time: the attacks measure
//! latency and memory on a shared 2-core machine), its memory at start and
//! at its peak, the bystander, and the findings: every check is recorded
//! with what was measured against its bound, and the test fails at the end
//! with all of them, so one run says everything that is wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::bystander::{self, Bystander, Report};
use crate::common::{fresh_dir, ChatServer};
use crate::rss::{self, mib};

/// The bystander's 99th percentile round trip must stay under this: 50 ms
/// in release builds, the latency verdict (`cargo test --release -p
/// chat-bins --test robustness`, by hand on a quiet machine; results in the
/// README's "Reliability"). In debug builds, which is what `cargo test` and
/// CI run on a shared 2-core machine, a timing bound would only measure the
/// neighbours, so the bound there is 1 s: a check that the bystander is not
/// starved (every probe must also be echoed), with the p99 printed.
pub const P99_BOUND: Duration =
    Duration::from_millis(if cfg!(debug_assertions) { 1000 } else { 50 });

/// What we pass as `--memory-budget-mb`; peak RSS must stay under the
/// resident size at start plus this.
pub const BUDGET_MB: u64 = 64;

/// The bystander watches at least this long from the attack's start.
const MIN_WATCH: Duration = Duration::from_millis(1500);

/// How to start the server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--memory`: no store.
    pub memory: bool,
    /// More flags.
    pub extra: Vec<String>,
    /// Start it under `ulimit -n` of this.
    pub nofile: Option<u32>,
}

/// See the module docs.
pub struct Rig {
    name: &'static str,
    pub server: ChatServer,
    options: Options,
    data_dir: PathBuf,
    baseline_kib: u64,
    peak_kib: u64,
    failures: Vec<String>,
    notes: Vec<String>,
    started: Instant,
    _serial: MutexGuard<'static, ()>,
}

/// The server's `--help`, to know which flags it has yet.
fn help() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .arg("--help")
            .output()
            .expect("chat-server --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

impl Rig {
    /// Starts the server for the attack `name`.
    pub fn start(name: &'static str, options: Options) -> Rig {
        static SERIAL: Mutex<()> = Mutex::new(());
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let data_dir = fresh_dir("robust");
        let mut failures = Vec::new();
        let server = spawn(&options, &data_dir, &mut failures);
        let mut rig = Rig {
            name,
            server,
            options,
            data_dir,
            baseline_kib: 0,
            peak_kib: 0,
            failures,
            notes: Vec::new(),
            started: Instant::now(),
            _serial: serial,
        };
        rig.baseline_kib = rig.memory().rss_kib;
        rig
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn memory(&self) -> rss::Memory {
        rss::read(self.server.pid()).unwrap_or_default()
    }

    /// Kills the server (SIGKILL) and starts it again on the same data
    /// directory.
    pub fn restart(&mut self) {
        self.peak_kib = self.peak_kib.max(self.memory().peak_kib);
        self.server.kill();
        let mut ignored = Vec::new();
        self.server = spawn(&self.options, &self.data_dir, &mut ignored);
    }

    /// Runs `attack` (which must end by itself within a few seconds) while
    /// a bystander posts in a room of its own; returns what the attack
    /// returned and the bystander's report, whose checks are recorded.
    pub fn attack<R>(&mut self, attack: impl FnOnce(SocketAddr) -> R) -> (R, Report) {
        let room = format!("bystander-{}", self.name);
        let bystander = Bystander::start(self.addr(), &room);
        // A first round trip before the attack starts.
        std::thread::sleep(Duration::from_millis(300));
        let cpu = || {
            let server = rss::cpu_secs(self.server.pid()).unwrap_or_default();
            (
                server,
                rss::cpu_secs(std::process::id()).unwrap_or_default(),
            )
        };
        let (t0, (server0, ours0)) = (Instant::now(), cpu());
        let result = attack(self.addr());
        let (server1, ours1) = cpu();
        // Enough probes and new connections to judge, even after a short
        // attack.
        std::thread::sleep(MIN_WATCH.saturating_sub(t0.elapsed()));
        self.note(format!(
            "attack: {:.1} s; CPU used meanwhile: server {:.1} s, this test process (attackers, bystander) {:.1} s",
            t0.elapsed().as_secs_f64(),
            server1 - server0,
            ours1 - ours0
        ));
        let report = bystander.stop();
        self.check_bystander(&report);
        (result, report)
    }

    fn check_bystander(&mut self, r: &Report) {
        let p99 = r.p99();
        self.note(format!(
            "bystander: {} probes, {} echoed, p50 {:?}, p99 {:?}, max {:?}; {} new connections, slowest {:?}",
            r.sent,
            r.rtts.len(),
            r.percentile(50),
            p99,
            r.max(),
            r.connects,
            r.slowest_connect
        ));
        match p99 {
            Some(p) => self.expect(
                p < P99_BOUND,
                format!("bystander p99 round trip {p:?} (bound {P99_BOUND:?})"),
            ),
            None => self.fail("bystander: no probe echoed at all".into()),
        }
        self.expect(
            r.unanswered.is_empty(),
            format!(
                "bystander: {} of {} probes never echoed (first: {:?})",
                r.unanswered.len(),
                r.sent,
                r.unanswered.first()
            ),
        );
        for e in r.errors.iter().take(3) {
            self.fail(format!("bystander: {e}"));
        }
        self.expect(
            r.connect_failures.is_empty() && r.connects > 0,
            format!(
                "bystander: {} of {} new connections failed (first: {:?})",
                r.connect_failures.len(),
                r.connects,
                r.connect_failures.first()
            ),
        );
    }

    /// Checks that every probe the bystander saw echoed is in its room's
    /// history.
    pub fn check_history(&mut self, r: &Report) {
        match bystander::missing_from_history(self.addr(), &r.room, &r.acked) {
            Ok(missing) => self.expect(
                missing.is_empty(),
                format!(
                    "{} of {} acknowledged bystander messages missing from History (seqs {:?})",
                    missing.len(),
                    r.acked.len(),
                    &missing[..missing.len().min(10)]
                ),
            ),
            Err(e) => self.fail(format!("History of the bystander's room failed: {e}")),
        }
    }

    /// Records a finding if `ok` is false.
    pub fn expect(&mut self, ok: bool, finding: String) {
        if !ok {
            self.fail(finding);
        }
    }

    /// Records a finding.
    pub fn fail(&mut self, finding: String) {
        self.failures.push(finding);
    }

    /// Records a measurement, printed whether the test passes or not.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The final checks (memory, the server still up), then passes or
    /// fails with every finding.
    pub fn finish(mut self) {
        let m = self.memory();
        let peak = self.peak_kib.max(m.peak_kib);
        let bound = self.baseline_kib + BUDGET_MB * 1024;
        self.note(format!(
            "memory: peak RSS {} (baseline {} + budget {BUDGET_MB} MiB = {}), now {}",
            mib(peak),
            mib(self.baseline_kib),
            mib(bound),
            mib(m.rss_kib)
        ));
        self.expect(
            peak < bound,
            format!(
                "peak RSS {} over {} (baseline + budget)",
                mib(peak),
                mib(bound)
            ),
        );
        if let Some(code) = self.server.try_exit_code() {
            self.fail(format!("the server exited during the attack: {code:?}"));
        }
        if self.server.stderr().contains("panicked") {
            self.fail("the server panicked".into());
        }
        let took = self.started.elapsed();
        println!("[{}] {:.1} s", self.name, took.as_secs_f64());
        for n in &self.notes {
            println!("[{}]   {n}", self.name);
        }
        if !self.failures.is_empty() {
            panic!(
                "{}: {} finding(s):\n  - {}\n{}",
                self.name,
                self.failures.len(),
                self.failures.join("\n  - "),
                clip_lines(&crate::common::tail(&self.server.output_report(), 3000))
            );
        }
    }
}

/// `text` with every line cut to 200 bytes (the server echoes what it is
/// sent, megabytes of it in some attacks).
fn clip_lines(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(|l| crate::client::clip(l, 200)).collect();
    lines.join("\n")
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Starts the server with `options`; flags it does not have yet are left
/// out and recorded as findings.
fn spawn(options: &Options, data_dir: &std::path::Path, failures: &mut Vec<String>) -> ChatServer {
    let mut args: Vec<String> = vec!["--data-dir".into(), data_dir.display().to_string()];
    if options.memory {
        args.push("--memory".into());
    }
    let budget = BUDGET_MB.to_string();
    let mut wanted: Vec<&str> = vec!["--memory-budget-mb", &budget];
    wanted.extend(options.extra.iter().map(String::as_str));
    let mut i = 0;
    while i < wanted.len() {
        let flag = wanted[i];
        let takes_value = wanted.get(i + 1).is_some_and(|v| !v.starts_with("--"));
        let n = if takes_value { 2 } else { 1 };
        if flag.starts_with("--") && !help().contains(flag) {
            failures.push(format!(
                "chat-server has no {flag} flag yet (ran without it)"
            ));
        } else {
            args.extend(wanted[i..i + n].iter().map(|s| s.to_string()));
        }
        i += n;
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exe = env!("CARGO_BIN_EXE_chat-server");
    match options.nofile {
        None => ChatServer::start_binary(exe, &[], false, &args),
        Some(n) => {
            let script = format!("ulimit -n {n} && exec \"$0\" \"$@\"");
            ChatServer::start_binary("sh", &["-c", &script, exe], false, &args)
        }
    }
}
