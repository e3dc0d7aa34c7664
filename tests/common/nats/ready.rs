//! Free ports and the readiness probe of a started server.

use super::*;

/// `n` distinct free loopback ports, found by binding `127.0.0.1:0` (all at
/// once, so they differ) and releasing them (docs/nats-backend.md, "Test harness", step 1).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("local_addr of a bound listener")
                .port()
        })
        .collect()
}

/// What a server said about itself in its INFO line.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub server_name: String,
    pub version: String,
    /// The cluster name, for clustered servers.
    pub cluster: Option<String>,
    /// The whole INFO object.
    pub raw: Value,
}

impl ServerInfo {
    fn from_info(raw: Value) -> ServerInfo {
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        ServerInfo {
            server_name: text("server_name").unwrap_or_default(),
            version: text("version").unwrap_or_default(),
            cluster: text("cluster"),
            raw,
        }
    }
}

/// Why a server did not become ready.
#[derive(Debug)]
pub enum ReadyError {
    /// A NATS server answered on the port, but not the one we started: the
    /// port was taken by another process. Never test against it.
    NameMismatch { expected: String, found: String },
    /// A server with our name but the wrong cluster answered.
    ClusterMismatch {
        expected: String,
        found: Option<String>,
    },
    /// Something that is not a NATS server answered on the port.
    Foreign(String),
    /// Our process exited before it was ready (status and log tail).
    Exited(String),
    /// Not ready in time; the last observation.
    Timeout(String),
}

impl fmt::Display for ReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyError::NameMismatch { expected, found } => write!(
                f,
                "the server on the port is named {found:?}, not {expected:?}: another process owns the port"
            ),
            ReadyError::ClusterMismatch { expected, found } => write!(
                f,
                "the server on the port is in cluster {found:?}, not {expected:?}"
            ),
            ReadyError::Foreign(what) => write!(f, "not a NATS server on the port: {what}"),
            ReadyError::Exited(what) => write!(f, "nats-server exited: {what}"),
            ReadyError::Timeout(last) => write!(f, "not ready in time; last: {last}"),
        }
    }
}

enum Probe {
    /// Keep polling.
    NotYet(String),
    /// Stop: the port is not ours.
    Fatal(ReadyError),
}

/// Polls `127.0.0.1:port` every 100 ms for at most `within` until a TCP
/// connect succeeds, the INFO's `server_name` is `expected_name` and
/// `$JS.API.INFO` answers (docs/nats-backend.md, "Test harness", step 4). A different name is returned at once
/// as [`ReadyError::NameMismatch`].
pub fn wait_ready(
    port: u16,
    expected_name: &str,
    within: Duration,
) -> Result<ServerInfo, ReadyError> {
    wait_ready_inner(port, expected_name, None, None, within, &mut || None)
}

pub(super) fn wait_ready_inner(
    port: u16,
    expected_name: &str,
    expected_cluster: Option<&str>,
    auth: Option<&ServerAuth>,
    within: Duration,
    exited: &mut dyn FnMut() -> Option<String>,
) -> Result<ServerInfo, ReadyError> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = exited() {
            return Err(ReadyError::Exited(status));
        }
        let why = match probe(port, expected_name, expected_cluster, auth) {
            Ok(info) => return Ok(info),
            Err(Probe::Fatal(err)) => return Err(err),
            Err(Probe::NotYet(why)) => why,
        };
        if Instant::now() >= deadline {
            return Err(ReadyError::Timeout(why));
        }
        thread::sleep(POLL);
    }
}

fn probe(
    port: u16,
    expected_name: &str,
    expected_cluster: Option<&str>,
    auth: Option<&ServerAuth>,
) -> Result<ServerInfo, Probe> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = match RawConn::open_as(addr, PROBE_TIMEOUT, auth) {
        Ok(conn) => conn,
        Err(RawError::Io(why)) => return Err(Probe::NotYet(why)),
        Err(RawError::Protocol(why)) => return Err(Probe::Fatal(ReadyError::Foreign(why))),
    };
    let info = ServerInfo::from_info(conn.info.clone());
    if info.server_name != expected_name {
        return Err(Probe::Fatal(ReadyError::NameMismatch {
            expected: expected_name.to_owned(),
            found: info.server_name,
        }));
    }
    if let Some(expected) = expected_cluster
        && info.cluster.as_deref() != Some(expected)
    {
        return Err(Probe::Fatal(ReadyError::ClusterMismatch {
            expected: expected.to_owned(),
            found: info.cluster,
        }));
    }
    match conn.js_request("$JS.API.INFO", &Value::Null, PROBE_TIMEOUT) {
        Ok(answer) if answer.get("api").is_some() => Ok(info),
        Ok(answer) => Err(Probe::NotYet(format!("$JS.API.INFO answered {answer}"))),
        Err(err) => Err(Probe::NotYet(format!("$JS.API.INFO: {err}"))),
    }
}
