//! Server keepalive (grpc/proposal A9-server-side-conn-mgt.md,
//! `KEEPALIVE_TIME` and `KEEPALIVE_TIMEOUT`; PROTOCOL-HTTP2.md, "PING
//! Frame"): a client that vanishes without closing its socket is found out
//! by an unanswered PING, its connection closed and its calls ended, so it
//! leaves its room; a client that is merely quiet answers the pings and
//! stays.
//!
//! The vanishing is a TCP proxy between client and server that stops
//! forwarding in both directions and keeps both sockets open, as a cut
//! network or a dropped NAT entry does: no FIN, no RST, nothing.

mod common;

use common::server::start;
use common::time::{run, within};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_proto::{paths, ChatMessage, ChatRoom, Presence, User};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::Timer;
use transport_h2::{Call, CallOptions, Channel, ServerConfig};

const KEEPALIVE_TIME: Duration = Duration::from_millis(200);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(400);

fn keepalive_config() -> ServerConfig {
    ServerConfig {
        keepalive_time: Some(KEEPALIVE_TIME),
        keepalive_timeout: KEEPALIVE_TIMEOUT,
        ..ServerConfig::default()
    }
}

/// A one-connection TCP proxy to `server` that can be cut: after
/// [`Proxy::cut`] it forwards nothing more either way, and closes nothing.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    _pumps: smol::Task<()>,
}

impl Proxy {
    async fn to(server: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        let pumps = smol::spawn(async move {
            let (client, _) = listener.accept().await.expect("accept");
            let upstream = TcpStream::connect(server).await.expect("connect");
            future::zip(
                pump(client.clone(), upstream.clone(), flag.clone()),
                pump(upstream, client, flag),
            )
            .await;
        });
        Proxy {
            addr,
            cut,
            _pumps: pumps,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until the cut, then holds both open for ever.
async fn pump(mut from: TcpStream, mut to: TcpStream, cut: Arc<AtomicBool>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// User `id`, in room1.
fn user(id: &str) -> User {
    User {
        room_id: "room1".into(),
        ..common::messages::user(id, id)
    }
}

/// Joins room1 with JoinChatRoom on `channel` as `id`, keeping the call.
async fn join(channel: &Channel, id: &str) -> Call {
    let mut call = channel
        .call(paths::JOIN_CHAT_ROOM, CallOptions::default())
        .await
        .expect("JoinChatRoom");
    call.sender.send(&user(id)).await.expect("send");
    let room: ChatRoom = call.receiver.message().await.expect("ok").expect("room");
    assert_eq!(room.room_id, "room1");
    call
}

/// The next message on `watch`, within `limit`.
async fn next(watch: &mut Call, limit: Duration) -> ChatMessage {
    within(limit, "a message", watch.receiver.message())
        .await
        .expect("the watch is open")
        .expect("a message")
}

#[test]
fn a_vanished_member_leaves_its_room_after_an_unanswered_ping() {
    let server = start(common::chat(), keepalive_config());
    run(30, async {
        let direct = Channel::connect(&server.to_string())
            .await
            .expect("connect");
        let _watcher = join(&direct, "watcher").await;
        let mut watch = direct
            .call(
                paths::JOIN_CHAT,
                CallOptions::default().metadata("chat-room", "room1"),
            )
            .await
            .expect("JoinChat");

        let proxy = Proxy::to(server).await;
        let far = Channel::connect(&proxy.addr.to_string())
            .await
            .expect("connect");
        let _member = join(&far, "far").await;
        let joined = next(&mut watch, Duration::from_secs(5)).await;
        assert_eq!(joined.presence, Presence::Joined as i32);
        assert_eq!(
            joined.user.as_ref().map(|u| u.user_id.as_str()),
            Some("far")
        );

        // Quiet but alive for many keepalive periods: the member's h2
        // answers every ping, and stays in the room.
        Timer::after(KEEPALIVE_TIME * 8).await;
        let mut post = direct
            .call(paths::JOIN_CHAT, CallOptions::default())
            .await
            .expect("JoinChat");
        let text = ChatMessage {
            user: Some(user("watcher")),
            message: "still here?".into(),
            ..ChatMessage::default()
        };
        post.sender.send(&text).await.expect("send");
        let echo = next(&mut watch, Duration::from_secs(5)).await;
        assert_eq!(
            (echo.presence, echo.message.as_str()),
            (Presence::None as i32, "still here?"),
            "the quiet member was dropped: {echo:?}"
        );

        // Cut: the next ping goes unanswered, and the member leaves.
        proxy.cut();
        let left = next(&mut watch, Duration::from_secs(10)).await;
        assert_eq!(left.presence, Presence::Left as i32, "{left:?}");
        assert_eq!(left.user.as_ref().map(|u| u.user_id.as_str()), Some("far"));
    });
}

/// Client keepalive (gRFC A8): a client whose server vanishes behind the
/// cut proxy finds out by its own unanswered PING, and its calls end
/// UNAVAILABLE; while the server is merely quiet (and sends no pings of its
/// own), the client's pings are answered and its call stays open.
#[test]
fn a_client_finds_out_that_its_server_vanished() {
    let quiet_server = ServerConfig {
        keepalive_time: None,
        ..ServerConfig::default()
    };
    let server = start(common::chat(), quiet_server);
    run(30, async {
        let proxy = Proxy::to(server).await;
        let options = transport_h2::ChannelOptions {
            keepalive_time: Some(KEEPALIVE_TIME),
            keepalive_timeout: KEEPALIVE_TIMEOUT,
        };
        let far = Channel::connect_with(&proxy.addr.to_string(), options)
            .await
            .expect("connect");
        let mut member = join(&far, "far").await;
        // Many periods of quiet: every ping is answered, the call stays.
        let quiet = future::or(
            async {
                Timer::after(KEEPALIVE_TIME * 8).await;
                None
            },
            async { Some(member.receiver.message::<ChatRoom>().await) },
        )
        .await;
        assert!(quiet.is_none(), "the call ended while quiet: {quiet:?}");

        proxy.cut();
        let ended = within(
            Duration::from_secs(10),
            "the call to end",
            member.receiver.message::<ChatRoom>(),
        )
        .await;
        let status = ended.expect_err("the call ends with an error");
        assert_eq!(status.code, chat_sansio::Code::Unavailable, "{status:?}");
    });
}
