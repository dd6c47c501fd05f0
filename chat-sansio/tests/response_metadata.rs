//! Response metadata from a handler: initial metadata in the response
//! headers, trailing metadata with the status, and what is refused.

use bytes::Bytes;
use chat_sansio::metadata::{Metadata, MetadataError};
use chat_sansio::server::{
    CallId, CloseReason, ConnId, Handler, Outbox, Output, Request, RequestHead, SendError, Server,
};
use chat_sansio::{Code, Status, Time};

/// Answers by path and records what each metadata call returned.
#[derive(Default)]
struct Meta {
    results: Vec<Result<(), SendError>>,
}

fn md(fields: &[(&str, &[u8])]) -> Metadata {
    let mut md = Metadata::new();
    for (k, v) in fields {
        md.push(*k, Bytes::copy_from_slice(v));
    }
    md
}

impl Handler for Meta {
    type Event = ();
    type Input = ();

    fn open(&mut self, _: Time, req: &Request<'_>, out: &mut Outbox<'_, ()>) -> Result<(), Status> {
        let call = req.call;
        match req.path {
            "/t.T/Early" => {
                let initial = md(&[("x-initial", b"hello"), ("x-raw-bin", &[0, 0xff])]);
                self.results.push(out.send_headers(call, initial));
                self.results.push(out.send_headers(call, Metadata::new()));
            }
            "/t.T/Bad" => {
                for bad in [
                    md(&[("grpc-status", b"0")]),
                    md(&[("content-type", b"text/plain")]),
                    md(&[("connection", b"close")]),
                    md(&[("x-a", b"line\nbreak")]),
                ] {
                    self.results.push(out.send_headers(call, bad));
                }
            }
            "/t.T/Refuse" => {
                let why = md(&[("x-why", b"nope")]);
                let status = Status::new(Code::NotFound, "no");
                self.results.push(out.finish_with(call, status, why));
            }
            _ => {}
        }
        Ok(())
    }

    fn message(&mut self, _: Time, call: CallId, _: Bytes, out: &mut Outbox<'_, ()>) {
        self.results.push(out.send_headers(call, Metadata::new()));
    }

    fn half_close(&mut self, _: Time, call: CallId, out: &mut Outbox<'_, ()>) {
        let bad = md(&[("te", b"trailers")]);
        self.results.push(out.finish_with(call, Status::ok(), bad));
        let good = md(&[("x-trailing", b"bye"), ("x-t-bin", &[1, 2, 3])]);
        self.results.push(out.finish_with(call, Status::ok(), good));
        self.results
            .push(out.finish_with(call, Status::ok(), Metadata::new()));
    }

    fn closed(&mut self, _: Time, _: CallId, _: CloseReason, _: &mut Outbox<'_, ()>) {}
}

fn head(path: &str) -> RequestHead {
    RequestHead {
        method: "POST".into(),
        path: path.into(),
        headers: md(&[("content-type", b"application/grpc"), ("te", b"trailers")]),
    }
}

fn outputs(s: &mut Server<Meta>) -> Vec<Output<()>> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn start(path: &str) -> (Server<Meta>, Time) {
    let mut s = Server::new(Meta::default());
    let now = Time::from_micros(1);
    s.handle_connect(now, ConnId(1), None);
    s.handle_open(now, ConnId(1), CallId(1), head(path));
    (s, now)
}

#[test]
fn initial_metadata_goes_in_the_headers_once() {
    let (mut s, now) = start("/t.T/Early");
    let out = outputs(&mut s);
    assert_eq!(
        out,
        [Output::Headers {
            call: CallId(1),
            encoding: None,
            metadata: md(&[("x-initial", b"hello"), ("x-raw-bin", &[0, 0xff])]),
        }]
    );
    // Headers are out: initial metadata can no longer be set, not even by
    // the message callback.
    s.handle_data(now, CallId(1), &[0, 0, 0, 0, 0]);
    s.handle_end(now, CallId(1));
    let r = &s.handler().results;
    assert_eq!(r[..2], [Ok(()), Err(SendError::HeadersSent)]);
    assert_eq!(r[2], Err(SendError::HeadersSent));
    assert!(matches!(
        r[3],
        Err(SendError::Metadata(MetadataError::Reserved(_)))
    ));
    assert_eq!(r[4..], [Ok(()), Err(SendError::Ended)]);
    assert_eq!(
        outputs(&mut s),
        [Output::Trailers {
            call: CallId(1),
            status: Status::ok(),
            metadata: md(&[("x-trailing", b"bye"), ("x-t-bin", &[1, 2, 3])]),
        }]
    );
}

#[test]
fn refused_metadata_is_never_sent() {
    let (mut s, _) = start("/t.T/Bad");
    let r = &s.handler().results;
    assert_eq!(r.len(), 4);
    assert!(r[..3]
        .iter()
        .all(|r| matches!(r, Err(SendError::Metadata(MetadataError::Reserved(_))))));
    assert_eq!(
        r[3],
        Err(SendError::Metadata(MetadataError::InvalidValue(
            "x-a".into()
        )))
    );
    // The server still answers the accepted call, with no metadata.
    assert_eq!(
        outputs(&mut s),
        [Output::Headers {
            call: CallId(1),
            encoding: None,
            metadata: Metadata::new(),
        }]
    );
}

#[test]
fn trailing_metadata_rides_a_trailers_only_answer() {
    let (mut s, _) = start("/t.T/Refuse");
    assert_eq!(s.handler().results, [Ok(())]);
    assert_eq!(
        outputs(&mut s),
        [Output::TrailersOnly {
            call: CallId(1),
            http_status: 200,
            status: Status::new(Code::NotFound, "no"),
            metadata: md(&[("x-why", b"nope")]),
        }]
    );
}
