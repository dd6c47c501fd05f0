//! The client side of a call's response: response headers, messages,
//! trailers and resets turned into messages and one final [`Status`].
//!
//! Spec: PROTOCOL-HTTP2.md "Responses" and "Errors";
//! http-grpc-status-mapping.md.

use bytes::Bytes;

use crate::codec::Decoder;
use crate::compression::{inflate, Encoding, UnknownEncoding};
use crate::metadata::Metadata;
use crate::server::is_grpc_content_type;
use crate::status::{percent_decode, Code, Status};

/// Reads one call's response.
#[derive(Debug)]
pub struct ResponseReader {
    decoder: Decoder,
    max_message_size: usize,
    /// The response's `grpc-encoding`: `Ok(None)` for none or identity,
    /// `Err` for one we do not speak (then a compressed message is
    /// INTERNAL, GRPC-CONFORMANCE Z-C2).
    encoding: Result<Option<Encoding>, UnknownEncoding>,
    /// The Compressed-Flag of the message `next_message` returned last.
    last_compressed: bool,
}

impl ResponseReader {
    /// A reader refusing response messages over `max_message_size` bytes,
    /// compressed ones included once inflated.
    pub fn new(max_message_size: usize) -> ResponseReader {
        ResponseReader {
            decoder: Decoder::new(max_message_size),
            max_message_size,
            encoding: Ok(None),
            last_compressed: false,
        }
    }

    /// The response headers arrived. Returns the final status if this block
    /// already ends the call: a Trailers-Only response (`end_of_stream`), or
    /// a response that is not gRPC at all.
    pub fn headers(
        &mut self,
        http_status: u16,
        headers: &Metadata,
        end_of_stream: bool,
    ) -> Option<Status> {
        let grpc = headers
            .get("content-type")
            .is_some_and(is_grpc_content_type);
        if http_status != 200 || !grpc {
            // Use grpc-status if a gRPC server sent one; otherwise map the
            // HTTP status (http-grpc-status-mapping.md; a 200 without
            // grpc-status is UNKNOWN there too).
            if grpc {
                if let Some(status) = status_from_trailers(headers) {
                    return Some(status);
                }
            }
            let code = Code::from_http_status(http_status);
            let what = if grpc { "" } else { " (not a gRPC response)" };
            return Some(Status::new(
                code,
                format!("HTTP status {http_status}{what}"),
            ));
        }
        if end_of_stream {
            return Some(status_from_trailers(headers).unwrap_or_else(missing_status));
        }
        if let Some(value) = headers.get("grpc-encoding") {
            self.encoding = Encoding::parse(value);
        }
        None
    }

    /// A DATA chunk arrived.
    pub fn data(&mut self, chunk: &[u8]) {
        self.decoder.push(chunk);
    }

    /// The next whole response message, if one is buffered.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        let next = self.decoder.next_message();
        if let Ok(Some(m)) = &next {
            self.last_compressed = m.compressed;
        }
        match next {
            Ok(Some(m)) if m.compressed => match &self.encoding {
                Ok(Some(enc)) => inflate(*enc, &m.payload, self.max_message_size)
                    .map(Some)
                    .map_err(|e| e.to_status()),
                Ok(None) => Err(Status::new(
                    Code::Internal,
                    "compressed response message without grpc-encoding",
                )),
                Err(unknown) => Err(Status::new(
                    Code::Internal,
                    format!(
                        "compressed response message in unknown encoding {:?}",
                        unknown.0
                    ),
                )),
            },
            Ok(Some(m)) => Ok(Some(m.payload)),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_status()),
        }
    }

    /// Whether the message [`next_message`](Self::next_message) returned
    /// last arrived compressed (its Compressed-Flag; PROTOCOL-HTTP2.md
    /// "Length-Prefixed-Message").
    pub fn last_was_compressed(&self) -> bool {
        self.last_compressed
    }

    /// The trailers arrived: the call's final status.
    pub fn trailers(&mut self, trailers: &Metadata) -> Status {
        if let Err(e) = self.decoder.finish() {
            return e.to_status();
        }
        status_from_trailers(trailers).unwrap_or_else(missing_status)
    }

    /// The response stream ended without trailers.
    pub fn ended_without_trailers(&self) -> Status {
        Status::new(
            Code::Internal,
            "server closed the stream without sending trailers",
        )
    }
}

fn missing_status() -> Status {
    Status::new(Code::Unknown, "missing grpc-status")
}

/// The status in a trailers block (or Trailers-Only headers), if it has a
/// `grpc-status`. An unparsable value gives UNKNOWN, as grpc-go does
/// ("malformed grpc-status").
pub fn status_from_trailers(fields: &Metadata) -> Option<Status> {
    let raw = fields.get("grpc-status")?;
    let message = fields
        .get("grpc-message")
        .map(percent_decode)
        .unwrap_or_default();
    Some(match Code::parse(raw) {
        Some(code) => Status::new(code, message),
        None => Status::new(
            Code::Unknown,
            format!("malformed grpc-status {:?}", String::from_utf8_lossy(raw)),
        ),
    })
}

/// The status for a stream reset by the server with HTTP/2 error `code`
/// before trailers arrived (PROTOCOL-HTTP2.md "Errors").
pub fn status_from_reset(code: u32) -> Status {
    let (status, what) = match code {
        0x0 => (Code::Internal, "NO_ERROR before trailers"),
        0x7 => (Code::Unavailable, "REFUSED_STREAM"),
        0x8 => (Code::Cancelled, "CANCEL"),
        0xb => (Code::ResourceExhausted, "ENHANCE_YOUR_CALM"),
        0xc => (Code::PermissionDenied, "INADEQUATE_SECURITY"),
        _ => (Code::Internal, "error"),
    };
    Status::new(
        status,
        format!("stream reset by server: {what} (code {code})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(fields: &[(&str, &str)]) -> Metadata {
        let mut m = Metadata::new();
        for (k, v) in fields {
            m.push(*k, v.to_string());
        }
        m
    }

    #[test]
    fn trailers_only_and_http_errors() {
        let mut r = ResponseReader::new(1024);
        let s = r
            .headers(
                200,
                &md(&[
                    ("content-type", "application/grpc"),
                    ("grpc-status", "12"),
                    ("grpc-message", "no%20such"),
                ]),
                true,
            )
            .unwrap();
        assert_eq!((s.code, &*s.message), (Code::Unimplemented, "no such"));
        let s = r
            .headers(404, &md(&[("content-type", "text/html")]), true)
            .unwrap();
        assert_eq!(s.code, Code::Unimplemented);
        let s = r
            .headers(200, &md(&[("content-type", "text/html")]), false)
            .unwrap();
        assert_eq!(s.code, Code::Unknown);
        let s = r
            .headers(
                415,
                &md(&[("content-type", "application/grpc"), ("grpc-status", "3")]),
                true,
            )
            .unwrap();
        assert_eq!(s.code, Code::InvalidArgument);
        assert!(r
            .headers(200, &md(&[("content-type", "application/grpc")]), false)
            .is_none());
    }

    #[test]
    fn trailers_give_the_status() {
        let mut r = ResponseReader::new(1024);
        assert_eq!(r.trailers(&md(&[("grpc-status", "0")])), Status::ok());
        assert_eq!(r.trailers(&md(&[])).code, Code::Unknown);
        assert_eq!(r.trailers(&md(&[("grpc-status", "x")])).code, Code::Unknown);
        r.data(&[0, 0, 0, 0, 9]);
        assert_eq!(r.next_message(), Ok(None));
        assert_eq!(
            r.trailers(&md(&[("grpc-status", "0")])).code,
            Code::Internal
        );
    }

    #[test]
    fn compressed_responses_are_inflated_per_grpc_encoding() {
        let body = [b'z'; 3000];
        for (name, enc) in [("gzip", Encoding::Gzip), ("deflate", Encoding::Deflate)] {
            let frame = crate::codec::encode_raw(&body).unwrap();
            let packed = crate::compression::compress_frame(enc, &frame).unwrap();
            let headers = md(&[
                ("content-type", "application/grpc"),
                ("grpc-encoding", name),
            ]);
            let mut r = ResponseReader::new(4096);
            assert!(r.headers(200, &headers, false).is_none());
            r.data(&packed);
            r.data(&frame);
            assert_eq!(&r.next_message().unwrap().unwrap()[..], &body[..]);
            assert_eq!(&r.next_message().unwrap().unwrap()[..], &body[..]);
            // Past the limit once inflated: RESOURCE_EXHAUSTED.
            let mut r = ResponseReader::new(1000);
            r.headers(200, &headers, false);
            r.data(&packed);
            assert_eq!(r.next_message().unwrap_err().code, Code::ResourceExhausted);
        }
        for headers in [
            md(&[("content-type", "application/grpc")]),
            md(&[
                ("content-type", "application/grpc"),
                ("grpc-encoding", "snappy"),
            ]),
        ] {
            let mut r = ResponseReader::new(4096);
            r.headers(200, &headers, false);
            r.data(&[1, 0, 0, 0, 1, 7]);
            assert_eq!(r.next_message().unwrap_err().code, Code::Internal);
        }
    }

    #[test]
    fn resets_map_per_spec() {
        assert_eq!(status_from_reset(0).code, Code::Internal);
        assert_eq!(status_from_reset(7).code, Code::Unavailable);
        assert_eq!(status_from_reset(8).code, Code::Cancelled);
        assert_eq!(status_from_reset(11).code, Code::ResourceExhausted);
    }
}
