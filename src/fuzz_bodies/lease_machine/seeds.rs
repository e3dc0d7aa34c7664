//! The committed seeds (`fuzz/seeds/lease_machine/`), as scripts: one per
//! interesting path. `KVFOLD_WRITE_SEEDS=1 cargo test --lib lease_machine::seeds
//! -- --ignored` rewrites the files.

use super::*;

const NOW: u64 = 1_767_225_600;

fn step(kind: Kind, choice: u8) -> Step {
    Step {
        kind,
        choice,
        version: Version::Small(3),
        value: Value::Empty,
        error: 0,
        tick: Tick::Plain,
    }
}

fn read(value: Value, version: Version) -> Step {
    Step {
        kind: Kind::Follow,
        choice: 1,
        version,
        value,
        error: 0,
        tick: Tick::Plain,
    }
}

impl Step {
    /// Fed with `handle_at`, the monotonic clock `advance_units × 40 ms` and
    /// the wall clock `wall_s` past the last reading.
    fn at(mut self, advance_units: u8, wall_s: i8) -> Step {
        self.tick = Tick::Fresh {
            advance_units,
            wall_s,
        };
        self
    }

    /// Fed with `handle_at` and a monotonic reading older than the held one.
    fn stale(mut self, back_units: u8, wall_s: i8) -> Step {
        self.tick = Tick::Stale { back_units, wall_s };
        self
    }
}

fn round(advance_unix_s: i8, advance_units: u8, steps: Vec<Step>) -> Round {
    Round {
        advance_unix_s,
        advance_units,
        steps,
    }
}

fn script(previous: Option<(Version, u64)>, rounds: Vec<Round>) -> Script {
    Script {
        holder: b"node-a".to_vec(),
        ttl_secs: 60,
        now_unix: NOW,
        now_ms: 10_000,
        grace_ms: 2000,
        previous,
        rounds,
    }
}

fn exists() -> Step {
    step(Kind::Follow, 1)
}

fn expired_record() -> Value {
    Value::Around {
        ours: false,
        completed: false,
        age_s: 60,
        expires_delta_s: 0,
    }
}

fn scripts() -> Vec<(&'static str, Script)> {
    let mut out = vec![
        (
            "create_wins",
            script(None, vec![round(0, 0, vec![step(Kind::Follow, 0)])]),
        ),
        (
            "create_fails",
            script(None, vec![round(0, 0, vec![step(Kind::Follow, 2)])]),
        ),
        (
            "entry_vanished",
            script(
                None,
                vec![round(0, 0, vec![exists(), step(Kind::Follow, 0)])],
            ),
        ),
        (
            "entry_read_fails",
            script(
                None,
                vec![round(0, 0, vec![exists(), step(Kind::Follow, 2)])],
            ),
        ),
    ];
    let live = Value::Around {
        ours: false,
        completed: false,
        age_s: 10,
        expires_delta_s: 50,
    };
    out.push((
        "live_record_is_left_alone",
        script(
            None,
            vec![round(0, 0, vec![exists(), read(live, Version::Small(3))])],
        ),
    ));
    // Expired by wall clock: settles, then rounds later (60 s + grace on the
    // monotonic clock, 4 × 250 ms per advance unit) it is taken over.
    out.push((
        "expired_record_settles_then_is_taken_over",
        script(
            None,
            vec![
                round(
                    0,
                    0,
                    vec![exists(), read(expired_record(), Version::Small(3))],
                ),
                round(
                    30,
                    120,
                    vec![exists(), read(expired_record(), Version::Small(3))],
                ),
                round(
                    30,
                    130,
                    vec![
                        exists(),
                        read(expired_record(), Version::Small(3)),
                        step(Kind::Follow, 0),
                    ],
                ),
            ],
        ),
    ));
    out.push((
        "tombstone_is_taken_over_at_once",
        script(
            None,
            vec![round(
                0,
                0,
                vec![
                    exists(),
                    read(Value::Empty, Version::Small(5)),
                    step(Kind::Follow, 0),
                ],
            )],
        ),
    ));
    for (name, error) in [
        ("cas_conflict_loses", 0u8),
        ("cas_race_with_create_loses", 1),
        ("cas_key_gone_loses", 2),
    ] {
        let mut conflict = step(Kind::Follow, 1);
        conflict.error = error;
        out.push((
            name,
            script(
                None,
                vec![round(
                    0,
                    0,
                    vec![exists(), read(Value::Empty, Version::Small(5)), conflict],
                )],
            ),
        ));
    }
    out.push((
        "cas_fails",
        script(
            None,
            vec![round(
                0,
                0,
                vec![
                    exists(),
                    read(Value::Empty, Version::Small(5)),
                    step(Kind::Follow, 2),
                ],
            )],
        ),
    ));
    out.push((
        "junk_settles_for_the_grace_then_is_taken_over",
        script(
            None,
            vec![
                round(
                    0,
                    0,
                    vec![
                        exists(),
                        read(Value::Raw(b"not a lease".to_vec()), Version::Small(4)),
                    ],
                ),
                round(
                    1,
                    8,
                    vec![
                        exists(),
                        read(Value::Raw(b"not a lease".to_vec()), Version::Small(4)),
                        step(Kind::Follow, 0),
                    ],
                ),
            ],
        ),
    ));
    out.push((
        "array_missing_field_wrong_type_are_junk",
        script(
            Some((Version::Small(6), 0)),
            vec![
                round(0, 0, vec![exists(), read(Value::Array, Version::Small(6))]),
                round(
                    0,
                    0,
                    vec![exists(), read(Value::MissingField, Version::Small(6))],
                ),
                round(
                    0,
                    0,
                    vec![exists(), read(Value::WrongType, Version::Small(6))],
                ),
                round(
                    0,
                    0,
                    vec![
                        exists(),
                        read(
                            Value::Extra {
                                expires_delta_s: -1,
                            },
                            Version::Small(6),
                        ),
                    ],
                ),
            ],
        ),
    ));
    out.push((
        "previous_sighting_carries_over",
        script(
            Some((Version::Small(3), 0)),
            vec![round(
                0,
                0,
                vec![
                    exists(),
                    read(
                        Value::Around {
                            ours: false,
                            completed: false,
                            age_s: 5,
                            expires_delta_s: 0,
                        },
                        Version::Small(3),
                    ),
                    step(Kind::Follow, 0),
                ],
            )],
        ),
    ));
    out.push((
        "own_completed_record_after_a_win",
        script(
            None,
            vec![
                round(0, 0, vec![step(Kind::Follow, 0)]),
                round(
                    61,
                    250,
                    vec![
                        exists(),
                        read(
                            Value::Around {
                                ours: true,
                                completed: true,
                                age_s: 61,
                                expires_delta_s: -1,
                            },
                            Version::Small(3),
                        ),
                        step(Kind::Follow, 0),
                    ],
                ),
            ],
        ),
    ));
    out.push((
        "out_of_order_events_are_rejected",
        script(
            None,
            vec![round(
                0,
                0,
                vec![
                    step(Kind::EntryRead, 0),
                    step(Kind::Updated, 0),
                    exists(),
                    step(Kind::Created, 0),
                    step(Kind::Updated, 1),
                    read(Value::Empty, Version::Raw(vec![1, 2, 3])),
                    step(Kind::EntryRead, 1),
                    step(Kind::Follow, 0),
                    step(Kind::Follow, 0),
                    step(Kind::Created, 2),
                ],
            )],
        ),
    ));
    let mut saturated = script(
        Some((Version::Raw(vec![9; 10]), u64::MAX - 1)),
        vec![
            round(
                0,
                0,
                vec![
                    exists(),
                    read(
                        Value::Record {
                            acquired: 0,
                            expires: u64::MAX,
                        },
                        Version::Raw(vec![9; 10]),
                    ),
                ],
            ),
            round(
                -128,
                255,
                vec![
                    exists(),
                    read(
                        Value::Record {
                            acquired: u64::MAX,
                            expires: 0,
                        },
                        Version::Small(0),
                    ),
                    step(Kind::Follow, 0),
                ],
            ),
        ],
    );
    saturated.ttl_secs = u64::MAX;
    saturated.now_unix = u64::MAX - 3;
    saturated.now_ms = u64::MAX - 2;
    saturated.grace_ms = u64::MAX;
    out.push(("saturation_at_u64_max", saturated));
    let mut odd_holder = script(None, vec![round(0, 0, vec![step(Kind::Follow, 0)])]);
    odd_holder.holder = b"q\"\\\xff\n".to_vec();
    odd_holder.ttl_secs = 0;
    out.push(("escaped_holder_and_zero_ttl", odd_holder));
    out.extend(timed_scripts());
    out
}

/// Answers fed with the clocks read when they arrived (`handle_at`).
fn timed_scripts() -> Vec<(&'static str, Script)> {
    let junk = || Value::Raw(b"not a lease".to_vec());
    let mut out = Vec::with_capacity(5);
    // The model's finding 1: the read answers 3 s after the round's clocks were
    // read; junk is first seen then, not at the start, so it settles until
    // 3 s + grace. The next round (1 s later, its read 1 s after its start) is
    // judged at start + 5 s: taken over, and the record and the won sighting
    // carry that round's start clock.
    out.push((
        "stalled_read_is_sighted_when_it_arrives",
        script(
            None,
            vec![
                round(
                    3,
                    0,
                    vec![exists().at(0, 0), read(junk(), Version::Small(4)).at(75, 3)],
                ),
                round(
                    1,
                    4,
                    vec![
                        exists().at(0, 0),
                        read(junk(), Version::Small(4)).at(25, 1),
                        step(Kind::Follow, 0).at(1, 0),
                    ],
                ),
            ],
        ),
    ));
    // A reading older than the held clocks is ignored (its wall clock too), a
    // rejected event's clocks are not kept, and a plain `handle` judges with
    // the clocks last brought in: the entry is sighted 2 s after the start.
    let expired = Value::Around {
        ours: false,
        completed: false,
        age_s: 60,
        expires_delta_s: 1,
    };
    out.push((
        "stale_and_rejected_clocks_are_ignored",
        script(
            None,
            vec![round(
                0,
                0,
                vec![
                    exists().at(50, 2),
                    step(Kind::Updated, 0).at(255, 100),
                    step(Kind::Created, 1).stale(0, -100),
                    read(expired.clone(), Version::Small(5)).stale(3, -100),
                    step(Kind::Follow, 0).at(10, 0),
                ],
            )],
        ),
    ));
    out.push((
        "plain_handle_judges_with_the_last_clock",
        script(
            None,
            vec![round(
                0,
                0,
                vec![
                    exists().at(50, 2),
                    step(Kind::Updated, 0).at(255, 100),
                    read(expired, Version::Small(5)),
                ],
            )],
        ),
    ));
    // The wall clock moves on its own: an equal monotonic reading brings its
    // wall clock (a record expiring at start + 5 s is expired at + 10 s), and
    // a wall clock set back makes it live again.
    let record = || Value::Around {
        ours: false,
        completed: false,
        age_s: 50,
        expires_delta_s: 5,
    };
    out.push((
        "wall_clock_moves_within_a_round",
        script(
            None,
            vec![
                round(
                    0,
                    0,
                    vec![
                        exists().at(0, 0),
                        read(record(), Version::Small(3)).at(0, 10),
                    ],
                ),
                round(
                    0,
                    0,
                    vec![
                        exists().at(5, -20),
                        read(record(), Version::Small(3)).at(5, 0),
                    ],
                ),
            ],
        ),
    ));
    // A tombstone read after a long wait is taken over; the CAS still writes
    // the start clock's record, and the won sighting is first seen at start.
    out.push((
        "late_takeover_keeps_the_start_clock",
        script(
            None,
            vec![round(
                0,
                0,
                vec![
                    exists().at(200, 8),
                    read(Value::Empty, Version::Small(5)).at(255, 10),
                    step(Kind::Follow, 0).at(255, -5),
                ],
            )],
        ),
    ));
    out
}

#[test]
fn seed_scripts_keep_every_property() {
    for (name, script) in scripts() {
        let bytes = script.encode();
        assert_eq!(Script::decode(&bytes), script, "{name} round-trips");
        match run(&script) {
            Ok(summary) => eprintln!("{name}: {summary:?}"),
            Err(violation) => panic!("{name}: {violation}"),
        }
    }
}

/// The seeds reach every outcome, a CAS and a rejection.
#[test]
fn seed_scripts_cover_every_path() {
    let mut total = Summary::default();
    for (_, script) in scripts() {
        let summary = run(&script).expect("seeds keep every property");
        total.won += summary.won;
        total.lost += summary.lost;
        total.failed += summary.failed;
        total.cas += summary.cas;
        total.rejected += summary.rejected;
        total.timed += summary.timed;
        total.ignored += summary.ignored;
        total.judged_late += summary.judged_late;
    }
    assert!(
        total.won > 0 && total.lost > 0 && total.failed > 0,
        "{total:?}"
    );
    assert!(total.cas > 0 && total.rejected > 0, "{total:?}");
    assert!(
        total.timed > 0 && total.ignored > 0 && total.judged_late > 0,
        "{total:?}"
    );
}

/// Seeds written before steps carried clocks (heads below 16) read the same.
#[test]
fn plain_steps_keep_the_old_encoding() {
    let mut out = Vec::new();
    read(Value::Empty, Version::Small(5)).encode(&mut out);
    assert_eq!(out, [1 << 2, 5, 0, 0]);
    let mut data = vec![0x0b, 3, 0, 9, 7, 0xff];
    let mut input = Input::new(&data);
    let plain = Step::decode(&mut input);
    assert_eq!(plain.tick, Tick::Plain);
    assert_eq!(
        (plain.kind, plain.choice, plain.error),
        (Kind::Updated, 2, 9)
    );
    assert_eq!(input.rest(), &[7, 0xff]);
    data[0] |= 0xd0;
    let stale = Step::decode(&mut Input::new(&data));
    assert_eq!(
        stale.tick,
        Tick::Stale {
            back_units: 7,
            wall_s: -1
        }
    );
    assert_eq!(
        (stale.kind, stale.choice, stale.error),
        (Kind::Updated, 2, 9)
    );
    data[0] = 0x1f;
    let fresh = Step::decode(&mut Input::new(&data));
    assert_eq!(
        (fresh.kind, fresh.choice),
        (Kind::Updated, 0),
        "choice 3 reads as 0"
    );
    assert_eq!(
        fresh.tick,
        Tick::Fresh {
            advance_units: 7,
            wall_s: -1
        }
    );
}

#[test]
#[ignore = "writes fuzz/seeds/lease_machine/ (set KVFOLD_WRITE_SEEDS=1)"]
fn write_seed_files() {
    if std::env::var_os("KVFOLD_WRITE_SEEDS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/lease_machine");
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (name, script) in scripts() {
        std::fs::write(dir.join(name), script.encode()).expect("write a seed");
    }
}
