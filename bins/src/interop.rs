//! gRPC's interop test cases (doc/interop-test-descriptions.md in
//! grpc/grpc), client side, over our transport: each case makes the calls
//! its description lists and checks what it says the client asserts.

use std::time::Duration;

use chat_proto::testing::{
    paths, BoolValue, EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest,
    SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use chat_sansio::compression::Encoding;
use chat_sansio::metadata::encode_bin;
use chat_sansio::{Code, Status};
use transport_h2::{CallOptions, CallReceiver, Channel};

/// The cases that need no cloud credentials, by their names in the
/// descriptions.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "pick_first_unary",
];

/// The request sizes of client_streaming and ping_pong.
const REQUEST_SIZES: [usize; 4] = [27_182, 8, 1_828, 45_904];
/// The response sizes of server_streaming and ping_pong.
const RESPONSE_SIZES: [i32; 4] = [31_415, 9, 2_653, 58_979];
/// How many calls pick_first_unary makes.
const PICK_FIRST_CALLS: usize = 100;
/// large_unary's request and response sizes.
const LARGE_REQUEST: usize = 271_828;
const LARGE_RESPONSE: i32 = 314_159;
/// Initial metadata custom_metadata sends and expects back.
const ECHO_INITIAL: (&str, &str) = ("x-grpc-test-echo-initial", "test_initial_metadata_value");
/// Binary trailing metadata custom_metadata sends and expects back.
const ECHO_TRAILING: (&str, &[u8]) = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab");
/// special_status_message's message: whitespace, BMP and non-BMP Unicode.
const SPECIAL_MESSAGE: &str = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

/// What a case gives: `Err` says which check failed.
type Outcome = Result<(), String>;

/// Runs the case `name` against `channel`.
pub async fn run(channel: &Channel, name: &str) -> Outcome {
    match name {
        "empty_unary" => empty_unary(channel).await,
        "large_unary" => large_unary(channel).await,
        "client_compressed_unary" => client_compressed_unary(channel).await,
        "server_compressed_unary" => server_compressed_unary(channel).await,
        "client_streaming" => client_streaming(channel).await,
        "client_compressed_streaming" => client_compressed_streaming(channel).await,
        "server_streaming" => server_streaming(channel).await,
        "server_compressed_streaming" => server_compressed_streaming(channel).await,
        "ping_pong" => ping_pong(channel).await,
        "empty_stream" => empty_stream(channel).await,
        "custom_metadata" => custom_metadata(channel).await,
        "status_code_and_message" => echo_status(channel, "test status message").await,
        "special_status_message" => echo_status(channel, SPECIAL_MESSAGE).await,
        "unimplemented_method" => unimplemented(channel, paths::UNIMPLEMENTED_CALL).await,
        "unimplemented_service" => unimplemented(channel, paths::UNIMPLEMENTED_SERVICE_CALL).await,
        "cancel_after_begin" => cancel_after_begin(channel).await,
        "cancel_after_first_response" => cancel_after_first_response(channel).await,
        "timeout_on_sleeping_server" => timeout_on_sleeping_server(channel).await,
        "pick_first_unary" => pick_first_unary(channel).await,
        other => Err(format!("unknown test case {other:?}")),
    }
}

fn failed(what: &str, status: &Status) -> String {
    format!("{what}: {status}")
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn zeros(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; size],
    })
}

fn body_len(p: Option<&Payload>) -> usize {
    p.map_or(0, |p| p.body.len())
}

fn flag(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// One unary call: sends `req` (compressed if `compress` and the options
/// name an encoding), half-closes, reads the one response and the OK end.
async fn unary<Req: prost::Message, Res: prost::Message + Default>(
    channel: &Channel,
    path: &str,
    req: &Req,
    options: CallOptions,
    compress: bool,
) -> Result<(Res, CallReceiver), Status> {
    let mut call = channel.call(path, options).await?;
    let sent = match call.sender.send_with(req, compress).await {
        Ok(()) => call.sender.close(),
        Err(e) => Err(e),
    };
    // A server that refuses the request may end the call while it is being
    // sent: its status is on the receiver, and says more than the send's.
    let res = call.receiver.message::<Res>().await?;
    sent?;
    let res = res.ok_or_else(|| Status::new(Code::Internal, "no response message"))?;
    if call.receiver.message::<Res>().await?.is_some() {
        return Err(Status::new(
            Code::Internal,
            "more than one response message",
        ));
    }
    Ok((res, call.receiver))
}

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_size: LARGE_RESPONSE,
        payload: zeros(LARGE_REQUEST),
        ..SimpleRequest::default()
    }
}

fn check_large(res: &SimpleResponse) -> Outcome {
    let len = body_len(res.payload.as_ref());
    check(len == LARGE_RESPONSE as usize, || {
        format!("response payload of {len} bytes, want {LARGE_RESPONSE}")
    })
}

async fn empty_unary(channel: &Channel) -> Outcome {
    let (_, _): (Empty, _) = unary(
        channel,
        paths::EMPTY_CALL,
        &Empty {},
        CallOptions::default(),
        false,
    )
    .await
    .map_err(|s| failed("EmptyCall", &s))?;
    Ok(())
}

async fn large_unary(channel: &Channel) -> Outcome {
    let (res, _) = unary(
        channel,
        paths::UNARY_CALL,
        &large_request(),
        CallOptions::default(),
        false,
    )
    .await
    .map_err(|s| failed("UnaryCall", &s))?;
    check_large(&res)
}

async fn client_compressed_unary(channel: &Channel) -> Outcome {
    let gzip = || CallOptions::default().compression(Encoding::Gzip);
    let probe = SimpleRequest {
        expect_compressed: flag(true),
        ..large_request()
    };
    match unary::<_, SimpleResponse>(channel, paths::UNARY_CALL, &probe, gzip(), false).await {
        Err(s) if s.code == Code::InvalidArgument => {}
        Err(s) => return Err(failed("the uncompressed probe: want INVALID_ARGUMENT", &s)),
        Ok(_) => return Err("the uncompressed probe succeeded; want INVALID_ARGUMENT".into()),
    }
    let (res, _) = unary(channel, paths::UNARY_CALL, &probe, gzip(), true)
        .await
        .map_err(|s| failed("compressed UnaryCall", &s))?;
    check_large(&res)?;
    let plain = SimpleRequest {
        expect_compressed: flag(false),
        ..large_request()
    };
    let (res, _) = unary(channel, paths::UNARY_CALL, &plain, gzip(), false)
        .await
        .map_err(|s| failed("uncompressed UnaryCall", &s))?;
    check_large(&res)
}

async fn server_compressed_unary(channel: &Channel) -> Outcome {
    for compressed in [true, false] {
        let req = SimpleRequest {
            response_compressed: flag(compressed),
            ..large_request()
        };
        let (res, rx) = unary(
            channel,
            paths::UNARY_CALL,
            &req,
            CallOptions::default(),
            false,
        )
        .await
        .map_err(|s| failed("UnaryCall", &s))?;
        check_large(&res)?;
        check(rx.last_was_compressed() == compressed, || {
            format!(
                "response compressed: {}, want {compressed}",
                rx.last_was_compressed()
            )
        })?;
    }
    Ok(())
}

async fn streaming_input(
    channel: &Channel,
    requests: &[(usize, Option<bool>)],
    options: CallOptions,
) -> Result<i32, Status> {
    let mut call = channel.call(paths::STREAMING_INPUT_CALL, options).await?;
    for &(size, expect) in requests {
        let req = StreamingInputCallRequest {
            payload: zeros(size),
            expect_compressed: expect.and_then(flag),
        };
        call.sender.send_with(&req, expect == Some(true)).await?;
    }
    call.sender.close()?;
    let res: StreamingInputCallResponse = call
        .receiver
        .message()
        .await?
        .ok_or_else(|| Status::new(Code::Internal, "no response message"))?;
    call.receiver
        .message::<StreamingInputCallResponse>()
        .await?;
    Ok(res.aggregated_payload_size)
}

async fn client_streaming(channel: &Channel) -> Outcome {
    let requests: Vec<_> = REQUEST_SIZES.iter().map(|&s| (s, None)).collect();
    let total = streaming_input(channel, &requests, CallOptions::default())
        .await
        .map_err(|s| failed("StreamingInputCall", &s))?;
    check(total == 74_922, || {
        format!("aggregated_payload_size {total}, want 74922")
    })
}

async fn client_compressed_streaming(channel: &Channel) -> Outcome {
    let gzip = || CallOptions::default().compression(Encoding::Gzip);
    // The probe: expects compression, sent plain.
    let mut call = channel
        .call(paths::STREAMING_INPUT_CALL, gzip())
        .await
        .map_err(|s| failed("probe", &s))?;
    let probe = StreamingInputCallRequest {
        payload: zeros(27_182),
        expect_compressed: flag(true),
    };
    // The server may end the call before the send completes.
    let _ = call.sender.send_with(&probe, false).await;
    match call.receiver.message::<StreamingInputCallResponse>().await {
        Err(s) if s.code == Code::InvalidArgument => {}
        Err(s) => return Err(failed("the uncompressed probe: want INVALID_ARGUMENT", &s)),
        Ok(_) => return Err("the uncompressed probe was not refused with INVALID_ARGUMENT".into()),
    }
    call.sender.cancel();
    let total = streaming_input(
        channel,
        &[(27_182, Some(true)), (45_904, Some(false))],
        gzip(),
    )
    .await
    .map_err(|s| failed("StreamingInputCall", &s))?;
    check(total == 73_086, || {
        format!("aggregated_payload_size {total}, want 73086")
    })
}

fn output_request(
    sizes: &[i32],
    compressed: &[Option<bool>],
    payload: usize,
) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .zip(compressed.iter().chain(std::iter::repeat(&None)))
            .map(|(&size, c)| ResponseParameters {
                size,
                interval_us: 0,
                compressed: c.and_then(flag),
            })
            .collect(),
        payload: if payload > 0 { zeros(payload) } else { None },
        ..StreamingOutputCallRequest::default()
    }
}

/// Reads the responses of a server stream to its OK end; returns their
/// sizes and compressed flags.
async fn read_all(rx: &mut CallReceiver) -> Result<Vec<(usize, bool)>, Status> {
    let mut got = Vec::new();
    while let Some(res) = rx.message::<StreamingOutputCallResponse>().await? {
        got.push((body_len(res.payload.as_ref()), rx.last_was_compressed()));
    }
    Ok(got)
}

async fn server_stream(
    channel: &Channel,
    req: &StreamingOutputCallRequest,
) -> Result<Vec<(usize, bool)>, Status> {
    let mut call = channel
        .call(paths::STREAMING_OUTPUT_CALL, CallOptions::default())
        .await?;
    call.sender.send(req).await?;
    call.sender.close()?;
    read_all(&mut call.receiver).await
}

async fn server_streaming(channel: &Channel) -> Outcome {
    let got = server_stream(channel, &output_request(&RESPONSE_SIZES, &[], 0))
        .await
        .map_err(|s| failed("StreamingOutputCall", &s))?;
    let sizes: Vec<usize> = got.iter().map(|g| g.0).collect();
    let want: Vec<usize> = RESPONSE_SIZES.iter().map(|&s| s as usize).collect();
    check(sizes == want, || {
        format!("response sizes {sizes:?}, want {want:?}")
    })
}

async fn server_compressed_streaming(channel: &Channel) -> Outcome {
    let req = output_request(&[31_415, 92_653], &[Some(true), Some(false)], 0);
    let got = server_stream(channel, &req)
        .await
        .map_err(|s| failed("StreamingOutputCall", &s))?;
    let want = vec![(31_415, true), (92_653, false)];
    check(got == want, || {
        format!("responses (size, compressed) {got:?}, want {want:?}")
    })
}

async fn ping_pong(channel: &Channel) -> Outcome {
    let mut call = channel
        .call(paths::FULL_DUPLEX_CALL, CallOptions::default())
        .await
        .map_err(|s| failed("FullDuplexCall", &s))?;
    for (size, payload) in RESPONSE_SIZES.iter().zip(REQUEST_SIZES) {
        let req = output_request(&[*size], &[], payload);
        call.sender
            .send(&req)
            .await
            .map_err(|s| failed("send", &s))?;
        let res = call
            .receiver
            .message::<StreamingOutputCallResponse>()
            .await
            .map_err(|s| failed("receive", &s))?
            .ok_or("the stream ended before its response")?;
        let len = body_len(res.payload.as_ref());
        check(len == *size as usize, || {
            format!("response of {len} bytes, want {size}")
        })?;
    }
    call.sender.close().map_err(|s| failed("half-close", &s))?;
    let rest = read_all(&mut call.receiver)
        .await
        .map_err(|s| failed("end", &s))?;
    check(rest.is_empty(), || {
        format!("{} responses too many", rest.len())
    })
}

async fn empty_stream(channel: &Channel) -> Outcome {
    let mut call = channel
        .call(paths::FULL_DUPLEX_CALL, CallOptions::default())
        .await
        .map_err(|s| failed("FullDuplexCall", &s))?;
    call.sender.close().map_err(|s| failed("half-close", &s))?;
    let got = read_all(&mut call.receiver)
        .await
        .map_err(|s| failed("end", &s))?;
    check(got.is_empty(), || {
        format!("{} responses, want none", got.len())
    })
}

fn echo_options() -> CallOptions {
    CallOptions::default()
        .metadata(ECHO_INITIAL.0, ECHO_INITIAL.1)
        .metadata(ECHO_TRAILING.0, &encode_bin(ECHO_TRAILING.1))
}

fn check_echoes(rx: &CallReceiver, what: &str) -> Outcome {
    let initial = rx.headers().and_then(|h| h.get_str(ECHO_INITIAL.0));
    check(initial == Some(ECHO_INITIAL.1), || {
        format!(
            "{what}: initial metadata {initial:?}, want {:?}",
            ECHO_INITIAL.1
        )
    })?;
    let trailing = rx.trailers().and_then(|t| t.get_bin(ECHO_TRAILING.0).ok());
    check(trailing == Some(vec![ECHO_TRAILING.1.to_vec()]), || {
        format!(
            "{what}: trailing metadata {trailing:?}, want {:?}",
            ECHO_TRAILING.1
        )
    })
}

async fn custom_metadata(channel: &Channel) -> Outcome {
    let (res, rx) = unary(
        channel,
        paths::UNARY_CALL,
        &large_request(),
        echo_options(),
        false,
    )
    .await
    .map_err(|s| failed("UnaryCall", &s))?;
    check_large(&res)?;
    check_echoes(&rx, "UnaryCall")?;
    let mut call = channel
        .call(paths::FULL_DUPLEX_CALL, echo_options())
        .await
        .map_err(|s| failed("FullDuplexCall", &s))?;
    let req = output_request(&[LARGE_RESPONSE], &[], LARGE_REQUEST);
    call.sender
        .send(&req)
        .await
        .map_err(|s| failed("send", &s))?;
    call.sender.close().map_err(|s| failed("half-close", &s))?;
    let got = read_all(&mut call.receiver)
        .await
        .map_err(|s| failed("FullDuplexCall", &s))?;
    check(
        got.len() == 1 && got[0].0 == LARGE_RESPONSE as usize,
        || format!("responses {got:?}, want one of {LARGE_RESPONSE} bytes"),
    )?;
    check_echoes(&call.receiver, "FullDuplexCall")
}

fn check_status(got: Result<(), Status>, message: &str, what: &str) -> Outcome {
    match got {
        Err(s) if s.code == Code::Unknown && s.message == message => Ok(()),
        Err(s) => Err(format!("{what}: status {s:?}, want UNKNOWN {message:?}")),
        Ok(()) => Err(format!("{what} succeeded; want UNKNOWN {message:?}")),
    }
}

async fn echo_status(channel: &Channel, message: &str) -> Outcome {
    let status = Some(EchoStatus {
        code: 2,
        message: message.into(),
    });
    let req = SimpleRequest {
        response_status: status.clone(),
        ..SimpleRequest::default()
    };
    let got = unary::<_, SimpleResponse>(
        channel,
        paths::UNARY_CALL,
        &req,
        CallOptions::default(),
        false,
    )
    .await
    .map(|_| ());
    check_status(got, message, "UnaryCall")?;
    let got = async {
        let mut call = channel
            .call(paths::FULL_DUPLEX_CALL, CallOptions::default())
            .await?;
        let req = StreamingOutputCallRequest {
            response_status: status,
            ..StreamingOutputCallRequest::default()
        };
        call.sender.send(&req).await?;
        call.sender.close()?;
        read_all(&mut call.receiver).await.map(|_| ())
    }
    .await;
    check_status(got, message, "FullDuplexCall")
}

async fn unimplemented(channel: &Channel, path: &str) -> Outcome {
    match unary::<_, Empty>(channel, path, &Empty {}, CallOptions::default(), false).await {
        Err(s) if s.code == Code::Unimplemented => Ok(()),
        Err(s) => Err(failed(&format!("{path}: want UNIMPLEMENTED"), &s)),
        Ok(_) => Err(format!("{path} succeeded; want UNIMPLEMENTED")),
    }
}

/// The call's next read ends it CANCELLED.
async fn check_cancelled(rx: &mut CallReceiver) -> Outcome {
    match rx.raw_message().await {
        Err(s) if s.code == Code::Cancelled => Ok(()),
        Err(s) => Err(failed("want CANCELLED", &s)),
        Ok(_) => Err("the cancelled call did not end CANCELLED".into()),
    }
}

async fn cancel_after_begin(channel: &Channel) -> Outcome {
    let mut call = channel
        .call(paths::STREAMING_INPUT_CALL, CallOptions::default())
        .await
        .map_err(|s| failed("StreamingInputCall", &s))?;
    call.sender.cancel();
    check_cancelled(&mut call.receiver).await
}

async fn cancel_after_first_response(channel: &Channel) -> Outcome {
    let mut call = channel
        .call(paths::FULL_DUPLEX_CALL, CallOptions::default())
        .await
        .map_err(|s| failed("FullDuplexCall", &s))?;
    let req = output_request(&[31_415], &[], 27_182);
    call.sender
        .send(&req)
        .await
        .map_err(|s| failed("send", &s))?;
    let first = call
        .receiver
        .message::<StreamingOutputCallResponse>()
        .await
        .map_err(|s| failed("first response", &s))?;
    check(first.is_some(), || "no first response".into())?;
    call.sender.cancel();
    check_cancelled(&mut call.receiver).await
}

async fn timeout_on_sleeping_server(channel: &Channel) -> Outcome {
    let options = CallOptions::default().timeout(Duration::from_millis(1));
    let mut call = match channel.call(paths::FULL_DUPLEX_CALL, options).await {
        Ok(call) => call,
        Err(s) if s.code == Code::DeadlineExceeded => return Ok(()),
        Err(s) => return Err(failed("FullDuplexCall: want DEADLINE_EXCEEDED", &s)),
    };
    let req = output_request(&[], &[], 27_182);
    // The server may end the call (DEADLINE_EXCEEDED, on its own clock)
    // while the request is still being sent; the send then only reports
    // that the call has ended, and the receiver holds the status the case
    // checks (as grpc-go's SendMsg returns io.EOF and RecvMsg the status).
    let _ = call.sender.send(&req).await;
    match call.receiver.raw_message().await {
        Err(s) if s.code == Code::DeadlineExceeded => Ok(()),
        Err(s) => Err(failed("want DEADLINE_EXCEEDED", &s)),
        Ok(_) => Err("the call did not end DEADLINE_EXCEEDED".into()),
    }
}

/// 100 unary calls on one channel asking for `server_id`: every response
/// names the same, non-empty server.
async fn pick_first_unary(channel: &Channel) -> Outcome {
    let req = SimpleRequest {
        response_size: 1,
        payload: zeros(1),
        fill_server_id: true,
        ..SimpleRequest::default()
    };
    let mut first: Option<String> = None;
    for i in 0..PICK_FIRST_CALLS {
        let options = CallOptions::default().timeout(Duration::from_secs(10));
        let (res, _) = unary::<_, SimpleResponse>(channel, paths::UNARY_CALL, &req, options, false)
            .await
            .map_err(|s| failed(&format!("UnaryCall {i}"), &s))?;
        check(!res.server_id.is_empty(), || {
            format!("call {i}: empty server_id")
        })?;
        match &first {
            None => first = Some(res.server_id),
            Some(id) => check(*id == res.server_id, || {
                format!("call {i}: server_id {:?}, not {id:?}", res.server_id)
            })?,
        }
    }
    Ok(())
}
