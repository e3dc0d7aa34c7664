//! One `nats-server` process: start, restart, stop, kill on drop.

use super::*;

#[derive(Clone, Debug)]
pub(super) struct ClusterRole {
    pub(super) cluster_name: String,
    pub(super) cluster_port: u16,
    pub(super) route_ports: Vec<u16>,
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
    pub(super) name: String,
    pub(super) port: u16,
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

    pub(super) fn unstarted(name: String, port: u16, cluster: Option<ClusterRole>) -> NatsServer {
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

    pub(super) fn spawn(&mut self) {
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

    pub(super) fn await_ready(&mut self, within: Duration) -> Result<(), ReadyError> {
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
    pub(super) fn finish_restart(&mut self) {
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
