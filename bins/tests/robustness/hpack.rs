//! Just enough HPACK (RFC 7541) for a raw attacker: request blocks made of
//! literals without indexing, and a decoder for the server's answers
//! (h2 Huffman-codes every string and indexes what it sends, so reading a
//! `grpc-status` needs the whole decoder: static and dynamic tables and the
//! Huffman code).

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

/// Appends an integer with an `n`-bit prefix; `first` holds the bits above
/// the prefix (RFC 7541 §5.1).
fn put_int(out: &mut Vec<u8>, first: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Appends a "literal header field without indexing, new name" with raw
/// (not Huffman) strings (RFC 7541 §6.2.2, §5.2).
pub fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0);
    for s in [name.as_bytes(), value] {
        put_int(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// The static table (RFC 7541 Appendix A), index 1 first.
#[rustfmt::skip]
const STATIC: [(&str, &str); 61] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
];

/// Huffman code lengths of symbols 0..=255 (RFC 7541 Appendix B); the
/// code is canonical, so the codes follow from the lengths. EOS (256) is 30.
const HUFFMAN_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// (length, code) -> symbol, built once from [`HUFFMAN_LENGTHS`].
fn huffman_codes() -> &'static HashMap<(u8, u32), u16> {
    static CODES: OnceLock<HashMap<(u8, u32), u16>> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut symbols: Vec<(u8, u16)> = (0..256u16)
            .map(|s| (HUFFMAN_LENGTHS[s as usize], s))
            .chain([(30, 256)])
            .collect();
        symbols.sort();
        let (mut code, mut len) = (0u32, symbols[0].0);
        let mut map = HashMap::new();
        for (l, s) in symbols {
            code <<= l - len;
            len = l;
            map.insert((l, code), s);
            code += 1;
        }
        map
    })
}

/// Decodes a Huffman-coded string (RFC 7541 §5.2); the padding is the
/// most significant bits of EOS.
fn huffman_decode(src: &[u8]) -> Result<Vec<u8>, String> {
    let codes = huffman_codes();
    let (mut out, mut code, mut len) = (Vec::new(), 0u32, 0u8);
    for byte in src {
        for i in (0..8).rev() {
            code = (code << 1) | u32::from(byte >> i & 1);
            len += 1;
            match codes.get(&(len, code)) {
                Some(256) => return Err("EOS in a Huffman string".into()),
                Some(&s) => {
                    out.push(s as u8);
                    (code, len) = (0, 0);
                }
                None if len > 30 => return Err("bad Huffman code".into()),
                None => {}
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err("bad Huffman padding".into());
    }
    Ok(out)
}

/// A decoded header field.
pub type Field = (String, String);

/// The decoding side of one connection: its dynamic table.
pub struct Decoder {
    table: VecDeque<Field>,
    size: usize,
    max: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        // SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2).
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: 4096,
        }
    }
}

/// Reads an integer with an `n`-bit prefix at `src[*pos]` (RFC 7541 §5.1).
fn get_int(src: &[u8], pos: &mut usize, n: u32) -> Result<usize, String> {
    let max = (1usize << n) - 1;
    let first = *src.get(*pos).ok_or("truncated integer")? as usize & max;
    *pos += 1;
    if first < max {
        return Ok(first);
    }
    let (mut value, mut shift) = (max, 0);
    loop {
        let b = *src.get(*pos).ok_or("truncated integer")?;
        *pos += 1;
        value += ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 || shift > 28 {
            return Ok(value);
        }
    }
}

/// Reads a string literal (RFC 7541 §5.2).
fn get_str(src: &[u8], pos: &mut usize) -> Result<String, String> {
    let huffman = src.get(*pos).ok_or("truncated string")? & 0x80 != 0;
    let len = get_int(src, pos, 7)?;
    let raw = src.get(*pos..*pos + len).ok_or("truncated string")?;
    *pos += len;
    let bytes = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl Decoder {
    /// The entry at `index` (RFC 7541 §2.3.3: static first, then dynamic,
    /// newest first).
    fn get(&self, index: usize) -> Result<Field, String> {
        let entry = match index {
            0 => None,
            1..=61 => STATIC
                .get(index - 1)
                .map(|(n, v)| (n.to_string(), v.to_string())),
            _ => self.table.get(index - 62).cloned(),
        };
        entry.ok_or_else(|| format!("bad HPACK index {index}"))
    }

    /// Adds an entry, evicting the oldest to fit (RFC 7541 §4.1, §4.4).
    fn insert(&mut self, field: Field) {
        self.size += field.0.len() + field.1.len() + 32;
        self.table.push_front(field);
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            let Some((n, v)) = self.table.pop_back() else {
                break;
            };
            self.size -= n.len() + v.len() + 32;
        }
    }

    /// Decodes one whole header block (RFC 7541 §6).
    pub fn decode(&mut self, src: &[u8]) -> Result<Vec<Field>, String> {
        let (mut fields, mut pos) = (Vec::new(), 0);
        while pos < src.len() {
            let b = src[pos];
            if b & 0x80 != 0 {
                // §6.1: indexed.
                fields.push(self.get(get_int(src, &mut pos, 7)?)?);
                continue;
            }
            if b & 0xe0 == 0x20 {
                // §6.3: dynamic table size update.
                self.max = get_int(src, &mut pos, 5)?;
                self.evict();
                continue;
            }
            // §6.2.1 (incremental indexing, 6-bit prefix), §6.2.2 and
            // §6.2.3 (without / never indexed, 4-bit prefix).
            let indexing = b & 0xc0 == 0x40;
            let index = get_int(src, &mut pos, if indexing { 6 } else { 4 })?;
            let name = match index {
                0 => get_str(src, &mut pos)?,
                i => self.get(i)?.0,
            };
            let field = (name, get_str(src, &mut pos)?);
            if indexing {
                self.insert(field.clone());
            }
            fields.push(field);
        }
        Ok(fields)
    }
}

#[test]
fn hpack_decodes_the_rfc_examples() {
    // RFC 7541 C.4.1-C.4.2: requests with Huffman strings and indexing.
    let mut d = Decoder::default();
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let first = d
        .decode(&hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))
        .unwrap();
    assert_eq!(first[3], (":authority".into(), "www.example.com".into()));
    let second = d.decode(&hex("828684be5886a8eb10649cbf")).unwrap();
    assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
    assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
    let mut block = Vec::new();
    literal(&mut block, "grpc-status", &[b'x'; 300]);
    assert_eq!(d.decode(&block).unwrap()[0].1.len(), 300);
}
