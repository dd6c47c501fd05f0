//! gRPC message compression: gzip and deflate beside identity.
//!
//! Spec: PROTOCOL-HTTP2.md "Compression" (`grpc-encoding`,
//! `grpc-accept-encoding`, the per-message Compressed-Flag) and
//! doc/compression.md. `deflate` is the zlib format (RFC 1950), as C-core
//! writes it; `gzip` is RFC 1952. Each message is compressed on its own:
//! there is no compression context across messages.
//!
//! Inflating is where a peer can make us allocate: a few kilobytes of gzip
//! can inflate to gigabytes. [`inflate`] therefore counts the inflated bytes
//! as they come out and stops at the message limit, so a bomb is refused
//! with RESOURCE_EXHAUSTED having cost at most the limit in memory (grpc-go
//! rpc_util.go "message after decompression larger than max").

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status as ZStatus};

use crate::limits::{INFLATE_CHUNK, MESSAGE_HEADER_LEN};
use crate::status::{Code, Status};

/// A compression algorithm this crate speaks, besides `identity` (which is
/// no compression and is `None` wherever an `Option<Encoding>` appears).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// `gzip` (RFC 1952).
    Gzip,
    /// `deflate`: zlib-wrapped deflate (RFC 1950), as C-core sends it.
    Deflate,
}

/// The value of `grpc-accept-encoding` we send: every encoding we accept,
/// comma-separated without spaces, as PROTOCOL-HTTP2.md's
/// `Message-Accept-Encoding` grammar writes it. It never lists an encoding
/// we refuse, as doc/compression.md requires of an UNIMPLEMENTED answer.
pub const ACCEPT_ENCODING: &str = "gzip,deflate,identity";

impl Encoding {
    /// Every encoding, in order of preference for responses.
    pub const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Deflate];

    /// The name in `grpc-encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }

    /// Reads a `grpc-encoding` value: `Ok(None)` for `identity`, `Err` for
    /// an encoding we do not know. Names are compared without case.
    pub fn parse(value: &[u8]) -> Result<Option<Encoding>, UnknownEncoding> {
        let value = value.trim_ascii();
        if value.eq_ignore_ascii_case(b"identity") {
            return Ok(None);
        }
        Encoding::ALL
            .into_iter()
            .find(|e| value.eq_ignore_ascii_case(e.name().as_bytes()))
            .map(Some)
            .ok_or_else(|| UnknownEncoding(String::from_utf8_lossy(value).into_owned()))
    }

    /// Our preferred encoding among those a `grpc-accept-encoding` value
    /// lists (`Encoding-Token *("," Encoding-Token)`; blanks around tokens
    /// are tolerated), if any.
    pub fn pick<'a>(accept: impl IntoIterator<Item = &'a [u8]>) -> Option<Encoding> {
        let mut listed = [false; Encoding::ALL.len()];
        for value in accept {
            for token in value.split(|b| *b == b',') {
                if let Ok(Some(e)) = Encoding::parse(token) {
                    listed[e as usize] = true;
                }
            }
        }
        Encoding::ALL.into_iter().find(|e| listed[*e as usize])
    }
}

/// A `grpc-encoding` we do not support, by its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownEncoding(pub String);

impl UnknownEncoding {
    /// The status for a request in this encoding: UNIMPLEMENTED
    /// (doc/compression.md: the answer lists what we accept in
    /// `grpc-accept-encoding`, which every response carries).
    pub fn to_status(&self) -> Status {
        Status::new(
            Code::Unimplemented,
            format!(
                "grpc-encoding {:?} is not supported; this server accepts {ACCEPT_ENCODING}",
                self.0
            ),
        )
    }
}

/// Why a compressed message could not be inflated. Each is the peer's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the message limit (RESOURCE_EXHAUSTED, statuscodes.md;
    /// GRPC-CONFORMANCE Z-2: check again after decompression).
    TooLarge {
        /// The configured limit.
        max: usize,
    },
    /// It is not valid data in its encoding, or is cut short (INTERNAL,
    /// statuscodes.md: decompression failure with a supported algorithm).
    Corrupt(Encoding),
}

impl InflateError {
    /// The status that ends a call whose message failed this way.
    pub fn to_status(&self) -> Status {
        match *self {
            InflateError::TooLarge { max } => Status::new(
                Code::ResourceExhausted,
                format!("message after decompression larger than max ({max})"),
            ),
            InflateError::Corrupt(enc) => Status::new(
                Code::Internal,
                format!("could not decompress {} message", enc.name()),
            ),
        }
    }
}

/// Inflates one compressed message body, refusing it as soon as more than
/// `max` bytes have come out. Never holds more than about `max` bytes plus
/// one [`INFLATE_CHUNK`], whatever the input.
pub fn inflate(enc: Encoding, input: &[u8], max: usize) -> Result<Bytes, InflateError> {
    let mut out = Vec::new();
    let full = match enc {
        Encoding::Gzip => {
            let mut reader = flate2::bufread::GzDecoder::new(input);
            read_capped(&mut out, max, |buf| reader.read(buf).ok())
        }
        Encoding::Deflate => {
            let mut z = Decompress::new(true);
            let mut ended = false;
            read_capped(&mut out, max, |buf| {
                inflate_zlib(&mut z, input, buf, &mut ended)
            })
        }
    };
    match full {
        Some(true) => Err(InflateError::TooLarge { max }),
        Some(false) => Ok(Bytes::from(out)),
        None => Err(InflateError::Corrupt(enc)),
    }
}

/// Fills `out` from `read` (which returns bytes produced, 0 at the end,
/// `None` on bad data) until the end or until it would pass `max`:
/// `Some(true)` if it would, `Some(false)` at a clean end. `out` grows by
/// doubling but never past `max + 1` bytes.
fn read_capped(
    out: &mut Vec<u8>,
    max: usize,
    mut read: impl FnMut(&mut [u8]) -> Option<usize>,
) -> Option<bool> {
    loop {
        let len = out.len();
        if len > max {
            return Some(true);
        }
        let room = len.max(INFLATE_CHUNK).min(max.saturating_add(1) - len);
        // Exact, so the capacity too stays within `max + 1`.
        out.reserve_exact(room);
        out.resize(len + room, 0);
        let n = read(&mut out[len..])?;
        out.truncate(len + n);
        if n == 0 {
            return Some(false);
        }
    }
}

/// One step of zlib inflation into `buf`; `None` on bad or cut-short data.
/// flate2's `ZlibDecoder` reader would report a cut-short stream as a clean
/// end, so the stream end is checked here.
fn inflate_zlib(
    z: &mut Decompress,
    input: &[u8],
    buf: &mut [u8],
    ended: &mut bool,
) -> Option<usize> {
    if *ended {
        return Some(0);
    }
    loop {
        let (in0, out0) = (z.total_in(), z.total_out());
        let rest = input.get(usize::try_from(in0).ok()?..)?;
        let status = z.decompress(rest, buf, FlushDecompress::None).ok()?;
        let produced = usize::try_from(z.total_out() - out0).ok()?;
        let consumed = z.total_in() - in0;
        if status == ZStatus::StreamEnd {
            *ended = true;
            return Some(produced);
        }
        if produced > 0 {
            return Some(produced);
        }
        if consumed == 0 {
            // No progress and no end: the input ran out mid-stream.
            return None;
        }
    }
}

/// Compresses a message body.
pub fn compress(enc: Encoding, payload: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::default();
    let out = Vec::with_capacity(payload.len() / 2 + 32);
    // Writing into a Vec cannot fail.
    let done = match enc {
        Encoding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(out, level);
            w.write_all(payload).and_then(|_| w.finish())
        }
        Encoding::Deflate => {
            let mut w = flate2::write::ZlibEncoder::new(out, level);
            w.write_all(payload).and_then(|_| w.finish())
        }
    };
    done.unwrap_or_default()
}

/// Re-frames an uncompressed length-prefixed message (as
/// [`codec::encode`](crate::codec::encode) makes) compressed, with the
/// Compressed-Flag set. `None` if it is not an uncompressed frame, or if
/// compression would not make it smaller (then send it as it is: the flag
/// is per message, PROTOCOL-HTTP2.md "Compressed-Flag").
pub fn compress_frame(enc: Encoding, frame: &[u8]) -> Option<Bytes> {
    let payload = match frame.split_first() {
        Some((0, rest)) => rest.get(MESSAGE_HEADER_LEN - 1..)?,
        _ => return None,
    };
    let packed = compress(enc, payload);
    if packed.is_empty() || packed.len() >= payload.len() {
        return None;
    }
    let len = u32::try_from(packed.len()).ok()?;
    let mut buf = BytesMut::with_capacity(MESSAGE_HEADER_LEN + packed.len());
    buf.put_u8(1);
    buf.put_u32(len);
    buf.put_slice(&packed);
    Some(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_negotiation() {
        assert_eq!(Encoding::parse(b"GZIP"), Ok(Some(Encoding::Gzip)));
        assert_eq!(Encoding::parse(b"deflate"), Ok(Some(Encoding::Deflate)));
        assert_eq!(Encoding::parse(b"identity"), Ok(None));
        let unknown = Encoding::parse(b"snappy").unwrap_err();
        assert_eq!(unknown.to_status().code, Code::Unimplemented);
        assert!(!ACCEPT_ENCODING.contains("snappy"));
        assert_eq!(
            Encoding::pick([&b"identity,deflate,gzip"[..]]),
            Some(Encoding::Gzip)
        );
        assert_eq!(
            Encoding::pick([&b"identity, deflate"[..]]),
            Some(Encoding::Deflate)
        );
        assert_eq!(Encoding::pick([&b"identity"[..], b"snappy"]), None);
        assert_eq!(
            Encoding::pick([&b"identity"[..], b"deflate"]),
            Some(Encoding::Deflate)
        );
        assert_eq!(Encoding::pick(std::iter::empty()), None);
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit() {
        // 4 MiB of zeros is about 4 KiB of gzip.
        let zeros = vec![0u8; 4 << 20];
        for enc in Encoding::ALL {
            let bomb = compress(enc, &zeros);
            assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
            let err = inflate(enc, &bomb, 1 << 20).unwrap_err();
            assert_eq!(err, InflateError::TooLarge { max: 1 << 20 });
            assert_eq!(err.to_status().code, Code::ResourceExhausted);
            // Exactly at the limit is fine.
            assert_eq!(inflate(enc, &bomb, 4 << 20).unwrap().len(), 4 << 20);
        }
    }

    #[test]
    fn the_buffer_never_grows_past_the_limit() {
        let mut out = Vec::new();
        let full = read_capped(&mut out, 100_000, |buf| Some(buf.len()));
        assert_eq!(full, Some(true));
        assert!(
            out.capacity() <= 100_001 + INFLATE_CHUNK,
            "{}",
            out.capacity()
        );
    }

    #[test]
    fn garbage_and_cut_short_input_are_corrupt() {
        for enc in Encoding::ALL {
            assert_eq!(
                inflate(enc, b"not compressed", 1024),
                Err(InflateError::Corrupt(enc))
            );
            let whole = compress(enc, &[7u8; 5000]);
            let cut = &whole[..whole.len() - 5];
            assert_eq!(inflate(enc, cut, 10_000), Err(InflateError::Corrupt(enc)));
            assert_eq!(inflate(enc, &[], 10), Err(InflateError::Corrupt(enc)));
            assert_eq!(InflateError::Corrupt(enc).to_status().code, Code::Internal);
        }
    }

    #[test]
    fn frames_compress_only_when_smaller() {
        let frame = crate::codec::encode_raw(&[b'a'; 1000]).unwrap();
        let packed = compress_frame(Encoding::Gzip, &frame).unwrap();
        assert_eq!(packed[0], 1);
        let mut dec = crate::codec::Decoder::default();
        dec.push(&packed);
        let m = dec.next_message().unwrap().unwrap();
        assert!(m.compressed);
        assert_eq!(
            &inflate(Encoding::Gzip, &m.payload, 1000).unwrap()[..],
            &[b'a'; 1000]
        );
        let tiny = crate::codec::encode_raw(b"hi").unwrap();
        assert_eq!(compress_frame(Encoding::Gzip, &tiny), None);
        assert_eq!(compress_frame(Encoding::Gzip, &packed), None);
        assert_eq!(compress_frame(Encoding::Gzip, &[0, 0]), None);
    }

    proptest! {
        #[test]
        fn round_trips(body in prop::collection::vec(any::<u8>(), 0..4000), gzip in any::<bool>()) {
            let enc = if gzip { Encoding::Gzip } else { Encoding::Deflate };
            let packed = compress(enc, &body);
            prop_assert_eq!(&inflate(enc, &packed, body.len()).unwrap()[..], &body[..]);
            if !body.is_empty() {
                prop_assert_eq!(
                    inflate(enc, &packed, body.len() - 1),
                    Err(InflateError::TooLarge { max: body.len() - 1 })
                );
            }
        }

        #[test]
        fn arbitrary_input_never_panics(input in prop::collection::vec(any::<u8>(), 0..300), max in 0usize..5000) {
            for enc in Encoding::ALL {
                if let Ok(out) = inflate(enc, &input, max) {
                    prop_assert!(out.len() <= max);
                }
            }
        }
    }
}
