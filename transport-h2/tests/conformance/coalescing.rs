//! Write coalescing: batching writes per flush interval never holds back an
//! answer a closed-loop client is waiting for.

use std::time::Duration;

use bytes::Bytes;
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent, ChatInput};
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
/// are released by the test (durable mode: the echo waits for the store's
/// acknowledgement), so the connection's task is parked, with its wake-up
/// left to the core task, when each one is routed.
#[test]
fn an_idle_server_never_holds_an_answer() {
    let config = ServerConfig {
        flush_interval: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let handler = Chat::new(ChatConfig {
        durable: true,
        ..ChatConfig::default()
    });
    let (persist_tx, persist_rx) = smol::channel::unbounded();
    let (addr, server) = start_with(handler, config, move |ev| {
        if let ChatEvent::Persist { epoch, id, .. } = ev {
            let _ = persist_tx.try_send((epoch, id));
        }
    });
    let inputs = server.inputs();
    run(20, async {
        let c = Client::connect(addr).await;
        let (resp, mut stream) = c.call(JOIN_CHAT).await;
        // Sends one message and releases its echo once the connection's
        // task has long been parked.
        let post = |stream: &mut SendStream<Bytes>, text: String| {
            stream.send_data(frame(&chat("u", &text)), false).unwrap();
            let (persist_rx, inputs) = (persist_rx.clone(), inputs.clone());
            async move {
                let (epoch, id) = within(SHORT, "a persist request", persist_rx.recv())
                    .await
                    .unwrap();
                Timer::after(Duration::from_millis(100)).await;
                assert!(inputs.send(ChatInput::Durable { epoch, up_to: id }).await);
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
