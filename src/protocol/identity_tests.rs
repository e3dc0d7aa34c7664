//! Exact tests of the bucket-identity kernel: every start and expiry decision, and
//! the recorded-identity byte format.

use super::*;
use crate::kv::{VersionToken, WatchCursor};

const CREATED: u64 = 1_767_225_600_000;

fn id(name: &str, created: u64) -> BucketIdentity {
    BucketIdentity::new(name, created)
}

fn facts(name: &str, created: u64, last: u64) -> BucketFacts {
    BucketFacts {
        identity: id(name, created),
        last_revision: last,
    }
}

fn at(rev: u64) -> WatchCursor {
    WatchCursor::from_u64(rev)
}

fn written(rev: u64, ms: u64) -> WatchCursor {
    WatchCursor::from_version(VersionToken::from_u64(rev).written_at(ms))
}

/// A start with a store holding a fold at `store_cursor` that recorded `recorded`.
fn start<'a>(
    bucket: Option<&'a BucketFacts>,
    recorded: Option<&'a BucketIdentity>,
    store_cursor: &'a WatchCursor,
    resume: Option<&'a WatchCursor>,
) -> StartFacts<'a> {
    StartFacts {
        bucket,
        has_store: true,
        store_holds_data: !store_cursor.is_none(),
        store_cursor,
        recorded,
        resume,
        repair_armed: false,
    }
}

fn refuse(verdict: StartVerdict) -> IdentityRefusal {
    match verdict {
        StartVerdict::Refuse(refusal) => refusal,
        other @ StartVerdict::Proceed { .. } => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_store_folded_from_another_bucket_is_refused() {
    let big = facts("big", CREATED, 100);
    let cfg = id("cfg", CREATED - 5);
    let cursor = at(9);
    let verdict = judge_start(&start(Some(&big), Some(&cfg), &cursor, Some(&cursor)));
    assert_eq!(
        verdict,
        StartVerdict::Refuse(IdentityRefusal::OtherBucket {
            recorded: cfg,
            actual: big.identity,
        })
    );
}

#[test]
fn another_bucket_is_refused_without_a_resume_cursor_and_even_with_a_repair_armed() {
    let other = facts("other", CREATED, 3);
    let cfg = id("cfg", CREATED);
    let cursor = at(9);
    let mut f = start(Some(&other), Some(&cfg), &cursor, None);
    f.repair_armed = true;
    assert!(matches!(
        refuse(judge_start(&f)),
        IdentityRefusal::OtherBucket { .. }
    ));
}

#[test]
fn a_recreated_bucket_is_refused_unless_a_repair_is_armed() {
    let now = facts("cfg", CREATED + 1, 50);
    let before = id("cfg", CREATED);
    let cursor = at(9);
    let f = start(Some(&now), Some(&before), &cursor, Some(&cursor));
    assert_eq!(
        judge_start(&f),
        StartVerdict::Refuse(IdentityRefusal::Recreated {
            recorded: before.clone(),
            actual: now.identity.clone(),
        })
    );
    let armed = StartFacts {
        repair_armed: true,
        ..f
    };
    assert_eq!(
        judge_start(&armed),
        StartVerdict::Proceed {
            record: None,
            unverified: false
        }
    );
}

#[test]
fn the_same_bucket_proceeds_without_recording_again() {
    let cfg = facts("cfg", CREATED, 9);
    let cursor = at(9);
    assert_eq!(
        judge_start(&start(
            Some(&cfg),
            Some(&cfg.identity),
            &cursor,
            Some(&cursor)
        )),
        StartVerdict::Proceed {
            record: None,
            unverified: false
        }
    );
}

#[test]
fn an_unknown_creation_time_compares_names_only() {
    assert_eq!(id("a", 0).compare(&id("a", 5)), Sameness::Same);
    assert_eq!(id("a", 5).compare(&id("a", 0)), Sameness::Same);
    assert_eq!(id("a", 5).compare(&id("a", 6)), Sameness::Recreated);
    assert_eq!(id("a", 0).compare(&id("b", 0)), Sameness::OtherName);
}

#[test]
fn a_resume_cursor_ahead_of_the_bucket_is_refused() {
    let bucket = facts("cfg", CREATED, 2995);
    let resume = at(3123);
    let none = WatchCursor::none();
    let f = StartFacts {
        bucket: Some(&bucket),
        has_store: false,
        store_holds_data: false,
        store_cursor: &none,
        recorded: None,
        resume: Some(&resume),
        repair_armed: false,
    };
    assert_eq!(
        judge_start(&f),
        StartVerdict::Refuse(IdentityRefusal::CursorAhead {
            revision: 3123,
            last_revision: 2995,
        })
    );
    let armed = StartFacts {
        repair_armed: true,
        ..f
    };
    assert_eq!(
        judge_start(&armed),
        StartVerdict::Proceed {
            record: None,
            unverified: false
        }
    );
}

#[test]
fn a_store_cursor_ahead_of_the_bucket_is_refused_without_a_resume_cursor() {
    // A store written by an earlier kvfold (no recorded identity).
    let bucket = facts("cfg", CREATED, 2995);
    let cursor = at(3123);
    assert_eq!(
        refuse(judge_start(&start(Some(&bucket), None, &cursor, None))),
        IdentityRefusal::CursorAhead {
            revision: 3123,
            last_revision: 2995
        }
    );
}

#[test]
fn a_cursor_at_the_last_revision_is_not_ahead() {
    let bucket = facts("cfg", CREATED, 9);
    let cursor = at(9);
    assert!(matches!(
        judge_start(&start(
            Some(&bucket),
            Some(&bucket.identity),
            &cursor,
            Some(&cursor)
        )),
        StartVerdict::Proceed { .. }
    ));
}

#[test]
fn a_cursor_written_before_the_bucket_existed_is_refused_beyond_the_slack() {
    let bucket = facts("cfg", CREATED, 100);
    let none = WatchCursor::none();
    let old = written(5, CREATED - RECREATE_SLACK_MS - 1);
    let skewed = written(5, CREATED - RECREATE_SLACK_MS);
    let f = |resume| StartFacts {
        bucket: Some(&bucket),
        has_store: false,
        store_holds_data: false,
        store_cursor: &none,
        recorded: None,
        resume: Some(resume),
        repair_armed: false,
    };
    assert_eq!(
        judge_start(&f(&old)),
        StartVerdict::Refuse(IdentityRefusal::CursorBeforeCreation {
            written_ms: CREATED - RECREATE_SLACK_MS - 1,
            created_ms: CREATED,
        })
    );
    assert!(matches!(
        judge_start(&f(&skewed)),
        StartVerdict::Proceed { .. }
    ));
}

#[test]
fn a_fresh_store_records_the_bucket() {
    let bucket = facts("cfg", CREATED, 0);
    let none = WatchCursor::none();
    assert_eq!(
        judge_start(&start(Some(&bucket), None, &none, None)),
        StartVerdict::Proceed {
            record: Some(bucket.identity.clone()),
            unverified: false
        }
    );
}

#[test]
fn an_empty_store_bound_to_another_bucket_is_rebound() {
    let bucket = facts("big", CREATED, 4);
    let stale = id("cfg", CREATED);
    let none = WatchCursor::none();
    assert_eq!(
        judge_start(&start(Some(&bucket), Some(&stale), &none, None)),
        StartVerdict::Proceed {
            record: Some(bucket.identity.clone()),
            unverified: false
        }
    );
}

#[test]
fn a_legacy_store_with_data_is_adopted_unverified() {
    let bucket = facts("cfg", CREATED, 9);
    let cursor = at(9);
    assert_eq!(
        judge_start(&start(Some(&bucket), None, &cursor, Some(&cursor))),
        StartVerdict::Proceed {
            record: Some(bucket.identity.clone()),
            unverified: true
        }
    );
}

#[test]
fn without_a_status_nothing_is_compared_or_recorded() {
    let stale = id("cfg", CREATED);
    let cursor = at(1_000_000);
    assert_eq!(
        judge_start(&start(None, Some(&stale), &cursor, Some(&cursor))),
        StartVerdict::Proceed {
            record: None,
            unverified: false
        }
    );
    assert_eq!(
        judge_start(&start(None, None, &cursor, None)),
        StartVerdict::Proceed {
            record: None,
            unverified: true
        }
    );
}

#[test]
fn without_a_store_nothing_is_recorded() {
    let bucket = facts("cfg", CREATED, 9);
    let none = WatchCursor::none();
    let resume = at(3);
    let f = StartFacts {
        bucket: Some(&bucket),
        has_store: false,
        store_holds_data: false,
        store_cursor: &none,
        recorded: None,
        resume: Some(&resume),
        repair_armed: false,
    };
    assert_eq!(
        judge_start(&f),
        StartVerdict::Proceed {
            record: None,
            unverified: false
        }
    );
}

#[test]
fn an_expired_cursor_of_the_same_bucket_relists() {
    let started = id("cfg", CREATED);
    let now = facts("cfg", CREATED, 500);
    assert_eq!(
        judge_expired(&at(9), Some(&started), Some(&now), false),
        ExpiredVerdict::Relist
    );
    assert_eq!(
        judge_expired(&at(9), Some(&started), None, false),
        ExpiredVerdict::Relist
    );
}

#[test]
fn an_expired_cursor_ahead_of_the_stream_is_refused_unless_armed() {
    let started = id("cfg", CREATED);
    let now = facts("cfg", CREATED, 2995);
    assert_eq!(
        judge_expired(&at(3123), Some(&started), Some(&now), false),
        ExpiredVerdict::Refuse(IdentityRefusal::CursorAhead {
            revision: 3123,
            last_revision: 2995
        })
    );
    assert_eq!(
        judge_expired(&at(3123), Some(&started), Some(&now), true),
        ExpiredVerdict::Relist
    );
}

#[test]
fn a_bucket_recreated_during_the_run_is_refused_on_expiry() {
    let started = id("cfg", CREATED);
    let now = facts("cfg", CREATED + 10, 9_000);
    assert_eq!(
        judge_expired(&at(3123), Some(&started), Some(&now), false),
        ExpiredVerdict::Refuse(IdentityRefusal::Recreated {
            recorded: started.clone(),
            actual: now.identity.clone(),
        })
    );
    assert_eq!(
        judge_expired(&at(3123), Some(&started), Some(&now), true),
        ExpiredVerdict::Relist
    );
    let renamed = facts("other", CREATED, 9_000);
    assert!(matches!(
        judge_expired(&at(1), Some(&started), Some(&renamed), true),
        ExpiredVerdict::Refuse(IdentityRefusal::OtherBucket { .. })
    ));
}

#[test]
fn refusals_map_to_a_recognisable_watch_error() {
    let refusal = IdentityRefusal::CursorAhead {
        revision: 3,
        last_revision: 2,
    };
    let error = KvError::from(refusal.clone());
    assert_eq!(error, KvError::WatchError(refusal.to_string()));
    assert!(is_identity_refusal(&error));
    assert!(!is_identity_refusal(&KvError::WatchError("other".into())));
    assert!(!is_identity_refusal(&KvError::CursorExpired));
}

#[test]
fn identity_bytes_round_trip_canonically() {
    let identity = id("cfg", CREATED);
    let bytes = encode_identity(&identity);
    assert_eq!(
        bytes,
        b"{\"name\":\"cfg\",\"created_unix_ms\":1767225600000}\n".to_vec()
    );
    assert_eq!(decode_identity(&bytes), Ok(identity));
}

#[test]
fn bad_identity_bytes_are_refused_with_a_typed_error() {
    assert_eq!(
        decode_identity(&vec![b' '; MAX_IDENTITY_BYTES + 1]),
        Err(IdentityDecodeError::TooLarge {
            len: MAX_IDENTITY_BYTES + 1
        })
    );
    for bad in [
        &b""[..],
        b"[\"cfg\", 1]",
        b"{\"name\":\"cfg\"}",
        b"{\"name\":\"cfg\",\"created_unix_ms\":-1}",
        b"{\"name\":\"cfg\",\"created_unix_ms\":1,\"x\":0}",
        b"{\"name\":\"cfg\",\"created_unix_ms\":1} trailing",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(decode_identity(bad), Err(IdentityDecodeError::Syntax(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        decode_identity(b"{\"name\":\"\",\"created_unix_ms\":1}"),
        Err(IdentityDecodeError::BadName)
    );
    let long = format!(
        "{{\"name\":\"{}\",\"created_unix_ms\":1}}",
        "a".repeat(BUCKET_NAME_BYTES_MAX + 1)
    );
    assert_eq!(
        decode_identity(long.as_bytes()),
        Err(IdentityDecodeError::BadName)
    );
}

#[test]
fn identity_refusals_name_both_buckets() {
    assert_eq!(id("cfg", 5).to_string(), "\"cfg\" (created at 5 ms)");
    assert_eq!(
        IdentityRefusal::OtherBucket {
            recorded: id("cfg", 5),
            actual: id("big", 6),
        }
        .to_string(),
        "bucket identity mismatch: the snapshot store holds a fold of bucket \"cfg\" \
         (created at 5 ms), not of bucket \"big\" (created at 6 ms)"
    );
    assert_eq!(
        IdentityRefusal::Recreated {
            recorded: id("cfg", 5),
            actual: id("cfg", 7),
        }
        .to_string(),
        "bucket identity mismatch: the snapshot store holds a fold of bucket \"cfg\" \
         (created at 5 ms); the bucket was recreated since (\"cfg\" (created at 7 ms)), \
         so its revisions start over"
    );
}

#[test]
fn identity_bytes_at_the_cap_are_read() {
    let identity = id("cfg", CREATED);
    let mut bytes = encode_identity(&identity);
    bytes.resize(MAX_IDENTITY_BYTES, b' ');
    assert_eq!(decode_identity(&bytes), Ok(identity));
    bytes.push(b' ');
    assert_eq!(
        decode_identity(&bytes),
        Err(IdentityDecodeError::TooLarge {
            len: MAX_IDENTITY_BYTES + 1
        })
    );
}
