//! The `grpc-timeout` header: `1*8DIGIT unit`, unit one of `H M S m u n`
//! (PROTOCOL-HTTP2.md "Timeout").

use std::time::Duration;

/// A `grpc-timeout` value that does not follow the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTimeout;

impl std::fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed grpc-timeout")
    }
}

impl std::error::Error for InvalidTimeout {}

/// Parses a `grpc-timeout` value. `0` with any unit is valid and means the
/// deadline has already passed (grpc-go sends `0n` for expired deadlines).
pub fn parse_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let (&unit, digits) = value.split_last().ok_or(InvalidTimeout)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidTimeout);
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(InvalidTimeout),
    })
}

/// Encodes a timeout with the finest unit whose value fits in 8 digits,
/// rounding up so the peer never sees a shorter deadline than ours (grpc-go
/// `EncodeDuration`).
pub fn encode_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        let n = nanos.div_ceil(per);
        if n <= MAX {
            return format!("{n}{unit}");
        }
    }
    format!("{MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_timeout(b"1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"4m"), Ok(Duration::from_millis(4)));
        assert_eq!(parse_timeout(b"5u"), Ok(Duration::from_micros(5)));
        assert_eq!(parse_timeout(b"0n"), Ok(Duration::ZERO));
        assert_eq!(
            parse_timeout(b"99999999S"),
            Ok(Duration::from_secs(99_999_999))
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            &b""[..],
            b"S",
            b"1",
            b"123456789S",
            b"1s",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(parse_timeout(bad), Err(InvalidTimeout), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn encoding_round_trips_without_shortening(nanos in 0u64..u64::MAX / 4) {
            let d = Duration::from_nanos(nanos);
            let enc = encode_timeout(d);
            prop_assert!(enc.len() <= 9);
            let back = parse_timeout(enc.as_bytes()).unwrap();
            prop_assert!(back >= d);
        }
    }
}
