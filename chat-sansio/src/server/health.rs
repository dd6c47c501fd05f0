//! The standard health service, `grpc.health.v1.Health`, which the
//! [`Server`](super::Server) answers itself for any handler (gRPC's
//! doc/health-checking.md and grpc-proto's grpc/health/v1/health.proto):
//!
//! - `Check` answers SERVING or NOT_SERVING for a known service name, the
//!   empty name standing for the whole server, and NOT_FOUND for others;
//! - `Watch` sends the status at once and again on every change; for an
//!   unknown name it sends SERVICE_UNKNOWN and stays open, so a client
//!   learns when the service appears;
//! - `List` answers every known status, at most [`MAX_HEALTH_LIST`].
//!
//! Known names are `""`, the handler's [`services`](super::Handler::services)
//! and whatever the driver sets with
//! [`Server::set_health`](super::Server::set_health). Shutting down turns
//! them all NOT_SERVING.

use std::collections::BTreeMap;

use bytes::Bytes;
use chat_proto::health::{
    paths, HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use prost::Message as _;

use crate::idmap::IdMap;
use crate::limits::MAX_HEALTH_LIST;
use crate::status::{malformed, unimplemented, Code, Status};

use super::handler::Outbox;
use super::ids::CallId;

pub use chat_proto::health::health_check_response::ServingStatus;

/// The service's methods.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Method {
    Check,
    List,
    Watch,
}

/// A health call: its method, and the service it asked about once its one
/// request has come.
#[derive(Debug)]
struct HealthCall {
    method: Method,
    request: Option<String>,
}

/// The statuses, and the health calls in progress.
#[derive(Debug, Default)]
pub(crate) struct Health {
    statuses: BTreeMap<String, ServingStatus>,
    calls: IdMap<CallId, HealthCall>,
}

/// Whether `path` is a method of the health service (or meant to be).
pub(crate) fn is_health_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(paths::SERVICE))
        .is_some_and(|rest| rest.starts_with('/'))
}

impl Health {
    /// Every service in `names`, and the server as a whole (`""`), SERVING.
    pub fn new(names: impl IntoIterator<Item = String>) -> Health {
        let mut statuses = BTreeMap::new();
        statuses.insert(String::new(), ServingStatus::Serving);
        for name in names {
            statuses.insert(name, ServingStatus::Serving);
        }
        Health {
            statuses,
            calls: IdMap::default(),
        }
    }

    /// The status of `service`, if it is known.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        self.statuses.get(service).copied()
    }

    /// A call to one of the health paths.
    pub fn open(&mut self, call: CallId, path: &str) -> Result<(), Status> {
        let method = match path {
            paths::CHECK => Method::Check,
            paths::LIST => Method::List,
            paths::WATCH => Method::Watch,
            _ => return Err(unimplemented(path)),
        };
        let request = None;
        self.calls.insert(call, HealthCall { method, request });
        Ok(())
    }

    /// The call's request message.
    pub fn message<E>(&mut self, call: CallId, msg: Bytes, out: &mut Outbox<'_, E>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.request.is_some() {
            let status = Status::new(Code::Internal, "more than one request message");
            return self.finish(call, status, out);
        }
        let method = c.method;
        let service = match method {
            Method::List => HealthListRequest::decode(msg).map(|_| String::new()),
            Method::Check | Method::Watch => HealthCheckRequest::decode(msg).map(|r| r.service),
        };
        let service = match service {
            Ok(s) => s,
            Err(e) => return self.finish(call, malformed("request", &e), out),
        };
        if method == Method::Watch {
            out.send_message(call, &response(self.watched(&service)));
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.request = Some(service);
        }
    }

    /// The client has sent everything: unary methods answer now; a watch
    /// goes on.
    pub fn half_close<E>(&mut self, call: CallId, out: &mut Outbox<'_, E>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(service) = &c.request else {
            let status = Status::new(Code::Internal, "no request message");
            return self.finish(call, status, out);
        };
        match c.method {
            Method::Watch => {}
            Method::Check => match self.status(service) {
                Some(s) => {
                    out.send_message(call, &response(s));
                    self.finish(call, Status::ok(), out);
                }
                None => {
                    let status = Status::new(Code::NotFound, format!("unknown service {service}"));
                    self.finish(call, status, out);
                }
            },
            Method::List if self.statuses.len() > MAX_HEALTH_LIST => {
                let status = Status::new(Code::ResourceExhausted, "too many services to list");
                self.finish(call, status, out);
            }
            Method::List => {
                let statuses = self
                    .statuses
                    .iter()
                    .map(|(name, &s)| (name.clone(), response(s)))
                    .collect();
                out.send_message(call, &HealthListResponse { statuses });
                self.finish(call, Status::ok(), out);
            }
        }
    }

    /// The call ended without the service finishing it.
    pub fn closed(&mut self, call: CallId) {
        self.calls.remove(&call);
    }

    /// Sets a service's status, adding the service if it is new, and tells
    /// its watchers if it changed.
    pub fn set<E>(&mut self, service: &str, status: ServingStatus, out: &mut Outbox<'_, E>) {
        if self.statuses.get(service) == Some(&status) {
            return;
        }
        self.statuses.insert(service.to_owned(), status);
        for (&call, c) in &self.calls {
            if c.method == Method::Watch && c.request.as_deref() == Some(service) {
                out.send_message(call, &response(status));
            }
        }
    }

    /// Every known service NOT_SERVING.
    pub fn set_all_not_serving<E>(&mut self, out: &mut Outbox<'_, E>) {
        let names: Vec<String> = self.statuses.keys().cloned().collect();
        for name in names {
            self.set(&name, ServingStatus::NotServing, out);
        }
    }

    fn watched(&self, service: &str) -> ServingStatus {
        self.status(service)
            .unwrap_or(ServingStatus::ServiceUnknown)
    }

    fn finish<E>(&mut self, call: CallId, status: Status, out: &mut Outbox<'_, E>) {
        self.calls.remove(&call);
        out.finish(call, status);
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}
