//! The built-in reflection service, driven in memory.

mod util;

use chat_proto::reflection::server_reflection_request::MessageRequest;
use chat_proto::reflection::server_reflection_response::MessageResponse;
use chat_proto::reflection::{paths, ServerReflectionRequest, ServerReflectionResponse};
use chat_sansio::chat::Chat;
use chat_sansio::server::{CallId, Server, ServerConfig};
use chat_sansio::Code;
use prost::Message as _;
use prost_types::FileDescriptorProto;
use util::{chat, Harness};

fn ask(h: &mut Harness<Chat>, call: CallId, req: MessageRequest) -> MessageResponse {
    let n = h.log(call).messages.len();
    h.send(
        call,
        &ServerReflectionRequest {
            host: "example".into(),
            message_request: Some(req.clone()),
        },
    );
    let all = h.decoded::<ServerReflectionResponse>(call);
    assert_eq!(all.len(), n + 1, "one answer per request");
    let res = all.into_iter().last().unwrap();
    assert_eq!(res.valid_host, "example");
    assert_eq!(res.original_request.unwrap().message_request, Some(req));
    res.message_response.expect("an answer")
}

/// The names of the files in a file descriptor response.
fn files(res: MessageResponse) -> Vec<String> {
    let MessageResponse::FileDescriptorResponse(f) = res else {
        panic!("not files: {res:?}");
    };
    f.file_descriptor_proto
        .iter()
        .map(|b| {
            FileDescriptorProto::decode(&b[..])
                .unwrap()
                .name()
                .to_owned()
        })
        .collect()
}

fn not_found(res: MessageResponse) -> bool {
    matches!(res, MessageResponse::ErrorResponse(e) if e.error_code == Code::NotFound as i32)
}

#[test]
fn list_services_names_what_the_server_runs() {
    let mut h = chat();
    let call = h.open(1, paths::INFO);
    let MessageResponse::ListServicesResponse(list) =
        ask(&mut h, call, MessageRequest::ListServices(String::new()))
    else {
        panic!("not a list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "ChatService",
            "chat.admin.ChatAdmin",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
    h.end_stream(call);
    assert_eq!(h.status(call).code, Code::Ok);
}

#[test]
fn symbols_resolve_to_their_file_and_imports_are_sent_once() {
    let mut h = chat();
    let call = h.open(1, paths::INFO_V1ALPHA);
    let sym = |s: &str| MessageRequest::FileContainingSymbol(s.into());
    for s in ["ChatService", "ChatService.JoinChat", ".ChatMessage"] {
        assert_eq!(files(ask(&mut h, call, sym(s))), ["chat.proto"], "{s}");
    }
    assert_eq!(
        files(ask(&mut h, call, sym("routeguide.RouteGuide.RouteChat"))),
        ["route_guide.proto"]
    );
    assert_eq!(
        files(ask(
            &mut h,
            call,
            sym("grpc.health.v1.HealthCheckResponse.ServingStatus")
        )),
        ["health.proto"]
    );
    assert_eq!(files(ask(&mut h, call, sym("tutorial"))), ["number.proto"]);
    // The seed 002 proto imports wrappers.proto: sent with it the first
    // time, not again on this stream; the file asked for always is.
    let by_name = || MessageRequest::FileByFilename("bidi_chat.proto".into());
    assert_eq!(
        files(ask(&mut h, call, by_name())),
        ["bidi_chat.proto", "google/protobuf/wrappers.proto"]
    );
    assert_eq!(files(ask(&mut h, call, by_name())), ["bidi_chat.proto"]);
    assert_eq!(
        files(ask(&mut h, call, sym("google.protobuf.StringValue"))),
        ["google/protobuf/wrappers.proto"]
    );
    // A new stream starts afresh.
    let other = h.open(1, paths::INFO);
    assert_eq!(files(ask(&mut h, other, by_name())).len(), 2);
}

#[test]
fn unknown_names_get_not_found_and_the_stream_goes_on() {
    let mut h = chat();
    let call = h.open(1, paths::INFO);
    assert!(not_found(ask(
        &mut h,
        call,
        MessageRequest::FileContainingSymbol("No.Such".into())
    )));
    assert!(not_found(ask(
        &mut h,
        call,
        MessageRequest::FileByFilename("nope.proto".into())
    )));
    let ext = chat_proto::reflection::ExtensionRequest {
        containing_type: "ChatMessage".into(),
        extension_number: 100,
    };
    assert!(not_found(ask(
        &mut h,
        call,
        MessageRequest::FileContainingExtension(ext)
    )));
    // proto3 messages have no extensions: an empty list, not an error.
    let MessageResponse::AllExtensionNumbersResponse(n) = ask(
        &mut h,
        call,
        MessageRequest::AllExtensionNumbersOfType("routeguide.Point".into()),
    ) else {
        panic!("not extension numbers");
    };
    assert_eq!(n.base_type_name, "routeguide.Point");
    assert!(n.extension_number.is_empty());
    assert!(not_found(ask(
        &mut h,
        call,
        MessageRequest::AllExtensionNumbersOfType("No.Such".into())
    )));
    assert!(h.log(call).end.is_empty());
}

#[test]
fn bad_requests_end_the_stream() {
    let mut h = chat();
    let empty = h.open(1, paths::INFO);
    h.send(empty, &ServerReflectionRequest::default());
    assert_eq!(h.status(empty).code, Code::InvalidArgument);
    let garbage = h.open(1, paths::INFO);
    h.data(garbage, &[0, 0, 0, 0, 2, 0xff, 0xff]);
    assert_eq!(h.status(garbage).code, Code::Internal);
    let wrong = h.open(1, "/grpc.reflection.v1.ServerReflection/Nope");
    assert_eq!(h.status(wrong).code, Code::Unimplemented);
    assert_eq!(h.server.open_calls(), 0);
}

#[test]
fn reflection_can_be_turned_off() {
    let config = ServerConfig {
        reflection: None,
        ..ServerConfig::default()
    };
    let mut h = util::chat_with(Server::with_config(config, Chat::default()));
    let call = h.open(1, paths::INFO);
    assert_eq!(h.status(call).code, Code::Unimplemented);
}
