//! The Python grpcio side of the interop tests: a venv under
//! `target/pyenv` made on first use (pinned in `tests/python/requirements.txt`),
//! stubs generated from every proto in `proto/`, and a runner for the
//! scripts in `tests/python/`.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ChatServer;

/// Longest a script may run before it is killed and its test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for the server's log lines after a script is done.
pub const LOG_WAIT: Duration = Duration::from_secs(5);

/// The Python side, ready to run scripts.
struct PyEnv {
    /// The venv's interpreter.
    python: PathBuf,
    /// Directory with `chat_pb2.py` and `chat_pb2_grpc.py`.
    gen: PathBuf,
    /// `bins/tests/python`.
    scripts: PathBuf,
}

pub fn workspace() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// The Python environment, made once per test process; panics (failing the
/// test) with the reason if it cannot be made.
fn py_env() -> &'static PyEnv {
    static ENV: OnceLock<Result<PyEnv, String>> = OnceLock::new();
    match ENV.get_or_init(make_py_env) {
        Ok(env) => env,
        Err(why) => panic!("the Python grpcio environment could not be set up:\n{why}"),
    }
}

fn make_py_env() -> Result<PyEnv, String> {
    let ws = workspace();
    let scripts = ws.join("bins/tests/python");
    let venv = ws.join("target/pyenv");
    ensure_venv(&venv, &scripts)?;
    let python = venv.join("bin/python");
    let gen = generate_stubs(&python, &venv, &ws.join("proto"))?;
    Ok(PyEnv {
        python,
        gen,
        scripts,
    })
}

/// A name no other process or thread picks.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}.{}.{nanos}", std::process::id())
}

/// Runs a setup command; its output goes into the error if it fails.
fn run_setup(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Whether the venv at `venv` has exactly the pinned packages.
fn venv_ok(venv: &Path, scripts: &Path) -> bool {
    Command::new(venv.join("bin/python"))
        .arg(scripts.join("check_env.py"))
        .arg(scripts.join("requirements.txt"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes `venv` unless it is there with the pinned packages. The venv is
/// built under a unique name and renamed into place, so two test processes
/// racing here cannot leave a half-made one: the first rename wins and the
/// other process uses the winner's.
fn ensure_venv(venv: &Path, scripts: &Path) -> Result<(), String> {
    if venv_ok(venv, scripts) {
        return Ok(());
    }
    let target = venv.parent().expect("target dir");
    fs::create_dir_all(target).map_err(|e| format!("cannot create {target:?}: {e}"))?;
    let tmp = target.join(unique("pyenv.building"));
    let result = build_venv(&tmp, scripts).and_then(|()| install_venv(&tmp, venv, scripts));
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn build_venv(tmp: &Path, scripts: &Path) -> Result<(), String> {
    run_setup(
        Command::new("python3").arg("-m").arg("venv").arg(tmp),
        "creating a venv with `python3 -m venv` (python3 and its venv module are needed)",
    )?;
    run_setup(
        Command::new(tmp.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(scripts.join("requirements.txt")),
        "installing tests/python/requirements.txt with pip",
    )?;
    if !venv_ok(tmp, scripts) {
        return Err(format!(
            "the new venv {tmp:?} still lacks the packages of requirements.txt"
        ));
    }
    Ok(())
}

/// Moves the venv built at `tmp` to `venv`, replacing a stale one there.
/// (Only `bin/python` is used from it; the console scripts pip wrote into
/// `tmp/bin` keep `tmp` in their `#!` lines.)
fn install_venv(tmp: &Path, venv: &Path, scripts: &Path) -> Result<(), String> {
    for _ in 0..3 {
        match fs::rename(tmp, venv) {
            Ok(()) => return Ok(()),
            Err(_) if venv_ok(venv, scripts) => return Ok(()), // another process won
            Err(_) => {
                // A stale or broken venv: move it aside, then delete it.
                let stale = venv.with_file_name(unique("pyenv.stale"));
                if fs::rename(venv, &stale).is_ok() {
                    let _ = fs::remove_dir_all(&stale);
                }
            }
        }
    }
    fs::rename(tmp, venv).map_err(|e| format!("cannot move {tmp:?} to {venv:?}: {e}"))
}

/// Generates `chat_pb2.py` and `chat_pb2_grpc.py` with grpc_tools.protoc
/// into `<venv>/gen-<hash of the proto>`, made under a unique name and
/// renamed into place; returns that directory.
fn generate_stubs(python: &Path, venv: &Path, proto_dir: &Path) -> Result<PathBuf, String> {
    let mut protos: Vec<PathBuf> = fs::read_dir(proto_dir)
        .map_err(|e| format!("cannot list {proto_dir:?}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    protos.sort();
    let mut h = DefaultHasher::new();
    for proto in &protos {
        let text = fs::read(proto).map_err(|e| format!("cannot read {proto:?}: {e}"))?;
        (proto.file_name(), text).hash(&mut h);
    }
    let gen = venv.join(format!("gen-{:016x}", h.finish()));
    let complete = |dir: &Path| {
        protos.iter().all(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            dir.join(format!("{stem}_pb2.py")).is_file()
                && dir.join(format!("{stem}_pb2_grpc.py")).is_file()
        })
    };
    if complete(&gen) {
        return Ok(gen);
    }
    let tmp = venv.join(unique("gen.tmp"));
    fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {tmp:?}: {e}"))?;
    let result = run_setup(
        Command::new(python)
            .args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", proto_dir.display()))
            .arg(format!("--python_out={}", tmp.display()))
            .arg(format!("--grpc_python_out={}", tmp.display()))
            .args(&protos),
        "generating Python stubs from proto/",
    )
    .and_then(|()| {
        if !complete(&tmp) {
            return Err(format!(
                "protoc did not make every *_pb2.py and *_pb2_grpc.py in {tmp:?}"
            ));
        }
        match fs::rename(&tmp, &gen) {
            Ok(()) => Ok(gen.clone()),
            Err(_) if complete(&gen) => Ok(gen.clone()), // another process won
            Err(e) => Err(format!("cannot move {tmp:?} to {gen:?}: {e}")),
        }
    });
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// What a script run gave.
pub struct ScriptRun {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    took: Duration,
    /// How long it was allowed to run.
    limit: Duration,
}

impl ScriptRun {
    /// Whether the script exited 0.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Fails the test, with everything the script printed and `report`
    /// (the server's side), unless the script exited 0; returns its stdout.
    pub fn passed(self, script: &str, report: &str) -> String {
        let verdict = match self.status {
            Some(s) if s.success() => None,
            Some(s) => Some(format!("{script} failed: {s}")),
            None => Some(format!(
                "{script} timed out after {:?} and was killed",
                self.limit
            )),
        };
        if let Some(verdict) = verdict {
            panic!(
                "{verdict}\n--- {script} stdout ---\n{}\n--- {script} stderr ---\n{}\n{report}",
                super::tail(&self.stdout, 16000),
                super::tail(&self.stderr, 16000),
            );
        }
        eprintln!("{script}: passed in {:.1?}", self.took);
        self.stdout
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A script started by [`spawn_script`], running while the test does
/// something else (such as crashing the server).
pub struct RunningScript {
    child: Child,
    began: Instant,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
}

impl RunningScript {
    /// Whether the script has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the script to exit, for at most `limit` from its start;
    /// then kills it with anything it started.
    pub fn wait(mut self, limit: Duration) -> ScriptRun {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if self.began.elapsed() < limit => {
                    thread::sleep(Duration::from_millis(20));
                }
                Ok(None) | Err(_) => {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", self.child.id())])
                        .status();
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        ScriptRun {
            status,
            stdout: self.stdout.join().unwrap_or_default(),
            stderr: self.stderr.join().unwrap_or_default(),
            took: self.began.elapsed(),
            limit,
        }
    }
}

/// Starts `tests/python/<script> <addr> <args>` with the venv's Python, in
/// a process group of its own (so that a timeout kills its children too).
pub fn spawn_script(script: &str, addr: &str, args: &[&str]) -> RunningScript {
    let env = py_env();
    let began = Instant::now();
    let mut child = Command::new(&env.python)
        .arg("-u")
        .arg(env.scripts.join(script))
        .arg(addr)
        .args(args)
        .current_dir(&env.scripts)
        .env("PYTHONPATH", &env.gen)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // grpcio would send loopback traffic through a configured proxy.
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("grpc_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script} with {:?}: {e}", env.python));
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    RunningScript {
        child,
        began,
        stdout,
        stderr,
    }
}

/// Runs `tests/python/<script> <addr> <args>` with the venv's Python, and
/// kills it (with anything it started) after [`SCRIPT_TIMEOUT`].
pub fn run_script(script: &str, addr: &str, args: &[&str]) -> ScriptRun {
    spawn_script(script, addr, args).wait(SCRIPT_TIMEOUT)
}

/// Runs a script against `server` and fails the test, with everything both
/// sides printed, unless it exits 0. Returns the script's stdout.
pub fn script_passes(server: &mut ChatServer, script: &str, args: &[&str]) -> String {
    let out = script_passes_stopping(server, script, args);
    server.assert_healthy();
    out
}

/// [`script_passes`] for a script that may stop the server.
pub fn script_passes_stopping(server: &mut ChatServer, script: &str, args: &[&str]) -> String {
    run_script(script, &server.addr().to_string(), args).passed(script, &server.output_report())
}
