//! Inflating compressed message bodies (`chat_sansio::compression`), the
//! one place a peer's few bytes can ask for many.
//!
//! Arbitrary bytes are inflated as gzip and as deflate under a small
//! arbitrary limit:
//!
//! - it never panics;
//! - what comes out is at most `max` bytes.
//!
//! Also: an arbitrary payload compressed then inflated comes back whole
//! with the limit set exactly to its length, and is `TooLarge` at one byte
//! less.

#![no_main]

use arbitrary::Arbitrary;
use chat_sansio::compression::{compress, inflate, Encoding, InflateError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// The limit, small so both sides of it are hit.
    max: u16,
    /// Bytes a peer sent as a compressed body.
    wire: Vec<u8>,
    /// A payload for the round trip.
    payload: Vec<u8>,
    /// Deflate rather than gzip for the round trip.
    deflate: bool,
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max);
    for enc in Encoding::ALL {
        if let Ok(out) = inflate(enc, &input.wire, max) {
            assert!(out.len() <= max, "{} bytes out of {enc:?} past {max}", out.len());
        }
    }
    let enc = if input.deflate {
        Encoding::Deflate
    } else {
        Encoding::Gzip
    };
    let packed = compress(enc, &input.payload);
    let len = input.payload.len();
    assert_eq!(&inflate(enc, &packed, len).unwrap()[..], &input.payload[..]);
    if len > 0 {
        assert_eq!(
            inflate(enc, &packed, len - 1),
            Err(InflateError::TooLarge { max: len - 1 })
        );
    }
});
