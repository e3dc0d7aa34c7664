//! `watch_applied` executor tests of docs/watch-applied.md, "Executor tests" on a scripted watcher: the
//! tracing span and its fields, the notice events, and `FoldProgress`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvfold::{FoldProgress, KvError, KvUpdate, WatchCursor, WatchScope, watch_applied_owned};
use tokio::sync::{mpsc, watch};

mod common;

use common::fold::{HOUR, Probe, Revs, accept_all, append_log, cfg, export, keys, start};
use common::scripted::Scripted;
use common::store::TestStore;
use common::updates::put;
use common::wait::wait_for;

// ---------------------------------------------------------------------------
// Item 11: Span fields, notice events, FoldProgress.
// ---------------------------------------------------------------------------

mod capture {
    use super::*;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Debug, Clone, Default)]
    pub struct SpanRec {
        pub name: String,
        pub field_names: Vec<String>,
        pub values: BTreeMap<String, String>,
    }

    #[derive(Debug, Clone)]
    pub struct EventRec {
        pub target: String,
        pub level: Level,
        pub fields: BTreeMap<String, String>,
        pub span: Option<String>,
    }

    impl EventRec {
        pub fn message(&self) -> &str {
            self.fields.get("message").map_or("", String::as_str)
        }

        pub fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }
    }

    #[derive(Default)]
    pub struct Captured {
        pub spans: Vec<SpanRec>,
        pub events: Vec<EventRec>,
    }

    /// A minimal collector: every span and event, with its fields as text.
    #[derive(Clone, Default)]
    pub struct Collector {
        pub captured: Arc<Mutex<Captured>>,
    }

    thread_local! {
        static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl Subscriber for Collector {
        fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let mut rec = SpanRec {
                name: attrs.metadata().name().to_string(),
                field_names: attrs
                    .metadata()
                    .fields()
                    .iter()
                    .map(|f| f.name().to_string())
                    .collect(),
                values: BTreeMap::new(),
            };
            attrs.record(&mut Fields(&mut rec.values));
            let mut captured = self.captured.lock().unwrap();
            captured.spans.push(rec);
            Id::from_u64(captured.spans.len() as u64)
        }

        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut captured = self.captured.lock().unwrap();
            let index = usize::try_from(span.into_u64()).unwrap() - 1;
            values.record(&mut Fields(&mut captured.spans[index].values));
        }

        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let mut captured = self.captured.lock().unwrap();
            let span = ENTERED.with(|e| e.borrow().last().copied()).map(|id| {
                captured.spans[usize::try_from(id).unwrap() - 1]
                    .name
                    .clone()
            });
            captured.events.push(EventRec {
                target: event.metadata().target().to_string(),
                level: *event.metadata().level(),
                fields,
                span,
            });
        }

        fn enter(&self, span: &Id) {
            ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
        }

        fn exit(&self, span: &Id) {
            ENTERED.with(|e| {
                let mut entered = e.borrow_mut();
                if let Some(at) = entered.iter().rposition(|&id| id == span.into_u64()) {
                    entered.remove(at);
                }
            });
        }
    }
}

#[tokio::test]
async fn span_fields_and_notice_events_are_emitted() {
    use tracing::Level;
    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);

    let (watcher, feed) = Scripted::new();
    // Store at 2, resume at 1: a ResumeMismatch notice.
    let store = TestStore::at(2);
    store.ctl.lock().unwrap().fail_next = 1;
    let (export_tx, exports) = mpsc::channel(1);
    let progress = FoldProgress::new();
    let seen: Revs = Arc::default();
    let (seen_in, progress_in) = (Arc::clone(&seen), progress.clone());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let run = tokio::spawn(watch_applied_owned(
        watcher.clone(),
        WatchScope::Prefixes(vec!["a.".into(), "b.".into()]),
        Some(WatchCursor::from_u64(1)),
        None,
        Some(store),
        Some(exports),
        cfg(HOUR, 1),
        |u: &KvUpdate| Some(u.key().to_string()),
        |_b: Vec<String>| {},
        progress.track(move |c: WatchCursor| {
            // FoldProgress records the cursor before calling the wrapped callback.
            assert_eq!(progress_in.applied_revision(), Some(c.rank()));
            seen_in.lock().unwrap().push(c.rank());
        }),
        shutdown,
    ));
    feed.send(put("a.x", 3)); // the commit fails: re-queued
    wait_for("applied 3", || seen.lock().unwrap().last() == Some(&3)).await;
    feed.send(put("b.y", 4)); // the cumulative commit succeeds
    wait_for("applied 4", || seen.lock().unwrap().last() == Some(&4)).await;
    let refused = export(
        &export_tx,
        &std::env::temp_dir().join("kvfold-test-refused"),
    )
    .await;
    assert!(refused.is_err());
    shutdown_tx.send(true).unwrap();
    let end = run.await.unwrap();
    assert_eq!(end.result, Ok(WatchCursor::from_u64(4)));
    assert_eq!(*seen.lock().unwrap(), vec![3, 4]);
    assert_eq!(progress.applied_revision(), Some(4));
    assert_eq!(
        watcher.calls(),
        vec![r#"prefixes ["a.", "b."] from 1"#.to_string()]
    );

    let captured = captured.lock().unwrap();
    let spans: Vec<&capture::SpanRec> = captured
        .spans
        .iter()
        .filter(|s| s.name == "kvfold.watch")
        .collect();
    assert_eq!(spans.len(), 1, "one span per run");
    let span = spans[0];
    assert_eq!(
        span.field_names,
        keys(&[
            "bucket",
            "scope",
            "resume",
            "store",
            "repair",
            "applied",
            "committed"
        ])
    );
    let value = |name: &str| span.values.get(name).map(String::as_str);
    assert_eq!(value("bucket"), Some("scripted"));
    assert_eq!(value("scope"), Some(r#"["a.", "b."]"#));
    assert_eq!(value("resume"), Some("1"));
    assert_eq!(value("store"), Some("true"));
    assert_eq!(value("repair"), Some("None"));
    assert_eq!(value("applied"), Some("4"));
    assert_eq!(value("committed"), Some("4"));

    let fold_events: Vec<&capture::EventRec> = captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::fold")
        .collect();
    for e in &fold_events {
        assert_eq!(
            e.span.as_deref(),
            Some("kvfold.watch"),
            "emitted inside the span: {e:?}"
        );
    }
    let find = |message: &str| {
        fold_events
            .iter()
            .find(|e| e.message() == message)
            .unwrap_or_else(|| panic!("no {message:?} event in {fold_events:#?}"))
    };
    let mismatch = find("resume cursor differs from the store's");
    assert_eq!(mismatch.level, Level::WARN);
    assert_eq!(
        (mismatch.field("resume"), mismatch.field("store")),
        (Some("1"), Some("2"))
    );

    let failed = find("store apply failed; batch re-queued");
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.field("streak"), Some("1"));
    assert_eq!(
        failed.field("error"),
        Some("snapshot backend error: injected failure")
    );

    let flushed: Vec<_> = fold_events
        .iter()
        .filter(|e| e.message() == "flushed")
        .collect();
    assert_eq!(flushed.len(), 2, "{flushed:#?}");
    // The second flush carries the re-queued update too.
    for (e, (raw, rank)) in flushed.iter().zip([("1", "3"), ("2", "4")]) {
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(
            (e.field("parsed"), e.field("raw"), e.field("cursor")),
            (Some("1"), Some(raw), Some(rank))
        );
    }

    let committed = find("committed");
    assert_eq!(committed.level, Level::DEBUG);
    assert_eq!(
        (committed.field("cursor"), committed.field("raw")),
        (Some("4"), Some("2"))
    );

    // The export event's level and error/cursor fields: see
    // exports_are_logged_with_their_outcome.
    let served: Vec<_> = fold_events
        .iter()
        .filter(|e| e.field("ok").is_some())
        .collect();
    assert_eq!(served.len(), 1, "{served:#?}");
    assert_eq!(served[0].field("ok"), Some("false"));
    assert!(
        served[0]
            .field("dest")
            .is_some_and(|d| d.ends_with("kvfold-test-refused"))
    );

    let finished = find("watch finished");
    assert_eq!(finished.level, Level::INFO);
    assert_eq!(finished.field("cursor"), Some("4"));
}

/// docs/watch-applied.md, "Notices": `ExportServed` is INFO with the artifact's cursor when the
/// export succeeded and WARN with the error when it failed; the executor adds
/// `dest` and `cursor`/`error` from its export slot.
#[tokio::test]
async fn exports_are_logged_with_their_outcome() {
    use tracing::Level;
    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);

    let dir = tempfile::tempdir().unwrap();
    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    let (export_tx, exports) = mpsc::channel(1);
    let (run, shutdown) = start(
        watcher,
        WatchScope::All,
        None,
        Some(append_log(dir.path(), "fold.snap")),
        Some(exports),
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    feed.send(put("k1", 1));
    wait_for("parsed", || probe.parses() == 1).await;
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("someone-elses-file"), b"x").unwrap();
    let refused = export(&export_tx, &occupied).await.unwrap_err().to_string();
    let dest = dir.path().join("artifact");
    assert_eq!(export(&export_tx, &dest).await.unwrap().cursor.rank(), 1);
    shutdown.send(true).unwrap();
    assert_eq!(run.await.unwrap().result, Ok(WatchCursor::from_u64(1)));

    let captured = captured.lock().unwrap();
    let served: Vec<&capture::EventRec> = captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::fold" && e.field("ok").is_some())
        .collect();
    assert_eq!(served.len(), 2, "{served:#?}");
    let (failed, ok) = (served[0], served[1]);
    assert_eq!(failed.field("ok"), Some("false"));
    assert_eq!(
        failed.field("dest"),
        Some(occupied.display().to_string().as_str())
    );
    assert_eq!(ok.field("ok"), Some("true"));
    assert_eq!(ok.field("dest"), Some(dest.display().to_string().as_str()));
    assert_eq!(ok.level, Level::INFO);
    // The fields the executor takes from its export slot.
    assert_eq!(
        (failed.level, failed.field("error"), ok.field("cursor")),
        (Level::WARN, Some(refused.as_str()), Some("1")),
        "failed export event: {failed:?}; served export event: {ok:?}"
    );
}

#[tokio::test]
async fn an_expired_cursor_is_logged_by_the_watch_task_inside_the_span() {
    use tracing::Level;
    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);

    let (watcher, feed) = Scripted::new();
    let probe = Probe::new();
    feed.end(Err(KvError::CursorExpired));
    let (run, shutdown) = start(
        watcher.clone(),
        WatchScope::All,
        Some(WatchCursor::from_u64(4)),
        None::<TestStore>,
        None,
        cfg(HOUR, 100),
        &probe,
        accept_all,
    );
    // ExpiryRepair::None: the expired resume falls back to a full watch.
    wait_for("the full watch", || watcher.calls().len() == 2).await;
    assert_eq!(watcher.calls(), keys(&["all from 4", "all"]));
    shutdown.send(true).unwrap();
    assert_eq!(run.await.unwrap().result, Ok(WatchCursor::from_u64(4)));

    let captured = captured.lock().unwrap();
    let expired: Vec<&capture::EventRec> = captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::repair")
        .collect();
    // The repair machine's notices: the expiry, then the re-list without a repair.
    assert_eq!(expired.len(), 2, "{expired:#?}");
    assert!(expired.iter().all(|e| e.level == Level::WARN));
    assert_eq!(expired[0].field("cursor"), Some("4"));
    assert!(
        expired
            .iter()
            .all(|e| e.span.as_deref() == Some("kvfold.watch")),
        "{expired:#?}"
    );
}

/// The `kvfold::repair` events of a run, as (level, message, cursor field).
fn repair_events(captured: &capture::Captured) -> Vec<(tracing::Level, String, Option<String>)> {
    captured
        .events
        .iter()
        .filter(|e| e.target == "kvfold::repair")
        .map(|e| {
            (
                e.level,
                e.message().to_string(),
                e.field("cursor").map(str::to_string),
            )
        })
        .collect()
}

/// A relist repair on the embedded backend logs, inside the fold's span, the expiry
/// (with the cursor) and the plan as warnings, in that order, and nothing at error level.
#[tokio::test]
async fn a_relist_repair_logs_the_expiry_and_the_plan() {
    use common::repair::{fold_and_leave, fold_until, memory_bucket, open_store};
    use kvfold::{ExpiryRepair, MemoryConnection};
    use tracing::Level;

    let conn = MemoryConnection::new();
    let bucket = memory_bucket(&conn, "traced-relist", false).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    w.delete("a").await.unwrap(); // 3
    w.put("c", b"1").await.unwrap(); // 4
    conn.faults().evict_below("traced-relist", 4).unwrap();

    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);
    let (end, _) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Relist(bucket.reader()),
        open_store(&path),
        4,
        None,
    )
    .await;
    assert_eq!(end.result.as_ref().map(WatchCursor::rank), Ok(4));

    let captured = captured.lock().unwrap();
    let events = repair_events(&captured);
    let expired = events
        .iter()
        .position(|(level, message, cursor)| {
            *level == Level::WARN
                && message == "watch cursor expired"
                && cursor.as_deref() == Some("2")
        })
        .unwrap_or_else(|| panic!("no expiry warning with cursor 2: {events:#?}"));
    let planned = events
        .iter()
        .position(|(level, message, _)| {
            *level == Level::WARN && message.starts_with("repairing the expired cursor by a relist")
        })
        .unwrap_or_else(|| panic!("no relist plan warning: {events:#?}"));
    assert!(
        expired < planned,
        "the expiry is logged before the plan: {events:#?}"
    );
    assert!(
        events.iter().all(|(level, ..)| *level != Level::ERROR),
        "{events:#?}"
    );
    assert!(
        captured
            .events
            .iter()
            .filter(|e| e.target == "kvfold::repair")
            .all(|e| e.span.as_deref() == Some("kvfold.watch")),
        "every repair event is inside the fold's span"
    );
}

/// A relist on a bucket that evicted current values is refused: one error-level
/// `kvfold::repair` event names why, after the expiry warning.
#[tokio::test]
async fn a_refused_relist_logs_one_error_naming_the_eviction() {
    use common::repair::{fold_and_leave, fold_until, memory_bucket, open_store};
    use kvfold::{ExpiryRepair, MemoryConnection};
    use tracing::Level;

    let conn = MemoryConnection::new();
    let bucket = memory_bucket(&conn, "traced-refuse", true).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");
    let cursor = fold_and_leave(&bucket, &path, 2).await;
    w.put("c", b"1").await.unwrap(); // 3
    w.put("d", b"1").await.unwrap(); // 4
    conn.faults().evict_below("traced-refuse", 4).unwrap();

    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);
    let (end, _) = fold_until(
        &bucket,
        Some(cursor),
        ExpiryRepair::Relist(bucket.reader()),
        open_store(&path),
        u64::MAX,
        None,
    )
    .await;
    assert!(
        matches!(end.result, Err(KvError::WatchError(_))),
        "{:?}",
        end.result
    );

    let captured = captured.lock().unwrap();
    let events = repair_events(&captured);
    let errors: Vec<_> = events
        .iter()
        .filter(|(level, ..)| *level == Level::ERROR)
        .collect();
    assert_eq!(errors.len(), 1, "{events:#?}");
    assert!(
        errors[0].1.starts_with("relist refused") && errors[0].1.contains("evicts"),
        "{errors:#?}"
    );
    assert!(
        events
            .iter()
            .any(|(level, message, _)| *level == Level::WARN && message == "watch cursor expired"),
        "{events:#?}"
    );
}

/// Retention polling on the embedded backend under tokio's paused clock: a relist-armed
/// fold on a bucket whose limits can evict, but that has not evicted yet, does not set
/// the eviction memo at start; after the bucket evicts, the next poll — 60 s after the
/// watch started, not earlier — sees it, logs it and commits the memo into the store.
#[tokio::test(start_paused = true)]
async fn the_retention_poll_sees_eviction_sixty_seconds_after_the_watch_started() {
    use common::repair::{batch, memory_bucket, open_store};
    use kvfold::{ExpiryRepair, MemoryConnection, SnapshotStore};
    use std::time::Duration;
    use tracing::Level;

    let conn = MemoryConnection::new();
    let bucket = memory_bucket(&conn, "polled", true).await;
    let w = bucket.writer().unwrap();
    w.put("a", b"1").await.unwrap(); // 1
    w.put("b", b"1").await.unwrap(); // 2
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fold.snap");

    let collector = capture::Collector::default();
    let captured = Arc::clone(&collector.captured);
    let _default = tracing::subscriber::set_default(collector);
    let evictions_seen = || {
        captured
            .lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| {
                e.target == "kvfold::repair"
                    && e.level == Level::INFO
                    && e.message().starts_with("the bucket evicted current values")
            })
            .count()
    };

    let (stop, shutdown) = watch::channel(false);
    let (reached_tx, mut reached) = mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    let run = tokio::spawn(watch_applied_owned(
        bucket.watcher().unwrap(),
        WatchScope::All,
        None,
        ExpiryRepair::Relist(bucket.reader()),
        Some(open_store(&path)),
        None,
        batch(),
        |u: &KvUpdate| Some(u.key().to_string()),
        |_: Vec<String>| {},
        move |c: WatchCursor| {
            let _ = reached_tx.send(c.rank());
        },
        shutdown,
    ));
    while reached.recv().await.expect("the fold runs") < 2 {}
    assert_eq!(evictions_seen(), 0, "nothing evicted at start: no memo");

    // The bucket evicts now; the poll that sees it is due 60 s after the watch started.
    w.put("c", b"1").await.unwrap(); // 3
    conn.faults().evict_below("polled", 3).unwrap();
    while started.elapsed() < Duration::from_secs(59) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            evictions_seen(),
            0,
            "no poll before 60 s (at {:?})",
            started.elapsed()
        );
    }
    while started.elapsed() < Duration::from_secs(62) && evictions_seen() == 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(evictions_seen(), 1, "the 60 s poll saw the eviction");

    stop.send(true).unwrap();
    let end = run.await.unwrap();
    assert!(end.result.is_ok(), "{:?}", end.result);
    let store = end.store.expect("store back");
    assert!(
        store.cursor().seen_evicting(),
        "the memo is committed into the store's cursor: {:?}",
        store.cursor()
    );
}
