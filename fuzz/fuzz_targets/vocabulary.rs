//! The call-level vocabulary parsers: `grpc-timeout`, `grpc-status`,
//! `grpc-message`, `-bin` metadata, and the client's `ResponseReader`.
//!
//! - none of them panics on arbitrary input;
//! - `parse_timeout` accepts exactly the grammar `1*8DIGIT unit`;
//!   `parse_timeout(encode_timeout(d)) >= d` (and less than one unit more),
//!   for every `d` the grammar can express;
//! - `percent_decode(percent_encode(s)) == s` for arbitrary UTF-8 `s`, and
//!   the encoding is visible ASCII only;
//! - `Code::parse` accepts exactly 1 to 10 decimal digits and maps numbers
//!   over 16 to UNKNOWN;
//! - `decode_bin(encode_bin(x)) == x`, padded or not;
//! - `ResponseReader` fed arbitrary headers / data / trailers never returns a
//!   message over its limit, and ends non-200 or non-gRPC responses at the
//!   headers.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use chat_sansio::client::{status_from_reset, status_from_trailers, ResponseReader};
use chat_sansio::metadata::{decode_bin, encode_bin, Metadata};
use chat_sansio::server::is_grpc_content_type;
use chat_sansio::status::{percent_decode, percent_encode, Code, Status};
use chat_sansio::timeout::{encode_timeout, parse_timeout};
use libfuzzer_sys::fuzz_target;

/// A header name: mostly the ones the reader looks at.
#[derive(Arbitrary, Debug)]
enum Name {
    ContentType,
    GrpcStatus,
    GrpcMessage,
    GrpcTimeout,
    TraceBin,
    Other(String),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::ContentType => "Content-Type",
            Name::GrpcStatus => "grpc-status",
            Name::GrpcMessage => "grpc-message",
            Name::GrpcTimeout => "grpc-timeout",
            Name::TraceBin => "x-trace-bin",
            Name::Other(s) => s,
        }
    }
}

/// A header value: mostly plausible ones.
#[derive(Arbitrary, Debug)]
enum Value {
    Grpc,
    GrpcProto,
    Status(u8),
    Raw(Vec<u8>),
}

impl Value {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Value::Grpc => b"application/grpc".to_vec(),
            Value::GrpcProto => b"application/grpc+proto".to_vec(),
            Value::Status(n) => n.to_string().into_bytes(),
            Value::Raw(v) => v.clone(),
        }
    }
}

fn metadata(fields: &[(Name, Value)]) -> Metadata {
    let mut md = Metadata::new();
    for (k, v) in fields {
        md.push(k.as_str().to_owned(), v.to_bytes());
    }
    md
}

/// One step of a response, as a client sees it.
#[derive(Arbitrary, Debug)]
enum ResponseOp {
    Headers {
        http_status: u16,
        fields: Vec<(Name, Value)>,
        end_of_stream: bool,
    },
    Data(Vec<u8>),
    NextMessage,
    Trailers(Vec<(Name, Value)>),
    EndedWithoutTrailers,
}

#[derive(Arbitrary, Debug)]
struct Input {
    timeout: Vec<u8>,
    duration_secs: u64,
    duration_nanos: u32,
    status: Vec<u8>,
    code: u32,
    message_bytes: Vec<u8>,
    message: String,
    bin: Vec<u8>,
    bin_value: Vec<u8>,
    reset: u32,
    max: u16,
    response: Vec<ResponseOp>,
}

/// The `grpc-timeout` grammar, written independently.
fn is_timeout_grammar(v: &[u8]) -> bool {
    match v.split_last() {
        Some((unit, digits)) => {
            (1..=8).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
                && b"HMSmun".contains(unit)
        }
        None => false,
    }
}

fn unit_len(unit: u8) -> Duration {
    match unit {
        b'H' => Duration::from_secs(3600),
        b'M' => Duration::from_secs(60),
        b'S' => Duration::from_secs(1),
        b'm' => Duration::from_millis(1),
        b'u' => Duration::from_micros(1),
        b'n' => Duration::from_nanos(1),
        _ => unreachable!("not a unit"),
    }
}

fn check_timeouts(input: &Input) {
    let parsed = parse_timeout(&input.timeout);
    assert_eq!(
        parsed.is_ok(),
        is_timeout_grammar(&input.timeout),
        "{:?}",
        input.timeout
    );

    let d = Duration::new(input.duration_secs, input.duration_nanos % 1_000_000_000);
    let enc = encode_timeout(d);
    assert!(enc.len() <= 9, "{enc} is too long");
    assert!(
        is_timeout_grammar(enc.as_bytes()),
        "{enc} is not a grpc-timeout"
    );
    let back = parse_timeout(enc.as_bytes()).expect("our own encoding parses");
    // The longest timeout the grammar can express; longer ones are clamped.
    let most = Duration::from_secs(99_999_999 * 3600);
    if d <= most {
        assert!(back >= d, "{d:?} encoded as {enc}, which is shorter");
        let unit = unit_len(*enc.as_bytes().last().unwrap());
        assert!(
            back - d < unit,
            "{d:?} encoded as {enc}: rounded up by a whole unit"
        );
    } else {
        assert_eq!(
            back, most,
            "{d:?} beyond the grammar should clamp to {most:?}"
        );
    }
}

fn check_status(input: &Input) {
    // Code::parse: exactly 1..=10 ASCII digits.
    let raw = &input.status;
    let parsed = Code::parse(raw);
    let digits = !raw.is_empty() && raw.len() <= 10 && raw.iter().all(u8::is_ascii_digit);
    assert_eq!(parsed.is_some(), digits, "{raw:?}");
    if let Some(code) = parsed {
        let n: u64 = std::str::from_utf8(raw).unwrap().parse().unwrap();
        if n <= 16 {
            assert_eq!(code as u64, n);
        } else {
            assert_eq!(code, Code::Unknown);
        }
    }
    let code = Code::from_u32(input.code);
    assert_eq!(Code::parse(code.as_header_value().as_bytes()), Some(code));
    let _ = code.name();
    let _ = Code::from_http_status(input.code as u16);

    // percent_decode never panics; it is lenient.
    let decoded = percent_decode(&input.message_bytes);
    if let Ok(s) = std::str::from_utf8(&input.message_bytes) {
        if !s.contains('%') {
            assert_eq!(decoded, s, "text without % must decode to itself");
        }
    }
    // Round trip.
    let s = &input.message;
    let enc = percent_encode(s);
    assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{enc:?}");
    assert_eq!(&percent_decode(enc.as_bytes()), s);
    // And through a status: cut to at most 512 bytes on a char boundary.
    let status = Status::new(Code::Internal, s.clone());
    match status.encoded_message() {
        None => assert!(s.is_empty()),
        Some(m) => {
            let back = percent_decode(m.as_bytes());
            assert!(!back.is_empty() && back.len() <= 512);
            assert!(s.starts_with(&back));
            if s.len() <= 512 {
                assert_eq!(&back, s);
            } else {
                assert!(back.len() > 512 - 4, "cut more than one char");
            }
        }
    }
    let _ = status.to_string();
    let _ = status_from_reset(input.reset);
}

fn check_bin(input: &Input) {
    let _ = decode_bin(&input.bin);
    let enc = encode_bin(&input.bin_value);
    assert_eq!(decode_bin(enc.as_bytes()).unwrap(), input.bin_value);
    let mut padded = enc.clone();
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    assert_eq!(decode_bin(padded.as_bytes()).unwrap(), input.bin_value);
    let spaced = format!(" {enc}\t");
    assert_eq!(decode_bin(spaced.as_bytes()).unwrap(), input.bin_value);
}

fn check_response(input: &Input) {
    let max = usize::from(input.max % 512);
    let mut reader = ResponseReader::new(max);
    for op in &input.response {
        match op {
            ResponseOp::Headers {
                http_status,
                fields,
                end_of_stream,
            } => {
                let md = metadata(fields);
                let _ = status_from_trailers(&md);
                let _ = md.get_bin("x-trace-bin");
                let _ = md.get_str("grpc-message");
                let _ = md.custom().count();
                let grpc = md.get("content-type").is_some_and(is_grpc_content_type);
                let end = reader.headers(*http_status, &md, *end_of_stream);
                if *http_status != 200 || !grpc || *end_of_stream {
                    let status = end.expect("this headers block must end the call");
                    assert!(grpc || !status.is_ok(), "a non-gRPC response cannot be OK");
                } else {
                    assert!(end.is_none(), "a 200 gRPC response goes on");
                }
            }
            ResponseOp::Data(chunk) => reader.data(chunk),
            ResponseOp::NextMessage => {
                if let Ok(Some(m)) = reader.next_message() {
                    assert!(
                        m.len() <= max,
                        "message of {} over the limit {max}",
                        m.len()
                    );
                }
            }
            ResponseOp::Trailers(fields) => {
                let _ = reader.trailers(&metadata(fields));
            }
            ResponseOp::EndedWithoutTrailers => {
                assert!(!reader.ended_without_trailers().is_ok());
            }
        }
    }
}

fuzz_target!(|input: Input| {
    check_timeouts(&input);
    check_status(&input);
    check_bin(&input);
    check_response(&input);
});
