//! Conversions between h2/http header maps and the core's metadata, and the
//! response header blocks the core asks for.

use bytes::Bytes;
use chat_sansio::compression::Encoding;
use chat_sansio::metadata::{wire_value, Metadata};
use chat_sansio::server::RESPONSE_HEADERS;
use chat_sansio::Status;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// Copies a header map into core metadata, in order.
pub(crate) fn to_metadata(headers: &HeaderMap) -> Metadata {
    let mut md = Metadata::new();
    for (name, value) in headers {
        md.push(name.as_str(), Bytes::copy_from_slice(value.as_bytes()));
    }
    md
}

/// Response headers for an accepted call (PROTOCOL-HTTP2.md,
/// "Response-Headers"): no `grpc-status` here; `grpc-encoding` when the
/// call's compressed messages use `encoding`; the handler's initial
/// metadata last.
pub(crate) fn response_headers(encoding: Option<Encoding>, metadata: &Metadata) -> Response<()> {
    let mut resp = Response::new(());
    add_static(resp.headers_mut(), RESPONSE_HEADERS);
    if let Some(enc) = encoding {
        resp.headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static(enc.name()));
    }
    add_metadata(resp.headers_mut(), metadata);
    resp
}

/// A Trailers-Only response (PROTOCOL-HTTP2.md, "Trailers-Only"): `:status`, content-type and the status
/// in one END_STREAM block, then the handler's trailing metadata.
pub(crate) fn trailers_only(
    http_status: u16,
    status: &Status,
    metadata: &Metadata,
) -> Response<()> {
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::from_u16(http_status).unwrap_or(StatusCode::OK);
    add_static(resp.headers_mut(), RESPONSE_HEADERS);
    add_status(resp.headers_mut(), status);
    add_metadata(resp.headers_mut(), metadata);
    resp
}

/// The trailers block ending a call (PROTOCOL-HTTP2.md, "Trailers"):
/// `grpc-status` always, even for OK, then the handler's trailing metadata.
pub(crate) fn trailers(status: &Status, metadata: &Metadata) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(2 + metadata.len());
    add_status(&mut map, status);
    add_metadata(&mut map, metadata);
    map
}

/// Appends response metadata after the protocol's fields
/// (PROTOCOL-HTTP2.md: Custom-Metadata comes last), `-bin` values in
/// base64. The core has checked it
/// ([`check_response`](chat_sansio::metadata::check_response)); a field
/// http would still refuse is skipped rather than sent broken.
fn add_metadata(map: &mut HeaderMap, metadata: &Metadata) {
    for (key, value) in metadata.iter() {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_maybe_shared(wire_value(key, value)) {
            map.append(name, value);
        }
    }
}

fn add_static(map: &mut HeaderMap, fields: &[(&'static str, &'static str)]) {
    for (name, value) in fields {
        map.insert(*name, HeaderValue::from_static(value));
    }
}

fn add_status(map: &mut HeaderMap, status: &Status) {
    map.insert(
        "grpc-status",
        HeaderValue::from_static(status.code.as_header_value()),
    );
    if let Some(msg) = status.encoded_message() {
        // Percent-encoding leaves only visible ASCII and space, which is
        // always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&msg) {
            map.insert("grpc-message", value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_follows_the_status_and_bin_values_go_base64() {
        let mut md = Metadata::new();
        md.push("x-a", "one");
        md.push("x-b-bin", Bytes::from_static(&[0xab, 0xab, 0xab]));
        md.push("x-a", "two");
        // Never checked by the core if it came some other way: skipped.
        md.push("bad key", "v");
        let map = trailers(&Status::ok(), &md);
        let fields: Vec<_> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("grpc-status", "0"),
                ("x-a", "one"),
                ("x-a", "two"),
                ("x-b-bin", "q6ur")
            ]
        );
    }
}
