//! Write coalescing: batching writes per flush interval never holds back an
//! answer a closed-loop client is waiting for.

use std::time::Duration;

use bytes::Bytes;
use chat_proto::ChatMessage;
use chat_sansio::chat::{ChatEvent, ChatInput};
use h2::SendStream;
use smol::Timer;
use transport_h2::ServerConfig;

use crate::common::messages::chat;
use crate::common::server::start_with;
use crate::common::time::{run, within, SHORT};
use crate::rig::*;

/// Write coalescing must not slow an idle server: with a cap on the gap
/// between writes far longer than the test, a client whose connection was
/// woken a moment ago still gets the answer to what it has just sent at
/// once, because a shard with time to spare waits for nothing. The answers
/// are released by the test (it plays the engine: the echo waits for the
/// append's answer), so the connection's task is parked, with its wake-up
/// left to the core task, when each one is routed.
#[test]
fn an_idle_server_never_holds_an_answer() {
    let config = ServerConfig {
        flush_interval: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    // The test is the engine: rooms open at once, empty; appends are
    // stored when the test says so.
    let (append_tx, append_rx) = smol::channel::unbounded();
    let (addr, server) = start_with(crate::common::chat(), config, move |ev| match ev {
        ChatEvent::OpenRoom { room } => Some(ChatInput::RoomOpened {
            room,
            epoch: 7,
            last_seq: 0,
            first_seq: 1,
        }),
        ChatEvent::Append(request) => {
            let _ = append_tx.try_send(request);
            None
        }
        _ => None,
    });
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let inputs = server.inputs();
    run(20, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        // Sends one message and releases its echo once the connection's
        // task has long been parked.
        let post = |stream: &mut SendStream<Bytes>, text: String| {
            stream.send_data(frame(&chat("u", &text)), false).unwrap();
            let (append_rx, inputs, seq) = (append_rx.clone(), inputs.clone(), seq.clone());
            async move {
                let request = within(SHORT, "an append", append_rx.recv()).await.unwrap();
                Timer::after(Duration::from_millis(100)).await;
                let entry = ChatMessage {
                    user: Some(request.user.clone()),
                    message: request.text.clone(),
                    room_id: request.room.clone(),
                    seq: seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1,
                    timestamp_us: request.at.as_micros_i64(),
                    epoch: 7,
                    ..ChatMessage::default()
                };
                let input = ChatInput::Committed {
                    id: request.id,
                    entry,
                    duplicate: false,
                };
                assert!(inputs.send(input).await);
                text
            }
        };
        let first = post(&mut stream, "first".into()).await;
        let mut msgs = Messages::open(resp).await;
        assert_eq!(msgs.next_chat().await.message, first);
        // The connection was woken just now: with a fixed interval these
        // would wait for it, 60 s away (next_chat allows 3 s).
        for i in 0..3 {
            let text = post(&mut stream, format!("message {i}")).await;
            assert_eq!(msgs.next_chat().await.message, text);
        }
    });
}
