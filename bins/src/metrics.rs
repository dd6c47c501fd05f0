//! `--metrics-addr`: Prometheus text exposition at `GET /metrics`, on a
//! thread of its own. Each scrape reads the figures the server keeps (the
//! transport's counts per method, the chat's events counted here, the
//! store's commits, the Redis engine's state) and encodes them with
//! `prometheus-client` (OpenMetrics text, which Prometheus reads).
//!
//! The HTTP side is as small as it can be and defensive: one request per
//! connection, at most `MAX_REQUEST` (8 KiB) bytes read, `IO_TIMEOUT` (5 s) to send it,
//! `GET /metrics` answered, anything else 404 (405 for another method), the
//! connection closed after each answer. Scrapes are served one at a time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_engine::redis::RedisStats;
use chat_engine::{CommitStats, COMMIT_BUCKETS_US};
use chat_sansio::chat::ChatEvent;
use chat_sansio::Code;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use transport_h2::StatsHandle;

/// Most bytes of a request read (a scrape's request is a few hundred).
const MAX_REQUEST: usize = 8 * 1024;
/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the chat's events say, counted as they pass to the console.
#[derive(Debug, Default)]
pub struct ChatCounters {
    posted: AtomicU64,
    delivered: AtomicU64,
    rate_limited_posts: AtomicU64,
    rate_limited_joins: AtomicU64,
    logins: AtomicU64,
    refused_logins: AtomicU64,
}

impl ChatCounters {
    /// Counts one of the chat's events.
    pub fn count(&self, event: &ChatEvent) {
        let counter = match event {
            ChatEvent::Append(_) => &self.posted,
            ChatEvent::Message { .. } => &self.delivered,
            ChatEvent::RateLimited { join: true, .. } => &self.rate_limited_joins,
            ChatEvent::RateLimited { join: false, .. } => &self.rate_limited_posts,
            ChatEvent::Login {
                outcome: Ok(()), ..
            } => &self.logins,
            ChatEvent::Login { .. } => &self.refused_logins,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the figures come from.
pub struct Sources {
    /// The transport's counts.
    pub server: StatsHandle,
    /// The chat's events.
    pub chat: Arc<ChatCounters>,
    /// The store's commits (SQLite or Redis).
    pub commits: Option<Arc<CommitStats>>,
    /// The Redis engine, with several nodes.
    pub redis: Option<Arc<RedisStats>>,
}

/// Serves `GET /metrics` on `addr` from a thread of its own; returns the
/// address bound.
pub fn serve(addr: &str, sources: Sources) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &sources) {
                    tracing::debug!("metrics: {e}");
                }
            }
        })?;
    Ok(bound)
}

/// Reads one request and answers it.
fn answer(mut stream: TcpStream, sources: &Sources) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    match (method, target) {
        (b"GET", b"/metrics") => respond(
            &mut stream,
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            &render(sources),
        ),
        (b"GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", ""),
    }
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// A histogram whose buckets were counted elsewhere (the store's commits).
#[derive(Debug)]
struct CountedHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for CountedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type Labels = Vec<(&'static str, String)>;

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

/// The exposition, as of now.
pub fn render(sources: &Sources) -> String {
    let mut r = Registry::with_prefix("chat");
    let calls = sources.server.call_stats();
    r.register(
        "connections",
        "Client connections open",
        ConstGauge::new(sources.server.connections() as i64),
    );
    let open = Family::<Labels, Gauge>::default();
    let started = Family::<Labels, ConstCounterBox>::new_with_constructor(ConstCounterBox::zero);
    let ended = Family::<Labels, ConstCounterBox>::new_with_constructor(ConstCounterBox::zero);
    for m in calls.methods() {
        let method = vec![("method", m.path.clone())];
        open.get_or_create(&method).set(m.open() as i64);
        started.get_or_create(&method).set(m.started);
        for code in 0..=16u8 {
            let n = m.ended[usize::from(code)];
            if n > 0 {
                let name = Code::from_u32(u32::from(code)).name();
                let labels = vec![("method", m.path.clone()), ("code", name.to_owned())];
                ended.get_or_create(&labels).set(n);
            }
        }
        if m.cancelled > 0 {
            let labels = vec![
                ("method", m.path.clone()),
                ("code", "CANCELLED_BY_CLIENT".into()),
            ];
            ended.get_or_create(&labels).set(m.cancelled);
        }
    }
    r.register("calls_open", "Calls open, by method", open);
    r.register("calls_started", "Calls opened, by method", started);
    r.register(
        "calls_ended",
        "Calls ended, by method and status code (CANCELLED_BY_CLIENT: reset, or the connection closed)",
        ended,
    );
    let busy = Family::<Labels, ConstSecondsBox>::new_with_constructor(ConstSecondsBox::default);
    for (i, d) in sources.server.shard_busy().iter().enumerate() {
        busy.get_or_create(&vec![("shard", i.to_string())])
            .set(d.as_secs_f64());
    }
    r.register(
        "shard_busy_seconds",
        "Time each shard thread has spent busy (its share of wall time is its load)",
        busy,
    );
    r.register(
        "request_bytes",
        "Request message bytes received",
        counter(calls.bytes_in),
    );
    r.register(
        "response_bytes",
        "Response message bytes queued (a broadcast counted once)",
        counter(calls.bytes_out),
    );
    r.register(
        "slow_consumer_disconnects",
        "Calls ended because their client stopped reading",
        counter(calls.slow_consumers),
    );
    let chat = &sources.chat;
    let get = |c: &AtomicU64| counter(c.load(Ordering::Relaxed));
    r.register(
        "messages_posted",
        "Posts accepted and sent to the store",
        get(&chat.posted),
    );
    r.register(
        "messages_delivered",
        "Messages delivered to their rooms",
        get(&chat.delivered),
    );
    let limited = Family::<Labels, ConstCounterBox>::new_with_constructor(ConstCounterBox::zero);
    limited
        .get_or_create(&vec![("kind", "post".into())])
        .set(chat.rate_limited_posts.load(Ordering::Relaxed));
    limited
        .get_or_create(&vec![("kind", "join".into())])
        .set(chat.rate_limited_joins.load(Ordering::Relaxed));
    r.register(
        "rate_limited",
        "Posts and joins refused over a rate limit",
        limited,
    );
    r.register("logins", "Successful logins", get(&chat.logins));
    r.register(
        "refused_logins",
        "Refused login attempts",
        get(&chat.refused_logins),
    );
    if let Some(c) = &sources.commits {
        let commits = c.commits.load(Ordering::Relaxed);
        let mut buckets: Vec<(f64, u64)> = COMMIT_BUCKETS_US
            .iter()
            .zip(&c.latency_buckets)
            .map(|(&b, n)| (b as f64 / 1e6, n.load(Ordering::Relaxed)))
            .collect();
        buckets.push((
            f64::INFINITY,
            c.latency_buckets[COMMIT_BUCKETS_US.len()].load(Ordering::Relaxed),
        ));
        r.register(
            "store_commit_seconds",
            "Time of each store commit (a batch of appends)",
            CountedHistogram {
                sum: c.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
                count: commits,
                buckets,
            },
        );
        r.register("store_commits", "Store commits", counter(commits));
        r.register(
            "store_committed_messages",
            "Messages in store commits (divided by store_commits: messages per commit)",
            get(&c.messages),
        );
    }
    if let Some(s) = &sources.redis {
        r.register(
            "redis_subscribed",
            "1 while this node's PUB/SUB connection to Redis is up",
            ConstGauge::new(i64::from(s.is_subscribed())),
        );
        r.register(
            "redis_reconnects",
            "Times the subscriber connected again",
            get(&s.reconnects),
        );
        r.register(
            "redis_catch_ups",
            "Rooms found behind their log and caught up",
            get(&s.catch_ups),
        );
        r.register(
            "redis_reaped_nodes",
            "Dead nodes whose presence this node removed",
            get(&s.reaped_nodes),
        );
    }
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
        out.clear();
    }
    out
}

/// Seconds a family can make and the scrape can set (a counter).
#[derive(Debug, Default)]
struct ConstSecondsBox(std::sync::Mutex<f64>);

impl ConstSecondsBox {
    fn set(&self, v: f64) {
        if let Ok(mut s) = self.0.lock() {
            *s = v;
        }
    }
}

impl TypedMetric for ConstSecondsBox {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ConstSecondsBox {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let v = self.0.lock().map(|s| *s).unwrap_or(0.0);
        ConstCounter::new(v).encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A counter a family can make and the scrape can set (ConstCounter is not
/// made by a family).
#[derive(Debug, Default)]
struct ConstCounterBox(AtomicU64);

impl ConstCounterBox {
    fn zero() -> ConstCounterBox {
        ConstCounterBox::default()
    }

    fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

impl TypedMetric for ConstCounterBox {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ConstCounterBox {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        ConstCounter::new(self.0.load(Ordering::Relaxed)).encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}
