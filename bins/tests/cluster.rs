//! Several `chat-server` nodes sharing rooms through the test's own
//! redis-server (`common/redis.rs`), driven by grpcio clients:
//!
//! - three nodes, clients on each, one room: one order, numbered without
//!   gaps, at every reader and in every node's History; presence across
//!   nodes, each notice once (`python/cluster.py`);
//! - a node killed with SIGKILL: its users leave within the bound, told
//!   once (`python/cluster_reap.py`);
//! - a node killed with SIGKILL twice under load, its clients going to the
//!   other nodes and resuming: every acknowledged post exactly once in the
//!   log and at every reader (`python/exactly_once.py` over three nodes);
//! - redis-server killed with SIGKILL and restarted from its AOF, then
//!   stopped (SIGSTOP) and let go on, while clients post and read: nothing
//!   acknowledged is lost, and the readers get everything without a gap.

#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::python::{run_script, script_passes, spawn_script, workspace, RunningScript};
use common::redis::RedisServer;
use common::{fresh_dir, ChatServer};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
/// How long a dead node's users may stay (README, "Several nodes"):
/// `chat_engine::redis::NODE_TTL + REAP_EVERY` and a margin.
const REAP_BOUND_SECS: u64 = 20;

fn node(redis: &RedisServer, addr: &str) -> ChatServer {
    ChatServer::start_binary_at(SERVER, &[], addr, false, &["--redis", &redis.url()])
}

fn nodes(redis: &RedisServer, n: usize) -> Vec<ChatServer> {
    (0..n).map(|_| node(redis, "127.0.0.1:0")).collect()
}

fn addrs(nodes: &[ChatServer]) -> String {
    nodes
        .iter()
        .map(|n| n.addr().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn report(nodes: &[ChatServer]) -> String {
    nodes
        .iter()
        .map(ChatServer::output_report)
        .collect::<Vec<_>>()
        .join("\n--- next node ---\n")
}

#[test]
fn three_nodes_share_one_order_and_presence() {
    let redis = RedisServer::start();
    let mut nodes = nodes(&redis, 3);
    let run = run_script("cluster.py", &addrs(&nodes), &["shared", "100"]);
    run.passed("cluster.py", &report(&nodes));
    for n in &mut nodes {
        n.assert_healthy();
    }
}

/// The seeds' grpcio scripts against a node of a cluster, each on a Redis
/// of its own (they expect fresh rooms): the seed 000 client's flow, and
/// authentication, permissions, switching and presence with the example
/// config; the login records are in Redis.
#[test]
fn the_seed_client_and_permissions_behave_as_on_one_node() {
    let redis = RedisServer::start();
    let mut server = node(&redis, "127.0.0.1:0");
    let out = script_passes(&mut server, "seed000_client.py", &[]);
    assert!(out.contains("Joined chat room room1"), "{out}");
    let redis = RedisServer::start();
    let config = workspace().join("bins/chat.example.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let url = redis.url();
    let mut server =
        ChatServer::start_binary(SERVER, &[], false, &["--redis", &url, "--config", config]);
    script_passes(&mut server, "rooms_auth.py", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("chat:logins")
            .arg("-")
            .arg("+")
            .query(&mut redis.connection())
            .expect("read the login records");
        let outcomes: Vec<String> = records
            .ids
            .iter()
            .filter_map(|e| match e.map.get("outcome") {
                Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        let refused = outcomes.iter().any(|o| o.starts_with("Unauthenticated"));
        if refused && outcomes.iter().any(|o| o == "ok") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "login records in Redis: {outcomes:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Moderation in a cluster: admin.py on node 1 (kick, ban, unban, the room
/// list, a deletion whose tombstone History shows); it ends with bob
/// banned, which node 2 (running all along) then refuses, until unbanned
/// there; then a deletion and a kick made on node 1 reach a stream and bob
/// on node 2.
#[test]
fn bans_and_tombstones_reach_every_node() {
    let redis = RedisServer::start();
    let config = workspace().join("bins/chat.example.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let url = redis.url();
    let args = ["--redis", url.as_str(), "--config", config];
    let mut one = ChatServer::start_binary(SERVER, &[], false, &args);
    let mut two = ChatServer::start_binary(SERVER, &[], false, &args);
    script_passes(&mut one, "admin.py", &["main"]);
    script_passes(&mut two, "admin.py", &["after-restart"]);
    let other = one.addr().to_string();
    script_passes(&mut two, "admin.py", &["cross", &other]);
    let audit: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("chat:audit")
        .arg("-")
        .arg("+")
        .query(&mut redis.connection())
        .expect("read the audit stream");
    // The attempt to delete a message that is not there is recorded too.
    assert_eq!(
        audit.ids.len(),
        9,
        "kick, ban, unban, delete x2, ban, unban, delete, kick"
    );
}

#[test]
fn a_killed_nodes_users_leave_once_within_the_bound() {
    let redis = RedisServer::start();
    let mut victim = node(&redis, "127.0.0.1:0");
    let mut survivor = node(&redis, "127.0.0.1:0");
    let dir = fresh_dir("reap");
    let list = format!("{},{}", victim.addr(), survivor.addr());
    let bound = REAP_BOUND_SECS.to_string();
    let dir_arg = dir.to_str().expect("a UTF-8 path").to_owned();
    let mut script = spawn_script("cluster_reap.py", &list, &["reaped", &dir_arg, &bound]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("ready").exists() {
        assert!(
            !script.has_exited() && Instant::now() < deadline,
            "the script never got ready"
        );
        thread::sleep(Duration::from_millis(20));
    }
    victim.kill();
    std::fs::write(dir.join("killed"), b"").expect("write the signal");
    let out = script
        .wait(Duration::from_secs(60))
        .passed("cluster_reap.py", &survivor.output_report());
    if let Some(line) = out.lines().find(|l| l.starts_with("zed left")) {
        eprintln!("{line}");
    }
    survivor.assert_healthy();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes the number of kills so far where the script's posters read it.
fn tell_kills(file: &Path, kills: usize) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, kills.to_string()).expect("write the kills file");
    std::fs::rename(&tmp, file).expect("rename the kills file");
}

/// The room exactly_once.py posts to.
const ROOM: &str = "exactly-once";
const POSTERS: u64 = 3;
const PER_POSTER: u64 = 60;
/// Something goes wrong once every poster could have this many stored...
const FAULT_AT: [u64; 2] = [15, 35];
/// ...and a poster posts its message `GATES[k]` only after fault `k + 1`.
const GATES: [u64; 2] = [22, 45];
const LAGS: [u64; 2] = [10, 30];
const LIMIT: Duration = Duration::from_secs(110);

/// Entries of the room's log in Redis (0 while it cannot be read).
fn stored(redis: &RedisServer) -> u64 {
    let Ok(client) = redis::Client::open(redis.url()) else {
        return 0;
    };
    client
        .get_connection_with_timeout(Duration::from_millis(300))
        .and_then(|mut c| {
            redis::cmd("XLEN")
                .arg(format!("chat:log:{ROOM}"))
                .query::<u64>(&mut c)
        })
        .unwrap_or(0)
}

/// Waits until the log holds `want` entries; if the script ends first (or
/// time runs out), fails with its output.
fn wait_for_stored(
    redis: &RedisServer,
    want: u64,
    script: RunningScript,
    deadline: Instant,
    nodes: &[ChatServer],
) -> RunningScript {
    let mut script = script;
    while stored(redis) < want {
        if script.has_exited() || Instant::now() > deadline {
            script
                .wait(Duration::from_secs(1))
                .passed("exactly_once.py", &report(nodes));
            panic!("exactly_once.py passed before {want} posts were stored");
        }
        thread::sleep(Duration::from_millis(5));
    }
    script
}

/// The (sender, client message id) of every entry in the room's log; and
/// checks they are numbered 1..M.
fn log_keys(redis: &RedisServer) -> Vec<(String, String)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("chat:log:{ROOM}"))
        .arg("-")
        .arg("+")
        .query(&mut redis.connection())
        .expect("read the log");
    let mut keys = Vec::new();
    for (i, e) in reply.ids.iter().enumerate() {
        assert_eq!(e.id, format!("{}-0", i + 1), "the log is numbered 1..M");
        let Some(redis::Value::BulkString(body)) = e.map.get("m") else {
            panic!("entry {} has no body", e.id);
        };
        let m: chat_proto::ChatMessage = prost::Message::decode(body.as_slice()).expect("a body");
        keys.push((m.user.unwrap_or_default().user_id, m.client_msg_id));
    }
    keys
}

/// Runs exactly_once.py over `nodes`, calling `fault(k)` when the posters
/// could have `FAULT_AT[k]` each stored, then checks Redis's log.
fn exactly_once_with(
    redis: &mut RedisServer,
    nodes: &mut [ChatServer],
    mut fault: impl FnMut(usize, &mut RedisServer, &mut [ChatServer]),
) {
    let began = Instant::now();
    let deadline = began + LIMIT;
    let dir = fresh_dir("cluster-exactly-once");
    let kills_file = dir.join("kills");
    tell_kills(&kills_file, 0);
    let list = |numbers: [u64; 2]| numbers.map(|n| n.to_string()).join(",");
    let args = [
        kills_file.to_str().expect("a UTF-8 path"),
        &POSTERS.to_string(),
        &PER_POSTER.to_string(),
        &list(GATES),
        &list(LAGS),
    ];
    let mut script = spawn_script("exactly_once.py", &addrs(nodes), &args);
    for (k, at) in FAULT_AT.into_iter().enumerate() {
        script = wait_for_stored(redis, POSTERS * at, script, deadline, nodes);
        fault(k, redis, nodes);
        tell_kills(&kills_file, k + 1);
        eprintln!("fault {} at {:.1?}", k + 1, began.elapsed());
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let out = script.wait(left).passed("exactly_once.py", &report(nodes));
    if let Some(summary) = out.lines().find(|l| l.starts_with("summary: ")) {
        eprintln!("{summary}");
    }
    let keys = log_keys(redis);
    let distinct: HashSet<_> = keys.iter().collect();
    let total = (POSTERS * PER_POSTER) as usize;
    assert_eq!(
        (keys.len(), distinct.len()),
        (total, total),
        "every post once in the log"
    );
    for n in nodes.iter_mut() {
        n.assert_healthy();
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("exactly once in {:.1?}", began.elapsed());
}

#[test]
fn a_node_killed_under_load_loses_nothing_its_clients_go_on_elsewhere() {
    let mut redis = RedisServer::start();
    let mut nodes = nodes(&redis, 3);
    exactly_once_with(&mut redis, &mut nodes, |_, redis, nodes| {
        let addr = nodes[0].addr().to_string();
        nodes[0].kill();
        // Back after a while, on its address: its clients went elsewhere
        // meanwhile.
        thread::sleep(Duration::from_millis(500));
        nodes[0] = node(redis, &addr);
    });
}

#[test]
fn redis_killed_or_stopped_under_load_loses_nothing_acknowledged() {
    let mut redis = RedisServer::start();
    let mut nodes = nodes(&redis, 2);
    exactly_once_with(&mut redis, &mut nodes, |k, redis, _| {
        if k == 0 {
            redis.kill();
            thread::sleep(Duration::from_millis(500));
            redis.restart();
        } else {
            redis.pause(true);
            thread::sleep(Duration::from_secs(3));
            redis.pause(false);
        }
    });
}
