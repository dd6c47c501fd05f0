//! The gRPC length-prefixed message codec.
//!
//! `Length-Prefixed-Message → Compressed-Flag Message-Length Message`, where
//! the flag is one byte (0 or 1) and the length a 4-byte big-endian unsigned
//! integer (PROTOCOL-HTTP2.md "Length-Prefixed-Message"). DATA frame
//! boundaries have no relation to message boundaries (PROTOCOL-HTTP2.md
//! "Data Frames"), so decoding is incremental: push chunks as they arrive,
//! then pull whole messages.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::limits::{DEFAULT_MAX_MESSAGE_SIZE, MESSAGE_HEADER_LEN};
use crate::status::{Code, Status};

/// One decoded gRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The Compressed-Flag was 1.
    pub compressed: bool,
    /// The message bytes, without the 5-byte prefix.
    pub payload: Bytes,
}

/// Why a message stream cannot be decoded. Each is the peer's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The Compressed-Flag was neither 0 nor 1 (PROTOCOL-HTTP2.md
    /// "Length-Prefixed-Message").
    InvalidFlag(u8),
    /// The announced length is over the limit; detected from the prefix,
    /// before any of the body is buffered (statuscodes.md: RESOURCE_EXHAUSTED
    /// for a message larger than the configured limit).
    TooLarge {
        /// The length the prefix announced.
        len: u32,
        /// The configured limit.
        max: usize,
    },
    /// The stream ended in the middle of a message (INTERNAL, as in tonic's
    /// codec/decode.rs).
    Truncated {
        /// Bytes of the unfinished message that had arrived.
        buffered: usize,
    },
}

impl DecodeError {
    /// The status that ends a call whose request stream failed this way.
    pub fn to_status(&self) -> Status {
        match *self {
            DecodeError::InvalidFlag(flag) => Status::new(
                Code::Internal,
                format!("invalid gRPC message compressed flag {flag}"),
            ),
            DecodeError::TooLarge { len, max } => Status::new(
                Code::ResourceExhausted,
                format!("received message larger than max ({len} vs. {max})"),
            ),
            DecodeError::Truncated { buffered } => Status::new(
                Code::Internal,
                format!("stream ended inside a message ({buffered} bytes of it received)"),
            ),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.to_status(), f)
    }
}

impl std::error::Error for DecodeError {}

/// A message too large to frame (its length does not fit in 32 bits), or
/// larger than the configured limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// The length of the message.
    pub len: usize,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message of {} bytes is too large to send", self.len)
    }
}

impl std::error::Error for EncodeError {}

/// Incremental decoder of length-prefixed messages.
///
/// ```
/// # use chat_sansio::codec::{Decoder, encode_raw};
/// let frame = encode_raw(b"hello").unwrap();
/// let mut dec = Decoder::default();
/// dec.push(&frame[..3]);
/// assert_eq!(dec.next_message(), Ok(None));
/// dec.push(&frame[3..]);
/// assert_eq!(&dec.next_message().unwrap().unwrap().payload[..], b"hello");
/// ```
#[derive(Debug)]
pub struct Decoder {
    max_message_size: usize,
    buf: BytesMut,
    /// The prefix of the message being read, once its 5 bytes are in.
    body: Option<(bool, usize)>,
    failed: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl Decoder {
    /// A decoder that refuses messages over `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Decoder {
        Decoder {
            max_message_size,
            buf: BytesMut::new(),
            body: None,
            failed: None,
        }
    }

    /// Appends received bytes. Ignored once decoding has failed.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes received but not yet returned as a message (a read prefix
    /// included), as [`Decoder::finish`] reports them.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.body.map_or(0, |_| MESSAGE_HEADER_LEN)
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    ///
    /// Check, then parse, then advance: the prefix is validated (flag, size
    /// limit) as soon as its 5 bytes are in, so an oversized message is
    /// refused before its body is buffered. After an error the decoder stays
    /// failed and returns the same error.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.body.is_none() {
            if self.buf.len() < MESSAGE_HEADER_LEN {
                return Ok(None);
            }
            let flag = self.buf[0];
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
            let err = match flag {
                0 | 1 if (len as usize) <= self.max_message_size => None,
                0 | 1 => Some(DecodeError::TooLarge {
                    len,
                    max: self.max_message_size,
                }),
                other => Some(DecodeError::InvalidFlag(other)),
            };
            if let Some(err) = err {
                self.buf = BytesMut::new();
                self.failed = Some(err.clone());
                return Err(err);
            }
            self.buf.advance(MESSAGE_HEADER_LEN);
            self.body = Some((flag == 1, len as usize));
        }
        let Some((compressed, len)) = self.body else {
            return Ok(None);
        };
        if self.buf.len() < len {
            self.buf.reserve(len - self.buf.len());
            return Ok(None);
        }
        self.body = None;
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Message {
            compressed,
            payload,
        }))
    }

    /// Call when the request stream has ended: an error if it ended inside
    /// a message (see [`DecodeError::Truncated`]).
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let buffered = self.buffered();
        if buffered == 0 {
            Ok(())
        } else {
            Err(DecodeError::Truncated { buffered })
        }
    }
}

/// Frames raw message bytes (uncompressed) into a ready-to-send buffer.
pub fn encode_raw(payload: &[u8]) -> Result<Bytes, EncodeError> {
    let len = u32::try_from(payload.len()).map_err(|_| EncodeError { len: payload.len() })?;
    let mut buf = BytesMut::with_capacity(MESSAGE_HEADER_LEN + payload.len());
    buf.put_u8(0);
    buf.put_u32(len);
    buf.put_slice(payload);
    Ok(buf.freeze())
}

/// Encodes a protobuf message and frames it (uncompressed), in one buffer.
pub fn encode<M: prost::Message>(msg: &M) -> Result<Bytes, EncodeError> {
    let len = msg.encoded_len();
    let len32 = u32::try_from(len).map_err(|_| EncodeError { len })?;
    let mut buf = BytesMut::with_capacity(MESSAGE_HEADER_LEN + len);
    buf.put_u8(0);
    buf.put_u32(len32);
    // Cannot fail: the buffer has room for `encoded_len` bytes.
    msg.encode(&mut buf).map_err(|_| EncodeError { len })?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(msgs: &[(bool, Vec<u8>)]) -> Vec<u8> {
        let mut wire = Vec::new();
        for (compressed, body) in msgs {
            wire.push(u8::from(*compressed));
            wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
            wire.extend_from_slice(body);
        }
        wire
    }

    fn decode_chunked(wire: &[u8], cuts: &[usize]) -> Result<Vec<Message>, DecodeError> {
        let mut dec = Decoder::default();
        let mut out = Vec::new();
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        points.push(wire.len());
        for end in points {
            dec.push(&wire[start..end]);
            start = end;
            while let Some(m) = dec.next_message()? {
                out.push(m);
            }
        }
        dec.finish()?;
        Ok(out)
    }

    #[test]
    fn zero_length_messages_are_messages() {
        let mut dec = Decoder::default();
        dec.push(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(dec.next_message().unwrap().unwrap().payload.len(), 0);
        assert_eq!(dec.next_message().unwrap().unwrap().payload.len(), 0);
        assert_eq!(dec.next_message(), Ok(None));
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn oversized_is_refused_from_the_prefix() {
        let mut dec = Decoder::new(10);
        dec.push(&[0, 0, 0, 0, 11]);
        assert_eq!(
            dec.next_message(),
            Err(DecodeError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.to_status_code(), Code::ResourceExhausted);
    }

    #[test]
    fn default_limit_is_4_mib() {
        let mut dec = Decoder::default();
        dec.push(&[0, 0, 0x40, 0, 0]);
        assert_eq!(dec.next_message(), Ok(None));
        let mut dec = Decoder::default();
        dec.push(&[0, 0, 0x40, 0, 1]);
        assert!(matches!(
            dec.next_message(),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_flag_and_truncation_are_errors() {
        let mut dec = Decoder::default();
        dec.push(&[2, 0, 0, 0, 0]);
        assert_eq!(dec.next_message(), Err(DecodeError::InvalidFlag(2)));
        let mut dec = Decoder::default();
        dec.push(&[0, 0, 0, 0, 3, 1]);
        assert_eq!(dec.next_message(), Ok(None));
        assert_eq!(dec.finish(), Err(DecodeError::Truncated { buffered: 6 }));
        let mut dec = Decoder::default();
        dec.push(&[0, 0]);
        assert_eq!(dec.finish(), Err(DecodeError::Truncated { buffered: 2 }));
    }

    #[test]
    fn compressed_flag_is_reported() {
        let mut dec = Decoder::default();
        dec.push(&[1, 0, 0, 0, 1, 7]);
        let m = dec.next_message().unwrap().unwrap();
        assert!(m.compressed);
        assert_eq!(&m.payload[..], [7]);
    }

    impl Decoder {
        fn to_status_code(&self) -> Code {
            self.failed
                .as_ref()
                .map_or(Code::Ok, |e| e.to_status().code)
        }
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_the_same(
            msgs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..12),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            let wire = frames(&msgs);
            let got = decode_chunked(&wire, &cuts).unwrap();
            let want: Vec<Message> = msgs
                .iter()
                .map(|(c, b)| Message { compressed: *c, payload: Bytes::from(b.clone()) })
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn decode_of_encode_is_identity(body in prop::collection::vec(any::<u8>(), 0..2000)) {
            let frame = encode_raw(&body).unwrap();
            let mut dec = Decoder::default();
            dec.push(&frame);
            let m = dec.next_message().unwrap().unwrap();
            prop_assert!(!m.compressed);
            prop_assert_eq!(&m.payload[..], &body[..]);
            prop_assert_eq!(dec.next_message(), Ok(None));
        }

        #[test]
        fn protobuf_round_trips(user_id in ".{0,40}", text in ".{0,200}") {
            let msg = chat_proto::ChatMessage {
                user: Some(chat_proto::User { user_id, username: "u".into(), room_id: String::new() }),
                message: text,
                seq: 7,
                ..Default::default()
            };
            let frame = encode(&msg).unwrap();
            let mut dec = Decoder::default();
            dec.push(&frame);
            let m = dec.next_message().unwrap().unwrap();
            let back = <chat_proto::ChatMessage as prost::Message>::decode(m.payload).unwrap();
            prop_assert_eq!(back, msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(wire in prop::collection::vec(any::<u8>(), 0..200), max in 0usize..64) {
            let mut dec = Decoder::new(max);
            dec.push(&wire);
            while let Ok(Some(_)) = dec.next_message() {}
            let _ = dec.finish();
        }
    }
}
