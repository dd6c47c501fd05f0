//! The gRPC length-prefixed message decoder (`chat_sansio::codec::Decoder`).
//!
//! Arbitrary bytes, cut into chunks at arbitrary points, go into a decoder
//! with a small arbitrary limit. Checked against a one-shot reference parser:
//!
//! - it never panics;
//! - every message it returns has a payload of at most `max` bytes, and the
//!   messages (and the first error) are exactly those of the reference, for
//!   any chunking;
//! - once an error is returned, `next_message` and `finish` keep returning
//!   that same error, even after more bytes are pushed;
//! - `finish` reports `Truncated { buffered }` with the count of bytes after
//!   the last whole message.
//!
//! Also: `decode(encode_raw(payload)) == payload` with the limit set exactly
//! to the payload length (and `TooLarge` at one byte less).

#![no_main]

use arbitrary::Arbitrary;
use chat_sansio::codec::{encode_raw, DecodeError, Decoder, Message};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// The limit, reduced to a small number so both sides of it are hit.
    max: u16,
    /// Raw wire bytes.
    wire: Vec<u8>,
    /// Where to cut `wire` into chunks (taken modulo its length + 1).
    cuts: Vec<u16>,
    /// Extra bytes pushed after an error, which must change nothing.
    after_error: Vec<u8>,
    /// A payload for the encode/decode round trip.
    payload: Vec<u8>,
    /// Where to cut the encoded payload.
    payload_cuts: Vec<u16>,
}

/// What a decoder must produce for `wire` as a whole.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    messages: Vec<Message>,
    /// The error `next_message` hits after the messages, if any.
    error: Option<DecodeError>,
    /// Bytes after the last whole message (for `finish`), when no error.
    leftover: usize,
}

/// A straightforward one-shot parser of the whole wire.
fn reference(wire: &[u8], max: usize) -> Expected {
    let mut messages = Vec::new();
    let mut at = 0;
    loop {
        let rest = &wire[at..];
        if rest.len() < 5 {
            return Expected {
                messages,
                error: None,
                leftover: rest.len(),
            };
        }
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        if flag > 1 {
            return Expected {
                messages,
                error: Some(DecodeError::InvalidFlag(flag)),
                leftover: 0,
            };
        }
        if len as usize > max {
            return Expected {
                messages,
                error: Some(DecodeError::TooLarge { len, max }),
                leftover: 0,
            };
        }
        let len = len as usize;
        if rest.len() < 5 + len {
            return Expected {
                messages,
                error: None,
                leftover: rest.len(),
            };
        }
        messages.push(Message {
            compressed: flag == 1,
            payload: bytes::Bytes::copy_from_slice(&rest[5..5 + len]),
        });
        at += 5 + len;
    }
}

/// Sorted cut points within `0..=len`, ending with `len`.
fn cut_points(cuts: &[u16], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| usize::from(c) % (len + 1)).collect();
    points.sort_unstable();
    points.push(len);
    points
}

/// Pushes `wire` in chunks, draining after each; returns the messages and the
/// first error.
fn decode_chunked(
    dec: &mut Decoder,
    wire: &[u8],
    cuts: &[u16],
    max: usize,
) -> (Vec<Message>, Option<DecodeError>) {
    let mut out = Vec::new();
    let mut start = 0;
    for end in cut_points(cuts, wire.len()) {
        dec.push(&wire[start..end]);
        start = end;
        loop {
            match dec.next_message() {
                Ok(Some(m)) => {
                    assert!(
                        m.payload.len() <= max,
                        "payload of {} bytes over the limit {max}",
                        m.payload.len()
                    );
                    out.push(m);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max % 300);
    let want = reference(&input.wire, max);

    let mut dec = Decoder::new(max);
    let (messages, error) = decode_chunked(&mut dec, &input.wire, &input.cuts, max);
    assert_eq!(messages, want.messages, "chunking changed the messages");
    assert_eq!(error, want.error, "chunking changed the error");

    match error {
        Some(err) => {
            // Sticky: the same error again, whatever is pushed afterwards.
            assert_eq!(dec.next_message(), Err(err.clone()));
            dec.push(&input.after_error);
            assert_eq!(dec.next_message(), Err(err.clone()));
            assert_eq!(dec.next_message(), Err(err.clone()));
            assert_eq!(dec.finish(), Err(err.clone()));
            assert_eq!(dec.buffered(), 0, "a failed decoder keeps no bytes");
        }
        None => {
            assert_eq!(dec.next_message(), Ok(None));
            let fin = dec.finish();
            if want.leftover == 0 {
                assert_eq!(fin, Ok(()));
            } else {
                assert_eq!(
                    fin,
                    Err(DecodeError::Truncated {
                        buffered: want.leftover
                    })
                );
            }
            // `finish` does not end the decoder: asking again is the same.
            assert_eq!(dec.finish(), fin);
        }
    }

    // Round trip, with the limit exactly at the payload length.
    let payload = &input.payload;
    let frame = encode_raw(payload).expect("small payloads always frame");
    assert_eq!(frame.len(), 5 + payload.len());
    let mut dec = Decoder::new(payload.len());
    let (got, err) = decode_chunked(&mut dec, &frame, &input.payload_cuts, payload.len());
    assert_eq!(err, None);
    assert_eq!(got.len(), 1, "one frame, one message");
    assert!(!got[0].compressed);
    assert_eq!(&got[0].payload[..], &payload[..]);
    assert_eq!(dec.next_message(), Ok(None));
    assert_eq!(dec.finish(), Ok(()));

    // One byte under the limit: refused from the prefix alone.
    if let Some(smaller) = payload.len().checked_sub(1) {
        let mut dec = Decoder::new(smaller);
        dec.push(&frame[..5]);
        assert_eq!(
            dec.next_message(),
            Err(DecodeError::TooLarge {
                len: payload.len() as u32,
                max: smaller
            })
        );
    }
});
