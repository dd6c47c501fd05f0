//! Who serves a call, decided in one place: the application's [`Handler`],
//! or one of the services the server answers itself (health, reflection).
//!
//! The server routes a call once, when it opens ([`Services::route`]), keeps
//! the answer in the call's state, and hands every later event of the call
//! to [`Services`] with it. Adding a built-in service means a field, a
//! [`ServedBy`] variant and an arm in each method here, and nothing in the
//! machine.

use bytes::Bytes;

use crate::status::Status;
use crate::time::Time;

use super::calls::ServedBy;
use super::handler::{CloseReason, Handler, Outbox, Request};
use super::health::{is_health_path, Health};
use super::ids::CallId;
use super::reflection::{is_reflection_path, Reflection};

/// The handler and the built-in services, each optional.
pub(crate) struct Services<H> {
    pub handler: H,
    pub health: Option<Health>,
    pub reflection: Option<Reflection>,
}

impl<H: Handler> Services<H> {
    /// `handler`, with the health service if `health`, and reflection from
    /// the encoded descriptor set `reflection` if given; reflection lists the
    /// handler's services and health.
    ///
    /// # Panics
    ///
    /// If the descriptor set does not decode or is incomplete (see
    /// [`ServerConfig::reflection`](super::ServerConfig::reflection)).
    pub fn new(handler: H, health: bool, reflection: Option<&[u8]>) -> Services<H> {
        let health = health.then(|| Health::new(handler.services()));
        let reflection = reflection.map(|set| {
            let mut services = handler.services();
            if health.is_some() {
                services.push(chat_proto::health::paths::SERVICE.to_owned());
            }
            Reflection::new(set, services).unwrap_or_else(|e| panic!("{e}"))
        });
        Services {
            handler,
            health,
            reflection,
        }
    }

    /// Who serves a call to `path`: the built-in services that are on take
    /// their paths; the handler takes the rest.
    pub fn route(&self, path: &str) -> ServedBy {
        if self.health.is_some() && is_health_path(path) {
            ServedBy::Health
        } else if self.reflection.is_some() && is_reflection_path(path) {
            ServedBy::Reflection
        } else {
            ServedBy::Handler
        }
    }

    /// A new call, routed to `by`. An error refuses it.
    pub fn open(
        &mut self,
        by: ServedBy,
        now: Time,
        req: &Request<'_>,
        out: &mut Outbox<'_, H::Event>,
    ) -> Result<(), Status> {
        match (by, &mut self.health, &mut self.reflection) {
            (ServedBy::Health, Some(h), _) => h.open(req.call, req.path),
            (ServedBy::Reflection, _, Some(r)) => r.open(req.call, req.path),
            _ => self.handler.open(now, req, out),
        }
    }

    /// One request message of a call routed to `by`.
    pub fn message(
        &mut self,
        by: ServedBy,
        now: Time,
        call: CallId,
        msg: Bytes,
        out: &mut Outbox<'_, H::Event>,
    ) {
        match (by, &mut self.health, &mut self.reflection) {
            (ServedBy::Health, Some(h), _) => h.message(call, msg, out),
            (ServedBy::Reflection, _, Some(r)) => r.message(call, msg, out),
            _ => self.handler.message(now, call, msg, out),
        }
    }

    /// The client half-closed a call routed to `by`.
    pub fn half_close(
        &mut self,
        by: ServedBy,
        now: Time,
        call: CallId,
        out: &mut Outbox<'_, H::Event>,
    ) {
        match (by, &mut self.health, &mut self.reflection) {
            (ServedBy::Health, Some(h), _) => h.half_close(call, out),
            (ServedBy::Reflection, _, Some(r)) => r.half_close(call, out),
            _ => self.handler.half_close(now, call, out),
        }
    }

    /// A call routed to `by` ended without its server finishing it.
    pub fn closed(
        &mut self,
        by: ServedBy,
        now: Time,
        call: CallId,
        reason: CloseReason,
        out: &mut Outbox<'_, H::Event>,
    ) {
        match (by, &mut self.health, &mut self.reflection) {
            (ServedBy::Health, Some(h), _) => h.closed(call),
            (ServedBy::Reflection, _, Some(r)) => r.closed(call),
            _ => self.handler.closed(now, call, reason, out),
        }
    }
}
