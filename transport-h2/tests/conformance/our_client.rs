//! Our client (`transport_h2::Channel`) against our server, where the server
//! ends calls first.

use chat_proto::ChatMessage;

use crate::common::echo::ECHO_UNARY;
use crate::common::messages::chat;
use crate::common::time::run;
use crate::rig::echo_server;

/// PROTOCOL-HTTP2.md, "Early Server Closure", seen from the client: a
/// unary-style method answers and ends before the client half-closes, and the
/// server then resets the request side with NO_ERROR. Half-closing afterwards
/// is not an error (there is nothing left to close), and a send says the call
/// has ended, never INTERNAL.
#[test]
fn our_client_may_half_close_a_call_the_server_has_ended() {
    let addr = echo_server();
    run(10, async {
        let channel = transport_h2::Channel::connect(&addr.to_string())
            .await
            .expect("connect");
        let options = transport_h2::CallOptions::default;
        let mut ended = channel.call(ECHO_UNARY, options()).await.expect("call");
        let msg = chat("u", "only");
        ended.sender.send(&msg).await.expect("send");
        let echo: ChatMessage = ended.receiver.message().await.expect("ok").expect("echo");
        assert_eq!(echo, msg);
        assert!(ended
            .receiver
            .message::<ChatMessage>()
            .await
            .expect("OK")
            .is_none());
        // A second round trip on the connection: the server wrote its
        // RST_STREAM for the first call before this answer, so by now the
        // client's h2 has taken the first stream out of service.
        let mut other = channel.call(ECHO_UNARY, options()).await.expect("call");
        other.sender.send(&msg).await.expect("send");
        assert!(other
            .receiver
            .message::<ChatMessage>()
            .await
            .expect("ok")
            .is_some());

        ended.sender.close().expect("half-close after the end");
        ended.sender.close().expect("a second half-close");
        let err = ended
            .sender
            .send(&msg)
            .await
            .expect_err("send after the end");
        assert_eq!(err.code, chat_sansio::Code::FailedPrecondition, "{err:?}");
        other.sender.close().expect("half-close after the end");
    });
}
