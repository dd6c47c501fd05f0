//! Shards: the threads that run connections.
//!
//! Each shard is one thread with its own executor, owning the connections
//! handed to it for their whole life, so everything one connection does
//! happens on one thread, with its state in that thread's cache. The core's
//! outputs reach a shard in one batch per core turn (one lock and one
//! wake-up per shard, not per message, [`super::inbox`]); the shard's
//! scheduler task ([`super::scheduler`]) hands each connection its part.
//! The core task runs on shard 0.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use smol::LocalExecutor;

use super::budget::Budget;
use super::config::ServerConfig;
use super::conn::open::connection;
use super::flush::PHASES;
use super::inbox::Mailbox;
use super::local::Local;
use super::messages::{NewConn, ToCore};
use super::reactor::{self, Reactor};
use super::scheduler;
use super::slot::{timed, Shared, Slots};

/// A shard as the rest of the server sees it.
pub(crate) struct Shard {
    conns: Sender<NewConn>,
    pub mailbox: Arc<Mailbox>,
    /// The time its thread has spent busy (inside its tasks' polls), in
    /// nanoseconds, as its scheduler last saw it: for metrics.
    pub busy: Arc<std::sync::atomic::AtomicU64>,
}

impl Shard {
    /// Hands a connection to the shard; false if the shard is gone.
    pub(crate) fn serve(&self, conn: NewConn) -> bool {
        self.conns.try_send(conn).is_ok()
    }
}

/// Starts `config`'s number of shard threads; `core` runs on shard 0.
pub(crate) fn start<I: Send + 'static>(
    config: &Arc<ServerConfig>,
    to_core: &Sender<ToCore<I>>,
    budget: &Arc<Budget>,
    core: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Vec<Shard> {
    let n = config.shard_count();
    let mut core = Some(core);
    (0..n)
        .map(|index| {
            let (tx, rx) = async_channel::unbounded();
            let mailbox = Arc::new(Mailbox::default());
            let busy = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let shard_busy = busy.clone();
            let (config, to_core, budget) = (config.clone(), to_core.clone(), budget.clone());
            let boot = core.take();
            let mb = mailbox.clone();
            std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    let phases = PHASES;
                    let local = Local {
                        index: index as u32,
                        shards: n as u32,
                        phases,
                        config,
                        to_core,
                        budget,
                        slots: Slots::default(),
                        shared: Rc::new(Shared::new(phases)),
                        accepted: Cell::new(0),
                    };
                    run(local, rx, mb, shard_busy, boot)
                })
                .expect("cannot start a shard thread");
            Shard {
                conns: tx,
                mailbox,
                busy,
            }
        })
        .collect()
}

/// A shard thread: runs its connections until the server is dropped and
/// the last of them has ended.
fn run<I: Send + 'static>(
    local: Local<I>,
    new_conns: Receiver<NewConn>,
    mailbox: Arc<Mailbox>,
    busy: Arc<std::sync::atomic::AtomicU64>,
    boot: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
) {
    let ex = Rc::new(LocalExecutor::new());
    let index = local.index;
    let local = Rc::new(local);
    if let Some(core) = boot {
        ex.spawn(timed(local.shared.clone(), core)).detach();
    }
    {
        let (local, shared) = (local.clone(), local.shared.clone());
        let config = local.config.clone();
        let scheduler = async move {
            scheduler::run(&local.slots, &local.shared, &config, mailbox, busy).await;
        };
        ex.spawn(timed(shared, scheduler)).detach();
    }
    let main = {
        let ex = ex.clone();
        async move {
            while let Ok(conn) = new_conns.recv().await {
                let conn = connection(local.clone(), conn);
                ex.spawn(timed(local.shared.clone(), conn)).detach();
            }
            while !local.slots.borrow().is_empty() {
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    };
    match Reactor::new() {
        Ok(reactor) => reactor::block_on(reactor, ex.run(main)),
        Err(e) => {
            // Without a poller of its own the shard still runs, on
            // async-io's (its TCP connections cannot: they are dropped).
            tracing::error!("shard {index}: cannot make a poller: {e}");
            async_io::block_on(ex.run(main));
        }
    }
}
