//! A minimal synchronous NATS client for the harness's probes and its
//! synchronous JetStream requests.

use super::*;

pub(super) enum RawError {
    /// Connect/read/write failure or timeout: maybe not up yet.
    Io(String),
    /// The peer does not speak NATS.
    Protocol(String),
}

/// One short-lived client connection speaking just enough of the NATS
/// protocol (INFO, CONNECT, SUB, PUB, MSG/HMSG, PING/PONG) for a request.
pub(super) struct RawConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub(super) info: Value,
    next_sid: u64,
}

impl RawConn {
    fn open(addr: SocketAddr, within: Duration) -> Result<RawConn, RawError> {
        RawConn::open_as(addr, within, None)
    }

    /// Like `open`, authenticating with `auth` in CONNECT.
    pub(super) fn open_as(
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

    /// Sets the socket's read timeout to what is left until `deadline`; an
    /// error once it has passed.
    fn arm_read_timeout(&mut self, deadline: Instant) -> Result<(), String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("timed out".into());
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(remaining))
            .map_err(|e| e.to_string())
    }

    fn read_line(&mut self, deadline: Instant) -> Result<String, String> {
        self.arm_read_timeout(deadline)?;
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
        self.arm_read_timeout(deadline)?;
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

    pub(super) fn js_request(
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

pub(super) fn json_payload(body: &Value) -> Vec<u8> {
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

pub(super) fn interpret_js_reply(status: Option<u16>, payload: &[u8]) -> Result<Value, JsError> {
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
