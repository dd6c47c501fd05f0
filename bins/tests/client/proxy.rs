//! A TCP proxy the test controls, between one client and the server: it
//! can refuse connections (as a server that is down does), cut the ones
//! it carries, and lose what the server sends while passing on what the
//! client sends (a line stored whose echo never comes back).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy's threads share with the test.
struct Shared {
    upstream: SocketAddr,
    /// The test wants the listener open.
    open: AtomicBool,
    /// The accept thread has the listener open.
    listening: AtomicBool,
    /// Bytes from the server are dropped.
    lose_downstream: AtomicBool,
    /// Both sockets of every connection carried, to cut them.
    sockets: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// The proxy; dropping it stops it and cuts everything.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy to `upstream` on a free loopback port, accepting.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            open: AtomicBool::new(true),
            listening: AtomicBool::new(true),
            lose_downstream: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        thread::spawn(move || accept_loop(addr, Some(listener), &s));
        Proxy { addr, shared }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener (new connections are refused) and cuts every
    /// connection.
    pub fn refuse(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        self.wait_listening(false);
        self.cut();
    }

    /// Listens again on the same port.
    pub fn accept(&self) {
        self.shared.open.store(true, Ordering::SeqCst);
        self.wait_listening(true);
    }

    /// Cuts every connection carried (both ends see the socket close).
    pub fn cut(&self) {
        for s in lock(&self.shared.sockets).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Drops (`true`) or passes on what the server sends.
    pub fn lose_downstream(&self, lose: bool) {
        self.shared.lose_downstream.store(lose, Ordering::SeqCst);
    }

    fn wait_listening(&self, listening: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.shared.listening.load(Ordering::SeqCst) != listening {
            assert!(
                Instant::now() < deadline,
                "the proxy's listener did not change"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(addr: SocketAddr, mut listener: Option<TcpListener>, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        if !shared.open.load(Ordering::SeqCst) {
            // Closed: connections to the port are refused.
            listener = None;
            shared.listening.store(false, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("nonblocking listener");
                    listener = Some(l);
                    shared.listening.store(true, Ordering::SeqCst);
                    continue;
                }
                Err(_) => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        match l.accept() {
            Ok((client, _)) => carry(client, shared),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Connects `client` to the server and pumps both ways.
fn carry(client: TcpStream, shared: &Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(shared.upstream) else {
        return; // The client sees the connection close.
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    lock(&shared.sockets).extend([c3, s3]);
    let up = Arc::clone(shared);
    thread::spawn(move || pump(client, server, &up, false));
    let down = Arc::clone(shared);
    thread::spawn(move || pump(s2, c2, &down, true));
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, downstream: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if downstream && shared.lose_downstream.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
