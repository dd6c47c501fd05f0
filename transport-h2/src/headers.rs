//! Conversions between h2/http header maps and the core's metadata, and the
//! response header blocks the core asks for.

use bytes::Bytes;
use chat_sansio::compression::Encoding;
use chat_sansio::metadata::Metadata;
use chat_sansio::server::RESPONSE_HEADERS;
use chat_sansio::Status;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

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
/// call's compressed messages use `encoding`.
pub(crate) fn response_headers(encoding: Option<Encoding>) -> Response<()> {
    let mut resp = Response::new(());
    add_static(resp.headers_mut(), RESPONSE_HEADERS);
    if let Some(enc) = encoding {
        resp.headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static(enc.name()));
    }
    resp
}

/// A Trailers-Only response (PROTOCOL-HTTP2.md, "Trailers-Only"): `:status`, content-type and the status
/// in one END_STREAM block.
pub(crate) fn trailers_only(http_status: u16, status: &Status) -> Response<()> {
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::from_u16(http_status).unwrap_or(StatusCode::OK);
    add_static(resp.headers_mut(), RESPONSE_HEADERS);
    add_status(resp.headers_mut(), status);
    resp
}

/// The trailers block ending a call (PROTOCOL-HTTP2.md, "Trailers"): `grpc-status` always, even for OK.
pub(crate) fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(2);
    add_status(&mut map, status);
    map
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
