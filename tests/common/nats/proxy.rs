//! A loopback TCP relay the test can cut and heal.

use super::*;

/// A loopback TCP relay the test controls (docs/nats-backend.md, "Test harness", "Proxy"), on std threads: it
/// does not depend on any tokio runtime. Dropping it stops it and closes
/// every relayed connection.
///
/// Behind a proxy, a client must not learn other routes to the server: a
/// single server advertises none, but cluster nodes list their peers in
/// INFO's `connect_urls`, so a client proxied to a cluster node needs
/// `ignore_discovered_servers` or a cut would not isolate it.
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct ProxyShared {
    /// Guarded by `relays`' lock for the cut/accept race.
    cut: AtomicBool,
    stop: AtomicBool,
    relays: Mutex<Vec<Relay>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
}

struct Relay {
    id: u64,
    client: TcpStream,
    upstream: TcpStream,
}

impl Relay {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

impl TcpProxy {
    /// Listens on a free loopback port and relays each connection to
    /// `upstream`.
    pub fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy to 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy local_addr");
        let shared = Arc::new(ProxyShared {
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            relays: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("kvfold-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, upstream, for_thread))
            .expect("spawn the proxy accept thread");
        TcpProxy {
            addr,
            upstream,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://<addr>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Closes every relayed connection and refuses new ones until
    /// [`heal`](Self::heal): a new connection is accepted and closed at once,
    /// before any byte is relayed.
    pub fn cut(&self) {
        let relays = {
            let mut relays = lock(&self.shared.relays);
            self.shared.cut.store(true, Ordering::SeqCst);
            std::mem::take(&mut *relays)
        };
        for relay in &relays {
            relay.close();
        }
    }

    /// Relays new connections again.
    pub fn heal(&self) {
        let _relays = lock(&self.shared.relays);
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections being relayed now.
    pub fn live_connections(&self) -> usize {
        lock(&self.shared.relays).len()
    }

    /// Connections relayed since start.
    pub fn relayed_total(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let relays = std::mem::take(&mut *lock(&self.shared.relays));
        for relay in &relays {
            relay.close();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<ProxyShared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(up) = TcpStream::connect_timeout(&upstream, PROBE_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let clones = (|| {
            Some((
                client.try_clone().ok()?,
                up.try_clone().ok()?,
                client.try_clone().ok()?,
                up.try_clone().ok()?,
            ))
        })();
        let Some((client_reg, up_reg, client_out, up_in)) = clones else {
            let _ = client.shutdown(Shutdown::Both);
            let _ = up.shutdown(Shutdown::Both);
            continue;
        };
        {
            let mut relays = lock(&shared.relays);
            let relay = Relay {
                id,
                client: client_reg,
                upstream: up_reg,
            };
            if shared.cut.load(Ordering::SeqCst) {
                relay.close();
                continue;
            }
            relays.push(relay);
        }
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let to_upstream = Arc::clone(&shared);
        let to_client = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("kvfold-proxy-up-{id}"))
            .spawn(move || pump(client, up, id, &to_upstream))
            .and_then(|_| {
                thread::Builder::new()
                    .name(format!("kvfold-proxy-down-{id}"))
                    .spawn(move || pump(up_in, client_out, id, &to_client))
            });
        if spawned.is_err() {
            for relay in lock(&shared.relays).iter().filter(|r| r.id == id) {
                relay.close();
            }
        }
    }
}

/// Copies `from` to `to` until either side ends, then closes both and
/// forgets the relay.
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, shared: &ProxyShared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    lock(&shared.relays).retain(|relay| relay.id != id);
}
