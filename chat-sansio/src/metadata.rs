//! Call metadata: the request headers a call arrived with, and the rules for
//! ASCII and binary (`-bin`) values.
//!
//! Spec: PROTOCOL-HTTP2.md "Custom-Metadata", which every rule below cites.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use bytes::Bytes;

/// Standard alphabet, unpadded output, padded or unpadded input
/// (PROTOCOL-HTTP2.md, on `-bin` values).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Header names that belong to the gRPC protocol or to HTTP/2 and are never
/// application metadata (grpc-go `isReservedHeader`, tonic's reserved set).
const RESERVED: &[&str] = &[
    "content-type",
    "te",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-message",
    "grpc-message-type",
    "grpc-status",
    "grpc-status-details-bin",
    "grpc-timeout",
    "connection",
];

/// Connection-specific header fields, which HTTP/2 forbids (RFC 9113
/// section 8.2.2), and the other names a response may not carry as
/// metadata: they belong to the protocol (PROTOCOL-HTTP2.md
/// "Response-Headers", "Trailers").
const NOT_RESPONSE_METADATA: &[&str] = &[
    "content-type",
    "te",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// A metadata value that is not valid for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// A key outside `[0-9a-z_.-]`, or empty.
    InvalidKey,
    /// A `-bin` value that is not base64.
    InvalidBase64,
    /// A response key the protocol or HTTP/2 keeps for itself (see
    /// [`check_response`]).
    Reserved(String),
    /// A response key outside `[0-9a-z_.-]`: HTTP/2 forbids upper case.
    InvalidResponseKey(String),
    /// An ASCII value of a response key with a byte outside 0x20–0x7E.
    InvalidValue(String),
    /// Response metadata past [`MAX_RESPONSE_METADATA`](crate::limits::MAX_RESPONSE_METADATA).
    TooLarge,
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataError::InvalidKey => f.write_str("invalid metadata key"),
            MetadataError::InvalidBase64 => f.write_str("invalid base64 in -bin metadata"),
            MetadataError::Reserved(k) => write!(f, "metadata key {k:?} is reserved"),
            MetadataError::InvalidResponseKey(k) => write!(
                f,
                "metadata key {k:?} is not 1*(0-9 / a-z / \"_\" / \"-\" / \".\")"
            ),
            MetadataError::InvalidValue(k) => write!(
                f,
                "value of metadata key {k:?} is not visible ASCII (use a -bin key)"
            ),
            MetadataError::TooLarge => f.write_str("response metadata too large"),
        }
    }
}

impl std::error::Error for MetadataError {}

/// An ordered list of header fields as they arrived (lower-case names, raw
/// values). Duplicate keys keep their relative order (PROTOCOL-HTTP2.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, Bytes)>,
}

impl Metadata {
    /// An empty list.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Appends a field. Drivers pass header names as received; names are
    /// lower-cased here so lookups never depend on the peer's spelling.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Bytes>) {
        let mut key = key.into();
        key.make_ascii_lowercase();
        self.entries.push((key, value.into()));
    }

    /// The first raw value for `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The first value for `key` if it is valid UTF-8, with surrounding
    /// whitespace trimmed (PROTOCOL-HTTP2.md allows stripping it).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// Every raw value for `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Every decoded binary value for a `-bin` key. Values joined with `,`
    /// are split before decoding, as PROTOCOL-HTTP2.md asks.
    pub fn get_bin(&self, key: &str) -> Result<Vec<Vec<u8>>, MetadataError> {
        let mut out = Vec::new();
        for value in self.get_all(key) {
            for part in value.split(|&b| b == b',') {
                out.push(decode_bin(part)?);
            }
        }
        Ok(out)
    }

    /// All fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// Fields that are application metadata: neither reserved by gRPC nor
    /// HTTP/2 pseudo-headers.
    pub fn custom(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter().filter(|(k, _)| !is_reserved(k))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether `key` is reserved for the protocol rather than application metadata.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with(':') || RESERVED.contains(&key)
}

/// Whether `key` is a valid metadata key: `1*(0-9 / a-z / "_" / "-" / ".")`
/// (PROTOCOL-HTTP2.md "Custom-Metadata").
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'_' | b'-' | b'.'))
}

/// Whether `key` is a binary key, whose values go base64 on the wire.
pub fn is_bin(key: &str) -> bool {
    key.ends_with("-bin")
}

/// Checks metadata a handler wants to send with response headers or
/// trailers. Values of `-bin` keys are raw bytes (the driver writes them
/// with [`wire_value`]); other values must be visible ASCII, 0x20–0x7E
/// (PROTOCOL-HTTP2.md "Custom-Metadata"). Refused: keys outside the
/// metadata syntax (upper case included), `grpc-` keys ("reserved for
/// future GRPC use"), pseudo-headers, `content-type`, `te` and
/// connection-specific fields (RFC 9113 section 8.2.2), and more than
/// [`MAX_RESPONSE_METADATA`](crate::limits::MAX_RESPONSE_METADATA) bytes
/// counted as SETTINGS_MAX_HEADER_LIST_SIZE counts them.
pub fn check_response(md: &Metadata) -> Result<(), MetadataError> {
    let mut size = 0usize;
    for (key, value) in md.iter() {
        if key.starts_with(':') || key.starts_with("grpc-") || NOT_RESPONSE_METADATA.contains(&key)
        {
            return Err(MetadataError::Reserved(key.to_owned()));
        }
        if !is_valid_key(key) {
            return Err(MetadataError::InvalidResponseKey(key.to_owned()));
        }
        let len = if is_bin(key) {
            value.len().div_ceil(3) * 4
        } else {
            if !value.iter().all(|b| (0x20..=0x7e).contains(b)) {
                return Err(MetadataError::InvalidValue(key.to_owned()));
            }
            value.len()
        };
        // Name, value and 32 bytes per field (RFC 9113 section 6.5.2).
        size = size.saturating_add(key.len() + len + 32);
        if size > crate::limits::MAX_RESPONSE_METADATA {
            return Err(MetadataError::TooLarge);
        }
    }
    Ok(())
}

/// The value to write on the wire for one field of response metadata:
/// base64 for a `-bin` key, as it is otherwise.
pub fn wire_value(key: &str, value: &[u8]) -> Bytes {
    if is_bin(key) {
        Bytes::from(encode_bin(value))
    } else {
        Bytes::copy_from_slice(value)
    }
}

/// Encodes a binary value for a `-bin` key: standard base64, unpadded
/// (PROTOCOL-HTTP2.md).
pub fn encode_bin(value: &[u8]) -> String {
    BASE64.encode(value)
}

/// Decodes a `-bin` value; padded and unpadded input are both accepted
/// (PROTOCOL-HTTP2.md),
/// and surrounding whitespace is ignored.
pub fn decode_bin(value: &[u8]) -> Result<Vec<u8>, MetadataError> {
    BASE64
        .decode(value.trim_ascii())
        .map_err(|_| MetadataError::InvalidBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_values_accept_padded_and_unpadded() {
        assert_eq!(encode_bin(&[0xab, 0xab, 0xab, 0xab]), "q6urqw");
        assert_eq!(decode_bin(b"q6urqw").unwrap(), [0xab; 4]);
        assert_eq!(decode_bin(b"q6urqw==").unwrap(), [0xab; 4]);
        assert!(decode_bin(b"q6u*qw").is_err());
    }

    #[test]
    fn joined_bin_values_are_split() {
        let mut md = Metadata::new();
        md.push("x-trace-bin", "AQI=,AwQ");
        md.push("X-Trace-Bin", Bytes::from_static(b"BQ"));
        assert_eq!(
            md.get_bin("x-trace-bin").unwrap(),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
    }

    #[test]
    fn reserved_keys_are_not_custom() {
        let mut md = Metadata::new();
        md.push("content-type", "application/grpc");
        md.push("grpc-timeout", "1S");
        md.push("authorization", "Bearer x");
        let custom: Vec<_> = md.custom().map(|(k, _)| k).collect();
        assert_eq!(custom, ["authorization"]);
        assert_eq!(md.get_str("authorization"), Some("Bearer x"));
    }

    fn md(fields: &[(&str, &[u8])]) -> Metadata {
        let mut md = Metadata::new();
        for (k, v) in fields {
            md.entries.push((k.to_string(), Bytes::copy_from_slice(v)));
        }
        md
    }

    #[test]
    fn response_metadata_is_checked() {
        let ok = md(&[("x-a", b"visible ~ ascii"), ("x-b-bin", &[0, 0xff, b'\n'])]);
        assert_eq!(check_response(&ok), Ok(()));
        for key in [
            ":status",
            "grpc-status",
            "grpc-foo",
            "content-type",
            "te",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "proxy-connection",
        ] {
            assert_eq!(
                check_response(&md(&[(key, b"v")])),
                Err(MetadataError::Reserved(key.into())),
                "{key}"
            );
        }
        // `push` lowers case; a key put in directly is checked as it is.
        let upper = md(&[("X-Upper", b"v")]);
        assert_eq!(
            check_response(&upper),
            Err(MetadataError::InvalidResponseKey("X-Upper".into()))
        );
        assert!(check_response(&md(&[("a b", b"v")])).is_err());
        assert!(check_response(&md(&[("", b"v")])).is_err());
        for bad in [&b"a\nb"[..], b"tab\t", b"\x7f", "é".as_bytes()] {
            assert_eq!(
                check_response(&md(&[("x-a", bad)])),
                Err(MetadataError::InvalidValue("x-a".into()))
            );
        }
        let big = vec![b'a'; crate::limits::MAX_RESPONSE_METADATA];
        assert_eq!(
            check_response(&md(&[("x-a", &big)])),
            Err(MetadataError::TooLarge)
        );
    }

    #[test]
    fn bin_values_go_base64_on_the_wire() {
        assert_eq!(wire_value("x-a-bin", &[0xab; 3]), "q6ur");
        assert_eq!(wire_value("x-a", b"plain"), "plain");
    }

    #[test]
    fn keys_are_validated() {
        assert!(is_valid_key("x-user.id_2"));
        assert!(!is_valid_key("X-User"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("a b"));
    }
}
