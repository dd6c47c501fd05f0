//! Checks on a request's headers before a call is accepted.
//!
//! Spec: PROTOCOL-HTTP2.md "Requests"; the HTTP statuses of refusals are
//! grpc-go's (internal/transport/http2_server.go).

use std::time::Duration;

use crate::compression::Encoding;
use crate::metadata::Metadata;
use crate::status::{Code, Status};
use crate::timeout::parse_timeout;

/// Header fields of a request as the driver received them.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// The HTTP method (`:method`).
    pub method: String,
    /// The `:path`, without any query.
    pub path: String,
    /// Every other header field, in order; pseudo-headers excluded.
    pub headers: Metadata,
}

/// A request refused before it reached the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status to answer with (200 unless the request is not gRPC).
    pub http_status: u16,
    /// The gRPC status in the Trailers-Only response.
    pub status: Status,
}

/// What the checks learned from an acceptable request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The `grpc-timeout`, if any.
    pub timeout: Option<Duration>,
    /// The `grpc-encoding` of the request's compressed messages; `None`
    /// for `identity` or no header, when a compressed message is an error.
    pub encoding: Option<Encoding>,
    /// The encoding responses may use: our preferred one among those the
    /// client lists in `grpc-accept-encoding` (doc/compression.md: only
    /// those, SHALL).
    pub accepts: Option<Encoding>,
}

fn reject(http_status: u16, code: Code, message: impl Into<String>) -> Rejection {
    Rejection {
        http_status,
        status: Status::new(code, message.into()),
    }
}

/// Whether a `content-type` names gRPC: `application/grpc`, optionally
/// followed by `+subtype` or `;params` (PROTOCOL-HTTP2.md "Content-Type", as
/// grpc-go's internal/grpcutil/method.go and C-core accept).
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    const BASE: &[u8] = b"application/grpc";
    value.len() >= BASE.len()
        && value[..BASE.len()].eq_ignore_ascii_case(BASE)
        && matches!(value.get(BASE.len()), None | Some(b'+') | Some(b';'))
}

/// Checks the HTTP/2-level and gRPC-level request headers.
///
/// `te: trailers` is not required: grpc-go and grpc-js servers do not require
/// it and proxies strip it (grpc/grpc#36768, grpc/grpc#35841).
pub(crate) fn check(head: &RequestHead) -> Result<Checked, Rejection> {
    if head.method != "POST" {
        return Err(reject(
            405,
            Code::Internal,
            format!("gRPC requires method POST, got {}", head.method),
        ));
    }
    match head.headers.get("content-type") {
        Some(ct) if is_grpc_content_type(ct) => {}
        other => {
            let shown = other.map(String::from_utf8_lossy).unwrap_or_default();
            return Err(reject(
                415,
                Code::InvalidArgument,
                format!("invalid gRPC request content-type {shown:?}"),
            ));
        }
    }
    let timeout = match head.headers.get("grpc-timeout") {
        None => None,
        Some(value) => match parse_timeout(value) {
            Ok(t) => Some(t),
            Err(_) => {
                return Err(reject(
                    400,
                    Code::Internal,
                    format!(
                        "malformed grpc-timeout {:?}",
                        String::from_utf8_lossy(value)
                    ),
                ))
            }
        },
    };
    // An encoding we do not know: UNIMPLEMENTED, and the Trailers-Only
    // answer lists ours in grpc-accept-encoding (doc/compression.md).
    let encoding = match head.headers.get("grpc-encoding").map(Encoding::parse) {
        None => None,
        Some(Ok(enc)) => enc,
        Some(Err(unknown)) => {
            return Err(Rejection {
                http_status: 200,
                status: unknown.to_status(),
            })
        }
    };
    let accepts = Encoding::pick(head.headers.get_all("grpc-accept-encoding"));
    Ok(Checked {
        timeout,
        encoding,
        accepts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(ct: Option<&str>, extra: &[(&str, &str)]) -> RequestHead {
        let mut headers = Metadata::new();
        if let Some(ct) = ct {
            headers.push("content-type", ct.to_owned());
        }
        for (k, v) in extra {
            headers.push(*k, v.to_string());
        }
        RequestHead {
            method: "POST".into(),
            path: "/ChatService/JoinChat".into(),
            headers,
        }
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;charset=utf-8",
            "Application/GRPC",
        ] {
            assert!(is_grpc_content_type(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "application/json",
            "application/grpc-web",
            "application/grp",
            "",
        ] {
            assert!(!is_grpc_content_type(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn rejections_carry_the_right_statuses() {
        let r = check(&head(Some("application/json"), &[])).unwrap_err();
        assert_eq!((r.http_status, r.status.code), (415, Code::InvalidArgument));
        let r = check(&head(None, &[])).unwrap_err();
        assert_eq!(r.http_status, 415);
        let r = check(&head(Some("application/grpc"), &[("grpc-timeout", "1x")])).unwrap_err();
        assert_eq!((r.http_status, r.status.code), (400, Code::Internal));
        let r = check(&head(
            Some("application/grpc"),
            &[("grpc-encoding", "snappy")],
        ))
        .unwrap_err();
        assert_eq!((r.http_status, r.status.code), (200, Code::Unimplemented));
        assert!(r.status.message.contains("gzip,deflate,identity"));
        let mut h = head(Some("application/grpc"), &[]);
        h.method = "GET".into();
        assert_eq!(check(&h).unwrap_err().http_status, 405);
    }

    #[test]
    fn accepts_timeouts_and_identity() {
        let c = check(&head(
            Some("application/grpc"),
            &[("grpc-timeout", "0n"), ("grpc-encoding", "identity")],
        ))
        .unwrap();
        assert_eq!(c.timeout, Some(Duration::ZERO));
        assert_eq!(c.encoding, None);
    }

    #[test]
    fn reads_the_encodings() {
        let c = check(&head(
            Some("application/grpc"),
            &[
                ("grpc-encoding", "deflate"),
                ("grpc-accept-encoding", "identity,deflate,gzip"),
            ],
        ))
        .unwrap();
        assert_eq!(c.encoding, Some(Encoding::Deflate));
        assert_eq!(c.accepts, Some(Encoding::Gzip));
        let c = check(&head(
            Some("application/grpc"),
            &[("grpc-encoding", "gzip")],
        ))
        .unwrap();
        assert_eq!((c.encoding, c.accepts), (Some(Encoding::Gzip), None));
    }
}
