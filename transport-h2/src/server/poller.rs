//! A shard's poller: its sockets' readiness, a way for other threads to
//! interrupt its wait, and its next deadline.
//!
//! On Linux this is epoll used the way a thread that owns everything it
//! polls can use it: the sockets, an eventfd (the interruption) and a
//! timerfd (the deadline, finer than `epoll_wait`'s milliseconds) are each
//! registered once, edge-triggered, and a wait is one `epoll_wait`. The
//! timerfd is set only when the deadline moves earlier than the one it
//! holds, the eventfd read only when it fired. (The `polling` crate, built
//! for many threads sharing one poller, re-arms its timer and its notifier
//! on every wait: a `timerfd_settime`, two `epoll_ctl` and a `read` more
//! per wait, twice the system calls of a lightly loaded server.)
//!
//! Edge-triggered, an eventfd or timerfd is reported again at each write or
//! expiry, read or not (epoll(7): every wake-up of the file's wait queue
//! puts it back on the ready list).
//!
//! Elsewhere the `polling` crate serves, in edge mode.

/// One socket's readiness, as reported by a wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    pub key: usize,
    pub readable: bool,
    pub writable: bool,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use linux::{Notify, Poller};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use portable::{Notify, Poller};

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustix::event::epoll::{self, EventData, EventFlags};
    use rustix::event::{eventfd, EventfdFlags};
    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };

    use super::Ready;

    /// Keys of the poller's own files (sockets count up from zero).
    const NOTIFY: u64 = u64::MAX;
    const TIMER: u64 = u64::MAX - 1;

    /// Events taken per wait.
    const BATCH: usize = 256;

    /// See the module docs. Owned by its shard's thread.
    pub(crate) struct Poller {
        epoll: OwnedFd,
        notify: Notify,
        timer: OwnedFd,
        /// When the timerfd fires next, if it has not fired yet.
        armed: Cell<Option<Instant>>,
        events: RefCell<Vec<epoll::Event>>,
    }

    /// Interrupts its poller's wait, now or the next one; for any thread.
    #[derive(Clone)]
    pub(crate) struct Notify(Arc<OwnedFd>);

    impl Notify {
        pub(crate) fn notify(&self) -> io::Result<()> {
            rustix::io::write(&*self.0, &1u64.to_ne_bytes())?;
            Ok(())
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
            let notify = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            let timer = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
            )?;
            let edge = EventFlags::IN | EventFlags::ET;
            epoll::add(&epoll, &notify, EventData::new_u64(NOTIFY), edge)?;
            epoll::add(&epoll, &timer, EventData::new_u64(TIMER), edge)?;
            Ok(Poller {
                epoll,
                notify: Notify(Arc::new(notify)),
                timer,
                armed: Cell::new(None),
                events: RefCell::new(Vec::with_capacity(BATCH)),
            })
        }

        /// Registers a socket under `key`, edge-triggered, for reading and
        /// writing.
        pub(crate) fn add(&self, source: impl AsFd, key: usize) -> io::Result<()> {
            let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
            epoll::add(&self.epoll, source, EventData::new_u64(key as u64), flags)?;
            Ok(())
        }

        /// Unregisters a socket (before it is closed).
        pub(crate) fn delete(&self, source: impl AsFd) -> io::Result<()> {
            epoll::delete(&self.epoll, source)?;
            Ok(())
        }

        /// What other threads use to interrupt a wait.
        pub(crate) fn notifier(&self) -> Notify {
            self.notify.clone()
        }

        /// Waits for readiness, an interruption or `deadline`; at once if
        /// `deadline` has passed. Pushes the sockets found ready onto `out`.
        pub(crate) fn wait(
            &self,
            out: &mut Vec<Ready>,
            deadline: Option<Instant>,
        ) -> io::Result<()> {
            let now = Instant::now();
            let timeout = match deadline {
                Some(at) if at <= now => Some(Timespec::default()),
                Some(at) => {
                    self.arm(at, now)?;
                    None
                }
                None => None,
            };
            let mut events = self.events.borrow_mut();
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut *events),
                timeout.as_ref(),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            for ev in events.iter() {
                match ev.data.u64() {
                    NOTIFY => {
                        let mut buf = [0u8; 8];
                        let _ = rustix::io::read(&*self.notify.0, &mut buf);
                    }
                    TIMER => self.armed.set(None),
                    key => {
                        let flags = ev.flags;
                        let closed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
                        out.push(Ready {
                            key: key as usize,
                            readable: closed
                                || flags.intersects(EventFlags::IN | EventFlags::RDHUP),
                            writable: closed || flags.contains(EventFlags::OUT),
                        });
                    }
                }
            }
            Ok(())
        }

        /// Makes the timerfd fire by `at`: set only when it holds no
        /// deadline, or a later one.
        fn arm(&self, at: Instant, now: Instant) -> io::Result<()> {
            if self.armed.get().is_some_and(|armed| armed <= at) {
                // It fires first; the wait after that sets `at`.
                return Ok(());
            }
            // At least a nanosecond: zero would disarm it.
            let left = at
                .saturating_duration_since(now)
                .max(Duration::from_nanos(1));
            let value = Itimerspec {
                it_interval: Timespec::default(),
                it_value: Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                },
            };
            timerfd_settime(&self.timer, TimerfdTimerFlags::empty(), &value)?;
            self.armed.set(Some(at));
            Ok(())
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod portable {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::AsFd;
    use std::sync::Arc;
    use std::time::Instant;

    use polling::{Event, Events, PollMode};

    use super::Ready;

    /// See the module docs.
    pub(crate) struct Poller {
        inner: Arc<polling::Poller>,
        events: RefCell<Events>,
    }

    /// Interrupts its poller's wait, now or the next one; for any thread.
    #[derive(Clone)]
    pub(crate) struct Notify(Arc<polling::Poller>);

    impl Notify {
        pub(crate) fn notify(&self) -> io::Result<()> {
            self.0.notify()
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            Ok(Poller {
                inner: Arc::new(polling::Poller::new()?),
                events: RefCell::new(Events::new()),
            })
        }

        pub(crate) fn add(&self, source: impl AsFd, key: usize) -> io::Result<()> {
            // SAFETY: the caller deletes the socket before closing it.
            #[allow(unsafe_code)]
            unsafe {
                self.inner
                    .add_with_mode(&source.as_fd(), Event::all(key), PollMode::Edge)
            }
        }

        pub(crate) fn delete(&self, source: impl AsFd) -> io::Result<()> {
            self.inner.delete(source)
        }

        pub(crate) fn notifier(&self) -> Notify {
            Notify(self.inner.clone())
        }

        pub(crate) fn wait(
            &self,
            out: &mut Vec<Ready>,
            deadline: Option<Instant>,
        ) -> io::Result<()> {
            let mut events = self.events.borrow_mut();
            events.clear();
            let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            self.inner.wait(&mut events, timeout)?;
            out.extend(events.iter().map(|ev| Ready {
                key: ev.key,
                readable: ev.readable,
                writable: ev.writable,
            }));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// Waits until `deadline` or something is ready; returns what was.
    fn wait_until(poller: &Poller, deadline: Instant) -> Vec<Ready> {
        let mut out = Vec::new();
        while out.is_empty() && Instant::now() < deadline {
            poller.wait(&mut out, Some(deadline)).unwrap();
        }
        out
    }

    #[test]
    fn an_earlier_deadline_ends_the_wait_after_a_later_one_was_set() {
        let poller = Poller::new().unwrap();
        let mut out = Vec::new();
        // Sets the timer 10 s out; returns at once, as a notification is
        // waiting.
        poller.notifier().notify().unwrap();
        let start = Instant::now();
        poller
            .wait(&mut out, Some(start + Duration::from_secs(10)))
            .unwrap();
        // A nearer deadline must move the timer, not wait for the old one.
        wait_until(&poller, Instant::now() + Duration::from_millis(5));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // A deadline already past: at once.
        poller.wait(&mut out, Some(Instant::now())).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn another_thread_interrupts_a_wait() {
        let poller = Poller::new().unwrap();
        let notify = poller.notifier();
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            notify.notify().unwrap();
        });
        let mut out = Vec::new();
        poller.wait(&mut out, None).unwrap();
        t.join().unwrap();
        assert!(out.is_empty(), "an interruption is not a socket: {out:?}");
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_socket_is_reported_at_each_edge() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let poller = Poller::new().unwrap();
        poller.add(&client, 7).unwrap();
        let soon = || Instant::now() + Duration::from_secs(5);
        // Writable at once.
        let ready = wait_until(&poller, soon());
        assert!(ready.iter().any(|r| r.key == 7 && r.writable), "{ready:?}");
        // Then readable when bytes come, and again at the next bytes
        // (edge-triggered: each arrival is an edge).
        for _ in 0..2 {
            server.write_all(b"x").unwrap();
            let ready = wait_until(&poller, soon());
            assert!(ready.iter().any(|r| r.key == 7 && r.readable), "{ready:?}");
        }
        poller.delete(&client).unwrap();
    }
}
