//! One connection's life on its shard: the handshakes (TLS, if any, and
//! HTTP/2) under a time limit, its slot and id, the driver until the
//! connection closes, and the clean-up after.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use bytes::Bytes;
use futures_lite::future;

use super::{ConnDriver, Ended};
use crate::inbound::{FrameWatch, Meter};
use crate::io::Io;
use crate::server::local::Local;
use crate::server::messages::{LocalStream, NewConn, Socket, ToCore};
use crate::server::reactor::ShardTcp;
use crate::server::slot::Slot;

/// The connection's byte stream on this shard: a TCP socket on the shard's
/// own reactor, after the TLS handshake if it has one.
async fn open(socket: Socket) -> std::io::Result<Box<dyn LocalStream>> {
    match socket {
        Socket::Stream(stream) => Ok(Box::new(stream)),
        Socket::Tcp {
            stream,
            #[cfg(feature = "tls")]
            tls,
        } => {
            let tcp = ShardTcp::new(stream)?;
            #[cfg(feature = "tls")]
            if let Some(acceptor) = tls {
                let tls = acceptor.accept(tcp).await?;
                crate::tls::check_alpn(tls.get_ref().1.alpn_protocol())?;
                return Ok(Box::new(tls));
            }
            Ok(Box::new(tcp))
        }
    }
}

/// One connection, from the HTTP/2 handshake until it closes.
pub(crate) async fn connection<I: Send + 'static>(local: Rc<Local<I>>, conn: NewConn) {
    let NewConn {
        socket,
        peer,
        live,
        handshake_limit,
    } = conn;
    let _live = live;
    let config = &local.config;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(config.max_header_list_size)
        .initial_window_size(config.initial_stream_window)
        .initial_connection_window_size(config.initial_connection_window)
        .max_send_buffer_size(config.max_send_buffer);
    let meter = Arc::new(Meter::default());
    let handshakes = async {
        let io = match open(socket).await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(?peer, "TLS handshake failed: {e}");
                return None;
            }
        };
        let watch = FrameWatch::server(&config.input, Instant::now());
        let io = Io::new(io, meter.clone()).guarded(watch, config.input.turn_bytes);
        let h2 = builder.handshake::<_, Bytes>(io);
        Some(h2.await)
    };
    let timeout = async {
        Timer::after(handshake_limit).await;
        None
    };
    let h2 = match future::or(async { Some(handshakes.await) }, timeout).await {
        Some(Some(Ok(h2))) => h2,
        Some(None) => return,
        Some(Some(Err(e))) => {
            tracing::debug!(?peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        None => {
            tracing::debug!(?peer, "HTTP/2 handshake timed out");
            return;
        }
    };
    let (id, n) = local.next_id();
    let slot = Rc::new(RefCell::new(Slot {
        phase: n as usize % local.phases,
        ..Slot::default()
    }));
    local.slots.borrow_mut().insert(id, slot.clone());
    let to_core = local.to_core.clone();
    let connect = ToCore::Connect {
        conn: id,
        peer: peer.clone(),
    };
    if to_core.send(connect).await.is_ok() {
        let driver = ConnDriver::new(
            id,
            h2,
            meter,
            slot.clone(),
            local.shared.clone(),
            to_core.clone(),
            config.clone(),
            local.budget.clone(),
            peer.clone(),
        );
        match driver.await {
            Ended::Closed => tracing::debug!(?peer, "connection closed"),
            Ended::Error(e) => tracing::debug!(?peer, "connection ended: {e}"),
            Ended::Unresponsive => tracing::info!(
                ?peer,
                "closing a connection whose peer did not answer a keepalive ping"
            ),
        }
        let _ = to_core.send(ToCore::Disconnect { conn: id }).await;
    }
    local.slots.borrow_mut().remove(&id);
    let mut s = slot.borrow_mut();
    let mut groups = local.shared.groups.borrow_mut();
    for sub in std::mem::take(&mut s.subs) {
        groups.leave(sub, id, s.phase);
    }
}
