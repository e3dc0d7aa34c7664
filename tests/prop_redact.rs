//! Credentials in the server URL (issue 9, defect 3; docs/nats-backend.md, "URL credentials
//! (issue 9)", docs/nats-backend.md "URL credentials"): they never appear in `Debug`, in
//! connect errors or in `tracing` output, and they still authenticate when the password
//! holds raw `/`, `,`, `@`, `:` or the URL carries only a token.
//!
//! Regression tests for the three leak shapes, live connects against real
//! `nats-server`s that require a user/password or a token, and a proptest over
//! generated single- and multi-server URLs.
#![cfg(feature = "nats")]

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::nats::{NatsServer, ServerAuth};
use kvfold::protocol::nats::{REDACTED, ServerListError, UrlCredentials, parse_server_list};
use kvfold::{Connection, KvError, NatsConnection, nats_connect};
use proptest::prelude::*;

use common::nats::client_config as config;

/// `Debug` of the config and of a connection built from it.
fn debug_texts(url: &str) -> String {
    let config = config(url);
    let conn = NatsConnection::new(config.clone());
    format!("{config:?}\n{conn:?}\n{config:#?}\n{conn:#?}")
}

fn assert_hidden(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaks into:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// Regression tests: the three leak shapes of the issue
// ---------------------------------------------------------------------------

#[test]
fn debug_hides_a_password_holding_a_raw_slash() {
    let text = debug_texts("nats://alice:s3cr/et@127.0.0.1:4222");
    assert_hidden(&text, &["s3cr", "/et", "alice"]);
    assert!(text.contains("nats://[redacted]@127.0.0.1:4222"), "{text}");
}

#[test]
fn debug_hides_a_password_holding_a_raw_comma() {
    let text = debug_texts("nats://alice:s3cr,et@127.0.0.1:4222");
    assert_hidden(&text, &["s3cr", ",et", "alice"]);
    assert!(text.contains("nats://[redacted]@127.0.0.1:4222"), "{text}");
}

#[test]
fn debug_hides_a_token_only_url() {
    let text = debug_texts("nats://T0kenS3cret@127.0.0.1:4222");
    assert_hidden(&text, &["T0ken", "S3cret"]);
    assert!(text.contains("nats://[redacted]@127.0.0.1:4222"), "{text}");
}

#[test]
fn debug_hides_raw_specials_in_every_entry_of_a_cluster_list() {
    let url = "nats://alice:p/w,x@y@127.0.0.1:4222, nats://alice:p/w,x@y@127.0.0.1:4223";
    let text = debug_texts(url);
    assert_hidden(&text, &["p/w", "x@y", "alice"]);
    assert!(
        text.contains("nats://[redacted]@127.0.0.1:4222,nats://[redacted]@127.0.0.1:4223"),
        "{text}"
    );
}

#[tokio::test]
async fn an_ambiguous_list_is_refused_with_a_typed_error_that_quotes_nothing() {
    // `abc` is a valid host: token `abc,S3cret` at h, or server abc plus token `S3cret`.
    let url = "nats://abc,S3cret@127.0.0.1:4222";
    assert_eq!(parse_server_list(url), Err(ServerListError::Ambiguous));
    assert_hidden(&debug_texts(url), &["abc", "S3cret"]);
    let conn = NatsConnection::new(config(url));
    let err = conn.connect().await.unwrap_err();
    let KvError::ConnectionFailed(text) = &err else {
        panic!("expected ConnectionFailed, got {err:?}");
    };
    assert!(text.contains("%2C"), "{text}");
    assert_hidden(&format!("{err} {err:?}"), &["abc", "S3cret"]);
    let err = nats_connect(url, None, None).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::ConnectErrorKind::Io);
    assert_hidden(&format!("{err} {err:?}"), &["abc", "S3cret"]);
}

// ---------------------------------------------------------------------------
// Live: the credentials still authenticate
// ---------------------------------------------------------------------------

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local addr").port()
}

/// Connects `url`, writes and reads back one key through a fresh bucket.
async fn round_trip(url: &str, bucket: &str) {
    let conn = NatsConnection::new(config(url));
    conn.connect()
        .await
        .unwrap_or_else(|e| panic!("connect {:?}: {e}", config(url)));
    let store = conn.store(bucket).await.expect("create the bucket");
    let writer = store.writer().expect("the NATS backend writes");
    writer.put("k", b"v").await.expect("put");
    let entry = store
        .reader()
        .get("k")
        .await
        .expect("get")
        .expect("an entry");
    assert_eq!(entry.value, b"v");
    conn.shutdown().await.unwrap();
}

async fn refused(url: &str) -> String {
    let conn = NatsConnection::new(config(url));
    let err = conn
        .connect()
        .await
        .expect_err("wrong credentials are refused");
    assert!(
        matches!(err, KvError::ConnectionFailed(_)),
        "expected ConnectionFailed, got {err:?}"
    );
    err.to_string()
}

const RAW_PASSWORD: &str = "s3/cr,et:x@y";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_with_raw_slash_comma_colon_and_at_authenticates() {
    let server = NatsServer::start_with_auth(ServerAuth::UserPassword {
        user: "alice".into(),
        password: RAW_PASSWORD.into(),
    });
    let port = server.port();
    round_trip(
        &format!("nats://alice:{RAW_PASSWORD}@127.0.0.1:{port}"),
        "raw",
    )
    .await;
    // The same password percent-encoded.
    round_trip(
        &format!("nats://alice:s3%2Fcr%2Cet%3Ax%40y@127.0.0.1:{port}"),
        "encoded",
    )
    .await;
    // A cluster-style list whose other entry is down: every entry stripped, the
    // raw ',' read as part of the password.
    let down = closed_port();
    round_trip(
        &format!(
            "nats://alice:{RAW_PASSWORD}@127.0.0.1:{down},nats://alice:{RAW_PASSWORD}@127.0.0.1:{port}"
        ),
        "list",
    )
    .await;
    // The credentials are what authenticates: a wrong password is refused.
    let text = refused(&format!("nats://alice:s3/cr,et:x@z@127.0.0.1:{port}")).await;
    assert!(text.contains("authorization"), "{text}");
    let client = nats_connect(
        &format!("nats://alice:{RAW_PASSWORD}@127.0.0.1:{port}"),
        None,
        None,
    )
    .await
    .expect("nats_connect with the raw password");
    client.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_only_url_authenticates_with_the_token() {
    let token = "T0ken/with,specials";
    let server = NatsServer::start_with_auth(ServerAuth::Token(token.into()));
    let port = server.port();
    round_trip(&format!("nats://{token}@127.0.0.1:{port}"), "token").await;
    round_trip(
        &format!("nats://T0ken%2Fwith%2Cspecials@127.0.0.1:{port}"),
        "encoded",
    )
    .await;
    let text = refused(&format!("nats://T0ken/with,other@127.0.0.1:{port}")).await;
    assert!(text.contains("authorization"), "{text}");
}

// ---------------------------------------------------------------------------
// tracing capture: a minimal subscriber that prints every event and span field
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

impl Capture {
    fn take(&self) -> String {
        std::mem::take(&mut *self.0.lock().expect("capture lock"))
    }
}

struct FieldText<'a>(&'a mut String);

impl tracing::field::Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock().expect("capture lock");
        let _ = write!(out, "span {}", attrs.metadata().name());
        attrs.record(&mut FieldText(&mut out));
        out.push('\n');
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut out = self.0.lock().expect("capture lock");
        out.push_str("record");
        values.record(&mut FieldText(&mut out));
        out.push('\n');
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().expect("capture lock");
        let _ = write!(
            out,
            "{} {}",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut FieldText(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn the_capture_sees_kvfold_warnings() {
    // The capture is live: kvfold's warning about differing credentials reaches it.
    let text = everything_printed_for("nats://a:b@127.0.0.1:1,nats://c:d@127.0.0.1:2");
    assert!(text.contains("WARN kvfold"), "{text}");
    assert!(text.contains("different credentials"), "{text}");
    // ... and so do async-nats' own events, which print the dialed addresses.
    assert!(text.contains("async_nats::connector"), "{text}");
}

/// Everything kvfold prints for `url`: `Debug` of the config and connection,
/// the `Display` and `Debug` of the errors of `NatsConnection::connect` and
/// `nats_connect` (every server in our URLs is a closed loopback port), and every
/// `tracing` event and span emitted meanwhile (async-nats' included).
fn everything_printed_for(url: &str) -> String {
    let capture = Capture::default();
    let mut out = debug_texts(url);
    let errors = tracing::subscriber::with_default(capture.clone(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let bound = Duration::from_secs(20);
            let conn = NatsConnection::new(config(url));
            let a = tokio::time::timeout(bound, conn.connect())
                .await
                .expect("connect to closed ports ends quickly");
            let b = tokio::time::timeout(bound, nats_connect(url, None, None))
                .await
                .expect("nats_connect to closed ports ends quickly");
            let a = a.expect_err("nothing listens");
            let b = b.expect_err("nothing listens");
            format!("{a}\n{a:?}\n{b}\n{b:?}\n")
        })
    });
    out.push('\n');
    out.push_str(&errors);
    out.push_str(&capture.take());
    out
}

// ---------------------------------------------------------------------------
// Proptest: no secret byte sequence in anything printed
// ---------------------------------------------------------------------------

/// One character of a secret and whether the URL may carry it raw.
fn secret_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::ranges(vec!['a'..='z', 'A'..='Z', '0'..='9'].into()),
        2 => prop::sample::select(vec!['-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ';', '=']),
        3 => prop::sample::select(vec!['/', ',', '@', ':', '?', '#']),
        1 => prop::sample::select(vec!['%', ' ', 'é', '€', '[', ']']),
    ]
}

/// A secret: arbitrary characters around a three-letter marker, so every secret
/// has bytes no public text is likely to hold.
fn secret() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(secret_char(), 0..6),
        "[JQXZ]{3}",
        prop::collection::vec(secret_char(), 0..6),
    )
        .prop_map(|(a, marker, b)| {
            a.into_iter()
                .chain(marker.chars())
                .chain(b)
                .collect::<String>()
        })
}

/// `text` for a URL: unreserved and sub-delim characters raw; `/ , @ ? #` raw
/// when `raw_specials` (and `:` too when `colon_raw`); everything else `%XX`.
fn encode(text: &str, raw_specials: bool, colon_raw: bool) -> String {
    let mut out = String::new();
    for ch in text.chars() {
        let raw = ch.is_ascii_alphanumeric()
            || "-._~!$&'()*+;=".contains(ch)
            || (raw_specials && "/,@?#".contains(ch))
            || (raw_specials && colon_raw && ch == ':');
        if raw {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Secret {
    UserPassword { user: String, password: String },
    Token(String),
}

#[derive(Clone, Debug)]
struct GenEntry {
    scheme: &'static str,
    host: &'static str,
    port_index: usize,
    secret: Option<Secret>,
    raw_specials: bool,
}

impl GenEntry {
    fn userinfo(&self) -> Option<String> {
        self.secret.as_ref().map(|secret| match secret {
            Secret::UserPassword { user, password } => format!(
                "{}:{}",
                encode(user, self.raw_specials, false),
                encode(password, self.raw_specials, true)
            ),
            Secret::Token(token) => encode(token, self.raw_specials, false),
        })
    }

    fn server(&self, ports: &[u16]) -> String {
        format!("{}{}:{}", self.scheme, self.host, ports[self.port_index])
    }

    fn url(&self, ports: &[u16]) -> String {
        match self.userinfo() {
            Some(info) => format!(
                "{}{info}@{}:{}",
                self.scheme, self.host, ports[self.port_index]
            ),
            None => self.server(ports),
        }
    }
}

fn gen_entry() -> impl Strategy<Value = GenEntry> {
    let secret = prop_oneof![
        1 => Just(None),
        3 => (secret(), secret()).prop_map(|(user, password)| Some(Secret::UserPassword { user, password })),
        2 => secret().prop_map(|t| Some(Secret::Token(t))),
    ];
    (
        prop::sample::select(vec!["nats://", "tls://", ""]),
        prop::sample::select(vec!["127.0.0.1", "localhost"]),
        0..3usize,
        secret,
        any::<bool>(),
    )
        .prop_map(
            |(scheme, host, port_index, secret, raw_specials)| GenEntry {
                scheme,
                host,
                port_index,
                secret,
                raw_specials,
            },
        )
        // Documented limit (docs/nats-backend.md): a raw "://" inside credentials
        // reads as a scheme; write the ':' as %3A.
        .prop_filter("raw :// in user info", |e| {
            e.userinfo().is_none_or(|info| !info.contains("://"))
        })
}

fn decoded(secret: &Secret) -> UrlCredentials {
    match secret {
        Secret::UserPassword { user, password } => UrlCredentials::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        Secret::Token(token) => UrlCredentials::Token(token.clone()),
    }
}

/// Every byte sequence of length 3 of `secret`, raw and as written in `url_form`.
fn windows(texts: &[String]) -> HashSet<Vec<u8>> {
    texts
        .iter()
        .flat_map(|t| {
            t.as_bytes()
                .windows(3)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn closed_ports() -> &'static [u16] {
    static PORTS: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    PORTS.get_or_init(|| {
        // Bind all three at once so they differ, then release them.
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
            .collect();
        listeners
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect()
    })
}

proptest! {
    // Each case dials closed ports 8 times: 128 cases by default, more by hand
    // with PROPTEST_CASES.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
    ))]

    /// The URL list is read as generated, or refused as ambiguous only when a raw
    /// ',' sits in some credentials; nothing printed while handling it (Debug,
    /// connect errors, tracing) holds any 3-byte sequence of any secret, raw or
    /// URL-encoded, that the same handling of credential-free URLs over the same
    /// servers does not print too.
    #[test]
    fn no_secret_reaches_debug_errors_or_tracing(
        entries in prop::collection::vec(gen_entry(), 1..4),
    ) {
        let ports = closed_ports();
        let url = entries.iter().map(|e| e.url(ports)).collect::<Vec<_>>().join(",");

        // The kernel reads the list as generated (or refuses a raw-',' ambiguity).
        // Documented ambiguities: a raw ',' in credentials, or credentials on a
        // later entry without a scheme (`h1:1,u:p@h2` may be user `h1`).
        let may_be_ambiguous = entries.iter().any(|e| e.userinfo().is_some_and(|i| i.contains(',')))
            || entries.iter().skip(1).any(|e| e.scheme.is_empty() && e.secret.is_some());
        match parse_server_list(&url) {
            Ok(list) => {
                let servers: Vec<String> = entries.iter().map(|e| e.server(ports)).collect();
                prop_assert_eq!(list.servers, servers);
                let first = entries.iter().find_map(|e| e.secret.as_ref()).map(decoded);
                prop_assert_eq!(list.credentials, first);
            }
            Err(ServerListError::Ambiguous) => prop_assert!(may_be_ambiguous, "ambiguous without a documented cause"),
            Err(other) => prop_assert!(false, "refused: {other}"),
        }

        let secrets: Vec<String> = entries
            .iter()
            .flat_map(|e| {
                let mut texts = Vec::new();
                match &e.secret {
                    Some(Secret::UserPassword { user, password }) => {
                        texts.push(user.clone());
                        texts.push(password.clone());
                    }
                    Some(Secret::Token(token)) => texts.push(token.clone()),
                    None => {}
                }
                texts.extend(e.userinfo());
                texts
            })
            .collect();
        let printed = everything_printed_for(&url);

        // Public text: the same handling of URLs over the same servers whose
        // credentials are absent, fixed and different, or ambiguous.
        let bare: Vec<String> = entries.iter().map(|e| e.server(ports)).collect();
        let fixed: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{}u{i}:p@{}:{}", e.scheme, e.host, ports[e.port_index]))
            .collect();
        let mut public = everything_printed_for(&bare.join(","));
        public.push_str(&everything_printed_for(&fixed.join(",")));
        public.push_str(&everything_printed_for(&format!("nats://abc,def@{}", &bare[0].rsplit("//").next().unwrap_or(&bare[0]))));
        public.push_str(REDACTED);

        for window in windows(&secrets) {
            let leaked = contains(printed.as_bytes(), &window) && !contains(public.as_bytes(), &window);
            prop_assert!(
                !leaked,
                "secret bytes {:?} printed for {:?}:\n{}",
                String::from_utf8_lossy(&window),
                url,
                printed
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
    ))]

    /// The kernel reads any text without panicking, and a list it reads once is
    /// rendered from that reading: every server it dials appears in the redacted text.
    #[test]
    fn the_server_list_kernel_never_panics(
        url in prop_oneof![".{0,64}", "[a-c0-9:/,@ .\\[\\]%]{0,40}"],
    ) {
        let redacted = kvfold::protocol::nats::redact_server_list(&url);
        if let Ok(list) = parse_server_list(&url) {
            for server in &list.servers {
                prop_assert!(redacted.contains(server.as_str()), "{} not in {}", server, redacted);
            }
        }
    }
}
