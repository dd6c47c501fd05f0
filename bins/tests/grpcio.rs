//! Interop with Python grpcio, the seed's own client library: the real
//! `chat-server` binary against the scripts in `tests/python/`.
//!
//! No manual setup: the first test of a run makes the Python environment,
//! a venv at `<workspace>/target/pyenv` with the packages pinned in
//! `tests/python/requirements.txt` (from PyPI), unless one with exactly those
//! versions is there already, and generates the Python stubs from
//! `proto/chat.proto` into it. If that fails, every test here fails and
//! says why.

// Scripts are run in their own process group, to kill what they start.
#![cfg(unix)]

mod common;

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ChatServer;

/// Longest a script may run before it is killed and its test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for the server's log lines after a script is done.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// The Python side, ready to run scripts.
struct PyEnv {
    /// The venv's interpreter.
    python: PathBuf,
    /// Directory with `chat_pb2.py` and `chat_pb2_grpc.py`.
    gen: PathBuf,
    /// `bins/tests/python`.
    scripts: PathBuf,
}

fn workspace() -> PathBuf {
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
    let proto = proto_dir.join("chat.proto");
    let text = fs::read(&proto).map_err(|e| format!("cannot read {proto:?}: {e}"))?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let gen = venv.join(format!("gen-{:016x}", h.finish()));
    let complete =
        |dir: &Path| dir.join("chat_pb2.py").is_file() && dir.join("chat_pb2_grpc.py").is_file();
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
            .arg(&proto),
        "generating Python stubs from proto/chat.proto",
    )
    .and_then(|()| {
        if !complete(&tmp) {
            return Err(format!(
                "protoc made no chat_pb2.py/chat_pb2_grpc.py in {tmp:?}"
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
struct ScriptRun {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn read_all(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `tests/python/<script> <addr> <args>` with the venv's Python, and
/// kills it (with anything it started) after [`SCRIPT_TIMEOUT`].
fn run_script(script: &str, addr: &str, args: &[&str]) -> ScriptRun {
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
        // Its own process group, so a timeout kills its children too.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script} with {:?}: {e}", env.python));
    let out = read_all(child.stdout.take().expect("piped stdout"));
    let err = read_all(child.stderr.take().expect("piped stderr"));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if began.elapsed() < SCRIPT_TIMEOUT => {
                thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    ScriptRun {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        took: began.elapsed(),
    }
}

/// Runs a script against `server` and fails the test, with everything both
/// sides printed, unless it exits 0. Returns the script's stdout.
fn script_passes(server: &mut ChatServer, script: &str, args: &[&str]) -> String {
    let run = run_script(script, &server.addr().to_string(), args);
    let verdict = match run.status {
        Some(s) if s.success() => None,
        Some(s) => Some(format!("{script} failed: {s}")),
        None => Some(format!(
            "{script} timed out after {SCRIPT_TIMEOUT:?} and was killed"
        )),
    };
    if let Some(verdict) = verdict {
        panic!(
            "{verdict}\n--- {script} stdout ---\n{}\n--- {script} stderr ---\n{}\n{}",
            common::tail(&run.stdout, 16000),
            common::tail(&run.stderr, 16000),
            server.output_report()
        );
    }
    eprintln!("{script}: passed in {:.1?}", run.took);
    server.assert_healthy();
    run.stdout
}

/// Test 1: the seed 000 client's flow: JoinChatRoom shows room1 and the
/// history; one JoinChat call per message, each echoing it and ending OK;
/// a second client's JoinChatRoom has the messages in order; presence ends
/// with the connection. The server logs the seed's lines.
#[test]
fn seed_000_client_flow() {
    let mut server = ChatServer::start();
    let out = script_passes(&mut server, "seed000_client.py", &[]);
    assert!(out.contains("Joined chat room room1"), "{out}");
    assert!(out.contains("Server response: how are you?"), "{out}");
    assert!(out.contains("alice: héllo wörld ✓"), "{out}");
    for text in ["hello", "how are you?", "héllo wörld ✓", "bye"] {
        server.expect_line(&format!("Received message from u1: {text}"), LOG_WAIT);
        assert_eq!(
            server.count_lines(&format!("Received message from u1: {text}")),
            1,
            "{}",
            server.output_report()
        );
    }
    server.expect_line("User u1 joined the chat room room1.", LOG_WAIT);
    server.expect_line("User u2 joined the chat room room1.", LOG_WAIT);
}

/// Test 2: seed 001's threaded client, two at once, both sending: everyone
/// gets every message, each sender's in order, in one total order.
#[test]
fn seed_001_threaded_clients_share_one_order() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "threaded_clients.py", &[]);
    for user in ["user-a", "user-b"] {
        let prefix = format!("Received message from {user}: ");
        let ok = server.wait_for_stdout(LOG_WAIT, |out| {
            out.lines().filter(|l| l.starts_with(&prefix)).count() == 26
        });
        assert!(
            ok,
            "want 26 `{prefix}` lines, got {}\n{}",
            server.count_lines_starting(&prefix),
            server.output_report()
        );
    }
}

/// Test 3: a JoinChat stream that never sends receives broadcasts, and
/// after its half-close everything broadcast before it, then OK.
#[test]
fn silent_stream_receives_and_drains_on_half_close() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "silent_stream.py", &[]);
}

/// Test 4: unknown method, malformed protobuf, a message over 4 MiB, chat
/// text over its limit and a deadline each get their status through
/// grpcio, and a normal client works afterwards.
#[test]
fn bad_input_gets_the_right_status() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "bad_input.py", &[]);
    // Each of the 5 cases checks a normal client twice afterwards; none of
    // the rejected messages was taken as a chat message.
    let healthy = "Received message from healthy: ";
    server.wait_for_stdout(LOG_WAIT, |out| {
        out.lines().filter(|l| l.starts_with(healthy)).count() >= 10
    });
    let out = server.stdout();
    let received: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Received message from "))
        .collect();
    assert!(
        received.len() == 10 && received.iter().all(|l| l.starts_with(healthy)),
        "want exactly the 10 healthy messages logged, got {received:#?}\n{}",
        server.output_report()
    );
}

/// Test 5: a client SIGKILLed with its JoinChat stream open, while messages
/// flow to it, does not disturb another client.
#[test]
fn vanished_client_does_not_disturb_others() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "vanishing_client.py", &[]);
    server.expect_line("Received message from survivor: after-19", LOG_WAIT);
}

/// Test 6: after 60 messages, a joiner gets at least the last 50, oldest
/// first, ending with the most recent.
#[test]
fn join_history_is_the_most_recent_messages() {
    let mut server = ChatServer::start();
    script_passes(&mut server, "history.py", &[]);
    let prefix = "Received message from poster: ";
    let all = server.wait_for_stdout(LOG_WAIT, |out| {
        out.lines().filter(|l| l.starts_with(prefix)).count() == 60
    });
    assert!(all, "want 60 `{prefix}` lines\n{}", server.output_report());
    server.expect_line("User late joined the chat room room1.", LOG_WAIT);
}

/// Issue 3 through grpcio with only the .proto and metadata: guests and
/// tokens, UNAUTHENTICATED, PERMISSION_DENIED for read and for post,
/// NOT_FOUND rooms, spoofing, switching rooms with a following stream,
/// presence notices, numbering and history on join; and the records.
#[test]
fn rooms_permissions_and_switching() {
    let config = workspace().join("bins/chat.example.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let mut server = ChatServer::start_with(&["--config", config]);
    script_passes(&mut server, "rooms_auth.py", &[]);
    server.expect_line("Received message from eve: room1 #6", LOG_WAIT);
    // The records, as the seed's login_history.txt and message_history.txt.
    let logins = wait_for_file(
        &server.data_dir.join("login_history.txt"),
        "outcome: UNAUTHENTICATED",
    );
    for want in [
        "userid: alice, room: staff, peer: 127.0.0.1:",
        "userid: eve, room: staff, peer: 127.0.0.1:",
        "outcome: PERMISSION_DENIED",
        "outcome: ok",
    ] {
        assert!(
            logins.contains(want),
            "login_history.txt lacks {want:?}:\n{logins}"
        );
    }
    let messages = wait_for_file(&server.data_dir.join("message_history.txt"), "room1 #6");
    assert!(
        messages.contains(
            "userid: alice, userName: Alice, room: staff, seq: 1, message: \"hello staff\""
        ),
        "{messages}"
    );
    assert!(
        !messages.contains("I am bob") && !messages.contains("may I?"),
        "{messages}"
    );
}

/// The file's text once it contains `needle` (records are written by a
/// thread of their own, a moment after the event).
fn wait_for_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
