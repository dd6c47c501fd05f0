//! gRPC status codes and the `grpc-status` / `grpc-message` trailer encoding.
//!
//! Spec: grpc/grpc `doc/statuscodes.md` and `doc/PROTOCOL-HTTP2.md`
//! ("Status-Code", "Status-Message").

use std::borrow::Cow;
use std::fmt;

use crate::limits::MAX_STATUS_MESSAGE_LEN;

/// A gRPC status code.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The call was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error.
    Unknown = 2,
    /// The client sent an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the call completed.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity the client tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// Some resource (quota, memory, message size) is exhausted.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or supported.
    Unimplemented = 12,
    /// An internal invariant was broken.
    Internal = 13,
    /// The service is currently unavailable.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request has no valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a numeric value; values above 16 map to `Unknown`
    /// (as tonic's `Code::from_bytes` and grpc-go do).
    pub fn from_u32(value: u32) -> Code {
        use Code::*;
        const ALL: [Code; 17] = [
            Ok,
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        ALL.get(value as usize).copied().unwrap_or(Unknown)
    }

    /// Parses a `grpc-status` value leniently: anything that is not a
    /// decimal number gives `None`.
    pub fn parse(value: &[u8]) -> Option<Code> {
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        Some(Code::from_u32(u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// The decimal form used in `grpc-status`, without leading zeros
    /// (PROTOCOL-HTTP2.md "Status").
    pub fn as_header_value(self) -> &'static str {
        const TEXT: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        TEXT[self as usize]
    }

    /// The canonical upper-case name, as in statuscodes.md.
    pub fn name(self) -> &'static str {
        use Code::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code a client reports for a response that carried no `grpc-status`,
    /// from its HTTP status (http-grpc-status-mapping.md).
    pub fn from_http_status(http: u16) -> Code {
        match http {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A gRPC status: a code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The status code.
    pub code: Code,
    /// The message; empty for none.
    pub message: Cow<'static, str>,
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The OK status, with no message.
    pub const fn ok() -> Status {
        Status {
            code: Code::Ok,
            message: Cow::Borrowed(""),
        }
    }

    /// Whether the code is OK.
    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// The `grpc-message` value: the message cut to [`MAX_STATUS_MESSAGE_LEN`]
    /// bytes and percent-encoded; `None` if the message is empty.
    pub fn encoded_message(&self) -> Option<String> {
        if self.message.is_empty() {
            return None;
        }
        let mut end = self.message.len().min(MAX_STATUS_MESSAGE_LEN);
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        Some(percent_encode(&self.message[..end]))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for Status {}

/// UNIMPLEMENTED for a path no service here serves (statuscodes.md: "Method
/// not found at server").
pub fn unimplemented(path: &str) -> Status {
    Status::new(Code::Unimplemented, format!("unknown method {path}"))
}

/// INTERNAL for a request message that is not valid protobuf of its type
/// (statuscodes.md: "Error parsing request proto").
pub fn malformed(what: &str, err: &prost::DecodeError) -> Status {
    Status::new(Code::Internal, format!("malformed {what}: {err}"))
}

/// Percent-encodes a status message for `grpc-message`.
///
/// Exactly the bytes outside `%x20-24 / %x26-7E` (space and visible ASCII
/// except `%`) become `%XX` with upper-case hex, as PROTOCOL-HTTP2.md asks and
/// grpc-go does; nothing more, because grpc-js and dart decode only partially
/// (grpc-js decodes with `decodeURI`, grpc-node `subchannel-call.ts`; dart
/// does not decode at all, grpc/grpc-dotnet#218).
pub fn percent_encode(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Decodes a `grpc-message` value leniently: invalid `%` sequences stay as
/// they are and invalid UTF-8 is replaced, never rejected (PROTOCOL-HTTP2.md
/// "Status-Message": "MUST NOT
/// error or throw away the message").
pub fn percent_decode(value: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' && i + 2 < value.len() {
            if let (Some(h), Some(l)) = (hex(value[i + 1]), hex(value[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_status_message_round_trips() {
        // The interop `special_status_message` case.
        let msg = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
        let enc = percent_encode(msg);
        assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert!(enc.starts_with("%09%0Atest with whitespace%0D%0A"));
        assert_eq!(percent_decode(enc.as_bytes()), msg);
    }

    #[test]
    fn only_the_spec_set_is_encoded() {
        assert_eq!(percent_encode("a b#?{}<>\"`\\"), "a b#?{}<>\"`\\");
        assert_eq!(percent_encode("100%"), "100%25");
    }

    #[test]
    fn lenient_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode(b"50%"), "50%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decode(b"%41%"), "A%");
    }

    #[test]
    fn codes_parse_leniently() {
        assert_eq!(Code::parse(b"0"), Some(Code::Ok));
        assert_eq!(Code::parse(b"16"), Some(Code::Unauthenticated));
        assert_eq!(Code::parse(b"17"), Some(Code::Unknown));
        assert_eq!(Code::parse(b"99999999999"), None);
        assert_eq!(Code::parse(b""), None);
        assert_eq!(Code::parse(b"-1"), None);
        for n in 0..=16 {
            let c = Code::from_u32(n);
            assert_eq!(c as u32, n);
            assert_eq!(Code::parse(c.as_header_value().as_bytes()), Some(c));
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let msg: String = "é".repeat(MAX_STATUS_MESSAGE_LEN);
        let s = Status::new(Code::Internal, msg);
        let enc = s.encoded_message().unwrap();
        assert_eq!(percent_decode(enc.as_bytes()).len(), MAX_STATUS_MESSAGE_LEN);
    }
}
