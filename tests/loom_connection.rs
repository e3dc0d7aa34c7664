//! loom: the connection health/handle state (docs/nats-backend.md, "Connection state",
//! docs/verification.md row 11). Under any interleaving of connect attempts, shutdown and
//! event callbacks of installed, losing and shut-down clients, a healthy flag never sits on
//! a dead or replaced client. Clients are fakes: a connected flag that changes before the
//! client fires its event callback, as async-nats does.
//!
//! Run: `RUSTFLAGS="--cfg kvfold_loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
//!       cargo test --release --no-default-features --test loom_connection`
#![cfg(kvfold_loom)]

use kvfold::connstate::ConnState;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

/// A fake client: its live connection state.
#[derive(Clone)]
struct FakeClient {
    id: u8,
    connected: Arc<AtomicBool>,
}

impl FakeClient {
    fn new(id: u8) -> Self {
        Self {
            id,
            connected: Arc::new(AtomicBool::new(true)),
        }
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }
}

#[test]
fn disconnect_racing_install_never_leaves_a_healthy_flag() {
    loom::model(|| {
        let state = Arc::new(ConnState::<FakeClient>::new());
        let generation = state.next_generation();
        let client = FakeClient::new(1);
        let events = {
            let state = Arc::clone(&state);
            let client = client.clone();
            thread::spawn(move || {
                // The client loses its connection, then fires Disconnected.
                client.connected.store(false, Ordering::SeqCst);
                state.on_event(generation, false);
            })
        };
        state
            .install(generation, client, FakeClient::is_connected)
            .unwrap_or_else(|_| panic!("nothing else is installed"));
        events.join().unwrap();
        assert!(
            !state.is_healthy(),
            "the client is disconnected, the flag must say so"
        );
        assert!(state.has_handle());
    });
}

#[test]
fn late_events_after_shutdown_are_inert() {
    loom::model(|| {
        let state = Arc::new(ConnState::<FakeClient>::new());
        let generation = state.next_generation();
        let client = FakeClient::new(1);
        state
            .install(generation, client.clone(), FakeClient::is_connected)
            .unwrap_or_else(|_| panic!("nothing else is installed"));
        let events = {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                state.on_event(generation, false);
                state.on_event(generation, true); // a reconnect of the old client
            })
        };
        let old = state.shutdown();
        assert!(old.is_some());
        events.join().unwrap();
        assert!(
            !state.is_healthy(),
            "a shut-down connection is never healthy"
        );
        assert!(!state.has_handle());
    });
}

#[test]
fn concurrent_connects_install_one_client_and_losers_are_inert() {
    loom::model(|| {
        let state = Arc::new(ConnState::<FakeClient>::new());
        let attempts: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|id| {
                let state = Arc::clone(&state);
                thread::spawn(move || {
                    let generation = state.next_generation();
                    let client = FakeClient::new(id);
                    let won = state
                        .install(generation, client.clone(), FakeClient::is_connected)
                        .is_ok();
                    if !won {
                        // The losing client is dropped; its late events must not count.
                        client.connected.store(false, Ordering::SeqCst);
                        state.on_event(generation, false);
                    }
                    (won, id)
                })
            })
            .collect();
        let outcomes: Vec<(bool, u8)> = attempts.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            outcomes.iter().filter(|(won, _)| *won).count(),
            1,
            "exactly one client is installed"
        );
        let winner = outcomes.iter().find(|(won, _)| *won).map(|(_, id)| *id);
        assert_eq!(state.handle().map(|c| c.id), winner);
        assert!(state.is_healthy(), "the installed client is connected");
    });
}

#[test]
fn reconnect_after_shutdown_ignores_the_old_client() {
    loom::model(|| {
        let state = Arc::new(ConnState::<FakeClient>::new());
        let first = state.next_generation();
        let old_client = FakeClient::new(1);
        state
            .install(first, old_client, FakeClient::is_connected)
            .unwrap_or_else(|_| panic!("nothing else is installed"));
        let old_events = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.on_event(first, true))
        };
        drop(state.shutdown());
        let second = state.next_generation();
        let new_client = FakeClient::new(2);
        state
            .install(second, new_client.clone(), FakeClient::is_connected)
            .unwrap_or_else(|_| panic!("shut down: nothing is installed"));
        let new_events = {
            let state = Arc::clone(&state);
            let client = new_client.clone();
            thread::spawn(move || {
                client.connected.store(false, Ordering::SeqCst);
                state.on_event(second, false);
            })
        };
        old_events.join().unwrap();
        new_events.join().unwrap();
        assert!(
            !state.is_healthy(),
            "the new client is down; the old one's events count for nothing"
        );
        assert_eq!(state.handle().map(|c| c.id), Some(2));
    });
}

/// Mutation: an install that trusts the dial (flag = true) instead of reading the
/// client's state under the lock loses a Disconnected fired before the install.
#[test]
fn install_that_trusts_the_dial_is_caught() {
    let caught = std::panic::catch_unwind(|| {
        loom::model(|| {
            let state = Arc::new(ConnState::<FakeClient>::new());
            let generation = state.next_generation();
            let client = FakeClient::new(1);
            let events = {
                let state = Arc::clone(&state);
                let client = client.clone();
                thread::spawn(move || {
                    client.connected.store(false, Ordering::SeqCst);
                    state.on_event(generation, false);
                })
            };
            let _ = state.install(generation, client, |_| true);
            events.join().unwrap();
            assert!(!state.is_healthy(), "stale healthy flag");
        });
    });
    assert!(
        caught.is_err(),
        "loom must find the event that lands before the install"
    );
}
