//! What the interop service answers, call by call: payloads of the asked
//! size, echoed statuses and metadata, and the compression checks of
//! doc/interop-test-descriptions.md (grpc/grpc), "Server" features.

use std::time::Duration;

use bytes::Bytes;
use chat_proto::testing::{BoolValue, EchoStatus, Payload, ResponseParameters};

use crate::metadata::Metadata;
use crate::status::{Code, Status};

/// Largest payload a request may ask for, in bytes. The descriptions' largest
/// is 314,159 (large_unary); a bound keeps one small request from making
/// the server allocate gigabytes, and with the protobuf framing it stays
/// under the default maximum message size, which clients also enforce.
pub const MAX_RESPONSE_SIZE: usize = 1 << 20;

/// Most responses one call may have waiting to be sent. The descriptions
/// ask for at most four per request; each waiting one is a few bytes, and
/// this bound keeps a client from queueing millions of them.
pub const MAX_PENDING_RESPONSES: usize = 1024;

/// Initial metadata echoed into the response headers ("Echo Metadata").
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// Binary metadata echoed into the trailers ("Echo Metadata").
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// A payload of `size` zero bytes (type COMPRESSABLE), or INVALID_ARGUMENT
/// for a negative size or one over [`MAX_RESPONSE_SIZE`].
pub fn payload(size: i32) -> Result<Option<Payload>, Status> {
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_RESPONSE_SIZE)
        .ok_or_else(|| {
            Status::new(
                Code::InvalidArgument,
                format!("response size {size} is negative or over {MAX_RESPONSE_SIZE}"),
            )
        })?;
    Ok(Some(Payload {
        r#type: 0,
        body: vec![0; size],
    }))
}

/// The status a request asks for with `response_status` ("Echo Status"),
/// if it asks for one other than OK.
pub fn echo_status(asked: Option<&EchoStatus>) -> Option<Status> {
    let asked = asked.filter(|s| s.code != 0)?;
    let code = u32::try_from(asked.code).map_or(Code::Unknown, Code::from_u32);
    Some(Status::new(code, asked.message.clone()))
}

/// Checks a request's `expect_compressed` against the message's
/// Compressed-Flag ("CompressedRequest"): INVALID_ARGUMENT if they differ.
/// A request that does not say is never refused.
pub fn check_compressed(expect: Option<&BoolValue>, compressed: bool) -> Result<(), Status> {
    match expect {
        Some(e) if e.value != compressed => Err(Status::new(
            Code::InvalidArgument,
            if e.value {
                "expected a compressed request message"
            } else {
                "expected an uncompressed request message"
            },
        )),
        _ => Ok(()),
    }
}

/// The metadata a call echoes: `x-grpc-test-echo-initial` for its
/// response headers, and the decoded `x-grpc-test-echo-trailing-bin` for
/// its trailers. INVALID_ARGUMENT if the binary value is not base64.
pub fn echoes(request: &Metadata) -> Result<(Metadata, Metadata), Status> {
    let mut initial = Metadata::new();
    for v in request.get_all(ECHO_INITIAL) {
        initial.push(ECHO_INITIAL, Bytes::copy_from_slice(v));
    }
    let mut trailing = Metadata::new();
    let values = request
        .get_bin(ECHO_TRAILING)
        .map_err(|e| Status::new(Code::InvalidArgument, format!("{ECHO_TRAILING}: {e}")))?;
    for v in values {
        trailing.push(ECHO_TRAILING, v);
    }
    Ok((initial, trailing))
}

/// One response a streaming call owes: its size, whether to compress it,
/// and how long to wait after the previous one ("Observe
/// ResponseParameters.interval_us"; a negative interval is none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owed {
    /// Payload size in bytes.
    pub size: i32,
    /// Compress it, if the call has a response encoding.
    pub compressed: bool,
    /// Wait this long after the previous response (or the request).
    pub interval: Duration,
}

impl Owed {
    /// What one `ResponseParameters` asks for.
    pub fn from_params(p: &ResponseParameters) -> Owed {
        Owed {
            size: p.size,
            compressed: p.compressed.as_ref().is_some_and(|c| c.value),
            interval: Duration::from_micros(u64::try_from(p.interval_us).unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::encode_bin;

    #[test]
    fn payload_sizes_are_bounded() {
        assert_eq!(payload(3).unwrap().unwrap().body, vec![0; 3]);
        assert_eq!(payload(0).unwrap().unwrap().body.len(), 0);
        assert_eq!(payload(-1).unwrap_err().code, Code::InvalidArgument);
        let over = i32::try_from(MAX_RESPONSE_SIZE + 1).unwrap();
        assert_eq!(payload(over).unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn echo_status_keeps_code_and_message_exactly() {
        let msg = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        let s = echo_status(Some(&EchoStatus {
            code: 2,
            message: msg.into(),
        }))
        .unwrap();
        assert_eq!((s.code, &*s.message), (Code::Unknown, msg));
        assert!(echo_status(Some(&EchoStatus::default())).is_none());
        assert!(echo_status(None).is_none());
    }

    #[test]
    fn compression_expectations_must_match_the_flag() {
        let yes = BoolValue { value: true };
        let no = BoolValue { value: false };
        assert!(check_compressed(Some(&yes), true).is_ok());
        assert_eq!(
            check_compressed(Some(&yes), false).unwrap_err().code,
            Code::InvalidArgument
        );
        assert!(check_compressed(Some(&no), true).is_err());
        assert!(check_compressed(None, true).is_ok());
    }

    #[test]
    fn metadata_echoes_go_to_headers_and_decoded_to_trailers() {
        let mut req = Metadata::new();
        req.push(ECHO_INITIAL, "test_initial_metadata_value");
        req.push(ECHO_TRAILING, encode_bin(b"\xab\xab\xab"));
        let (initial, trailing) = echoes(&req).unwrap();
        assert_eq!(
            initial.get(ECHO_INITIAL),
            Some(&b"test_initial_metadata_value"[..])
        );
        assert_eq!(trailing.get(ECHO_TRAILING), Some(&b"\xab\xab\xab"[..]));
        let mut bad = Metadata::new();
        bad.push(ECHO_TRAILING, "not base64!");
        assert_eq!(echoes(&bad).unwrap_err().code, Code::InvalidArgument);
    }
}
