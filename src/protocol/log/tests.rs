//! Unit tests of the v3 kernel (docs/formats.md §3 and §10): golden vectors, header
//! dispatch (H1–H6), the v3 rules R1–R4 with the exhaustive cut and bit-flip contracts,
//! replay and compactness, encoder limits.

use super::*;

/// Parses a hex string with spaces.
pub(super) fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

fn rev(n: u64) -> VersionToken {
    VersionToken::from_u64(n)
}

const V3_HEADER: &str = "4b 56 46 4c 03 00 00 00 7f 01 71 8b";
const V3_PUT_A_X_1: &str =
    "0d 00 00 00 01 bb 2f 2a aa 01 00 61 08 00 00 00 00 00 00 00 01 78 25 ca b2 15";
const V3_PUT_K_EMPTY_3: &str =
    "0c 00 00 00 01 17 40 3b 92 01 00 6b 08 00 00 00 00 00 00 00 03 03 38 a8 c3";
const V3_DELETE_A_2: &str =
    "0c 00 00 00 02 e3 b3 6b 81 01 00 61 08 00 00 00 00 00 00 00 02 1a 99 2f b5";
const V3_CURSOR_2: &str = "08 00 00 00 03 50 8e 45 93 00 00 00 00 00 00 00 02 e3 6c b2 c7";
const V3_CURSOR_NONE: &str = "00 00 00 00 03 c1 85 22 56 c1 85 22 56";

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let whole = crc32c::crc32c(b"123456789");
    assert_eq!(
        crc32c::crc32c_append(crc32c::crc32c(b"1234"), b"56789"),
        whole
    );
}

#[test]
fn golden_v3_vectors_are_reproduced_byte_for_byte() {
    let mut out = Vec::new();
    encode_header(LogFormat::V3, &mut out);
    assert_eq!(out, hex(V3_HEADER));

    type Encode = Box<dyn Fn(&mut Vec<u8>) -> Result<usize, LogError>>;
    let cases: [(&str, Encode); 5] = [
        (
            V3_PUT_A_X_1,
            Box::new(|o| encode_put(LogFormat::V3, "a", b"x", &rev(1), o)),
        ),
        (
            V3_PUT_K_EMPTY_3,
            Box::new(|o| encode_put(LogFormat::V3, "k", b"", &rev(3), o)),
        ),
        (
            V3_DELETE_A_2,
            Box::new(|o| encode_delete(LogFormat::V3, "a", &rev(2), o)),
        ),
        (
            V3_CURSOR_2,
            Box::new(|o| encode_cursor(LogFormat::V3, &WatchCursor::from_u64(2), o)),
        ),
        (
            V3_CURSOR_NONE,
            Box::new(|o| encode_cursor(LogFormat::V3, &WatchCursor::none(), o)),
        ),
    ];
    for (golden, encode) in cases {
        let mut out = vec![0xAA]; // encoders append
        let n = encode(&mut out).expect("within limits");
        assert_eq!(n, hex(golden).len());
        assert_eq!(&out[1..], &hex(golden)[..], "golden {golden}");
    }
}

/// The golden v3 records in one file, in the order of docs/formats.md §3.
fn golden_v3_file() -> Vec<u8> {
    [
        V3_HEADER,
        V3_PUT_A_X_1,
        V3_PUT_K_EMPTY_3,
        V3_DELETE_A_2,
        V3_CURSOR_2,
        V3_CURSOR_NONE,
    ]
    .iter()
    .flat_map(|h| hex(h))
    .collect()
}

#[test]
fn golden_v3_file_is_accepted_by_the_decoder() {
    let bytes = golden_v3_file();
    let records: Vec<_> = records(&bytes).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        records,
        vec![
            Record::Put {
                key: "a",
                value: b"x",
                version: rev(1)
            },
            Record::Put {
                key: "k",
                value: b"",
                version: rev(3)
            },
            Record::Delete {
                key: "a",
                version: rev(2)
            },
            Record::Cursor(WatchCursor::from_u64(2)),
            Record::Cursor(WatchCursor::none()),
        ]
    );
    let r = replay(&bytes).unwrap();
    assert_eq!(r.format, Some(LogFormat::V3));
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.entries["k"], (&b""[..], rev(3)));
    assert_eq!(r.cursor, WatchCursor::none(), "the latest cursor wins");
    assert_eq!(r.cursor_records, 2);
    assert_eq!(r.tail, Tail::Clean);
    assert_eq!(r.valid_len, bytes.len() as u64);
    assert!(!r.already_compact);
    let s = scan(&bytes).unwrap();
    assert_eq!(
        s,
        Scan {
            format: Some(LogFormat::V3),
            valid_len: bytes.len() as u64,
            tail: Tail::Clean,
            records: 5
        }
    );
}

/// A small multi-record v3 log with every kind and value sizes 0, 1, 40.
pub(super) fn sample_v3() -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    encode_header(LogFormat::V3, &mut out);
    let mut ends = Vec::new();
    let big = [7u8; 40];
    encode_put(LogFormat::V3, "alpha", b"", &rev(1), &mut out).unwrap();
    ends.push(out.len());
    encode_put(LogFormat::V3, "beta", b"b", &rev(2), &mut out).unwrap();
    ends.push(out.len());
    encode_delete(LogFormat::V3, "alpha", &rev(3), &mut out).unwrap();
    ends.push(out.len());
    encode_cursor(LogFormat::V3, &WatchCursor::from_u64(3), &mut out).unwrap();
    ends.push(out.len());
    encode_put(LogFormat::V3, "gamma", &big, &rev(4), &mut out).unwrap();
    ends.push(out.len());
    encode_cursor(
        LogFormat::V3,
        &WatchCursor::from_u64(4).remembering(true),
        &mut out,
    )
    .unwrap();
    ends.push(out.len());
    (out, ends)
}

/// The decoded records of `bytes`, or the error.
pub(super) fn decode_all(bytes: &[u8]) -> Result<(Vec<Record<'_>>, u64, Tail), LogError> {
    let mut iter = records(bytes)?;
    let mut out = Vec::new();
    for r in &mut iter {
        out.push(r?);
    }
    let (valid_len, tail) = iter.end();
    Ok((out, valid_len, tail))
}

#[test]
fn cut_at_every_offset_with_zero_fill_keeps_every_whole_record() {
    let (bytes, ends) = sample_v3();
    let (all, _, _) = decode_all(&bytes).unwrap();
    for k in V3_HEADER_LEN..=bytes.len() {
        for fill in [0usize, 1, 7, 4096] {
            let mut cut = bytes[..k].to_vec();
            cut.resize(k + fill, 0);
            let (got, valid_len, tail) =
                decode_all(&cut).unwrap_or_else(|e| panic!("cut {k} fill {fill}: {e}"));
            let whole = ends.iter().filter(|&&e| e <= k).count();
            assert!(got.len() >= whole, "cut {k} fill {fill}");
            assert_eq!(&got[..], &all[..got.len()], "a prefix of the records");
            if fill == 0 {
                assert_eq!(got.len(), whole, "cut {k}");
            }
            let expect_len = if got.is_empty() {
                V3_HEADER_LEN
            } else {
                ends[got.len() - 1]
            };
            assert_eq!(valid_len, expect_len as u64);
            if valid_len == cut.len() as u64 {
                assert_eq!(tail, Tail::Clean);
            } else {
                assert!(
                    matches!(tail, Tail::Torn { offset, .. } if offset == valid_len),
                    "cut {k} fill {fill}: {tail:?}"
                );
            }
        }
    }
}

#[test]
fn no_single_bit_flip_is_silently_accepted() {
    let (bytes, ends) = sample_v3();
    let (all, _, _) = decode_all(&bytes).unwrap();
    let last_start = ends[ends.len() - 2];
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        match decode_all(&flipped) {
            Err(LogError::Corrupted { .. } | LogError::InvalidFormat { .. }) => {}
            Ok((got, valid_len, tail)) => {
                assert!(bit / 8 >= last_start, "bit {bit} accepted: {tail:?}");
                assert_eq!(&got[..], &all[..all.len() - 1], "bit {bit}");
                assert_eq!(valid_len, last_start as u64);
                assert_ne!(tail, Tail::Clean);
            }
        }
        assert_eq!(scan(&flipped).is_ok(), replay(&flipped).is_ok());
    }
}

#[test]
fn a_header_only_log_flip_is_an_error_or_a_torn_creation() {
    let bytes = hex(V3_HEADER);
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(s) = scan(&flipped) {
            assert_eq!(s.format, None, "bit {bit}");
            assert_eq!(
                s.tail,
                Tail::Torn {
                    offset: 0,
                    kind: TornKind::Creation
                }
            );
        }
    }
}

#[test]
fn every_header_prefix_optionally_zero_filled_is_a_torn_creation() {
    let header = hex(V3_HEADER);
    for k in 0..V3_HEADER_LEN {
        for fill_to in k..=V3_HEADER_LEN {
            let mut bytes = header[..k].to_vec();
            bytes.resize(fill_to, 0);
            let r = replay(&bytes).unwrap_or_else(|e| panic!("prefix {k}/{fill_to}: {e}"));
            assert_eq!(r.format, None);
            assert!(r.entries.is_empty());
            assert_eq!(r.valid_len, 0);
            assert_eq!(
                r.tail,
                Tail::Torn {
                    offset: 0,
                    kind: TornKind::Creation
                }
            );
        }
    }
}

#[test]
fn header_dispatch_rules() {
    type Case<'a> = (&'a [u8], Result<Option<LogFormat>, LogError>);
    let cases: &[Case<'_>] = &[
        (b"", Ok(None)),
        (b"PG", Ok(None)),
        (b"\0\0\0\0\0", Ok(None)),
        (b"PGSS\x02\x00", Ok(Some(LogFormat::V2))),
        (
            b"PGSS\x01\x00",
            Err(invalid(4, Violation::UnsupportedVersion(1))),
        ),
        (
            b"PGSS\x03\x00rest",
            Err(invalid(4, Violation::UnsupportedVersion(3))),
        ),
        (b"hello", Err(invalid(0, Violation::NotALog))),
        (b"KVFX\x03\0\0\0abcd", Err(invalid(0, Violation::BadMagic))),
        (b"KVFL\x03\0\0\0abcd", Err(corrupted(0))),
        (&[0u8; 13], Err(invalid(0, Violation::BadMagic))),
        // H4 is for files shorter than the v2 header only: six bytes that are a
        // zero-filled v2 header but no v3 prefix are not a log.
        (b"\0GSS\x02\0", Err(invalid(0, Violation::NotALog))),
    ];
    for (bytes, want) in cases {
        let got = scan(bytes).map(|s| s.format);
        assert_eq!(&got, want, "{bytes:?}");
    }
    // A header with a valid checksum but another version or flags.
    for (version, flags, want) in [
        (4u16, 0u16, Violation::UnsupportedVersion(4)),
        (3, 1, Violation::NonZeroFlags(1)),
    ] {
        let mut h = b"KVFL".to_vec();
        h.extend_from_slice(&version.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        let crc = crc32c::crc32c(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        let offset = if flags == 0 { 4 } else { 6 };
        assert_eq!(scan(&h), Err(invalid(offset, want)));
    }
}

#[test]
fn a_body_len_pointing_past_eof_mid_file_is_corruption() {
    let (mut bytes, ends) = sample_v3();
    // Rewrite the second record's body_len (and fix nothing else).
    let p = ends[0];
    bytes[p..p + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert_eq!(scan(&bytes), Err(corrupted(p)));
    // A single bit flip in any length byte is caught the same way.
    let (clean, _) = sample_v3();
    for bit in 0..32 {
        let mut flipped = clean.clone();
        flipped[p + bit / 8] ^= 1 << (bit % 8);
        assert_eq!(scan(&flipped), Err(corrupted(p)), "bit {bit}");
    }
}

#[test]
fn a_zero_hole_mid_file_is_corruption() {
    let (mut bytes, ends) = sample_v3();
    bytes[ends[1]..ends[2]].fill(0);
    assert_eq!(scan(&bytes), Err(corrupted(ends[1])));
}

/// The bounds of rules R2, R4 and R3c: what is exactly a record head, or
/// exactly a whole record, before the trailing zeros is judged, not taken for a
/// torn tail.
#[test]
fn a_bad_record_that_ends_where_the_zeros_begin_is_corruption() {
    let p = V3_HEADER_LEN;
    // R2/R4: exactly nine bytes of a head that does not verify, nothing after.
    let garbage = [0xA5u8; V3_RECORD_HEAD_LEN];
    assert_eq!(scan(&with_header(&garbage)), Err(corrupted(p)));
    // R4: the same head, then zeros that begin right after it.
    let mut bytes = with_header(&garbage);
    bytes.extend_from_slice(&[0; 32]);
    assert_eq!(scan(&bytes), Err(corrupted(p)));
    // R3c: an authentic head, a body that does not verify, and zeros that begin
    // right after the record's last (non-zero) byte.
    let mut record = hex(V3_PUT_A_X_1);
    assert_ne!(record.last(), Some(&0));
    record[V3_RECORD_HEAD_LEN + 3] ^= 1;
    let mut bytes = with_header(&record);
    bytes.extend_from_slice(&[0; 32]);
    assert_eq!(scan(&bytes), Err(corrupted(p)));
}

#[test]
fn trailing_zeros_after_a_complete_record_are_a_zero_fill_tail() {
    let (mut bytes, _) = sample_v3();
    let n = bytes.len();
    bytes.resize(n + 100, 0);
    let s = scan(&bytes).unwrap();
    assert_eq!(s.valid_len, n as u64);
    assert_eq!(
        s.tail,
        Tail::Torn {
            offset: n as u64,
            kind: TornKind::ZeroFill
        }
    );
}

/// A v3 record with an authentic head and body around an arbitrary body.
fn raw_v3(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.push(kind);
    let head_crc = crc32c::crc32c(&out);
    out.extend_from_slice(&head_crc.to_le_bytes());
    out.extend_from_slice(body);
    let body_crc = crc32c::crc32c_append(head_crc, body);
    out.extend_from_slice(&body_crc.to_le_bytes());
    out
}

fn with_header(record: &[u8]) -> Vec<u8> {
    let mut out = hex(V3_HEADER);
    out.extend_from_slice(record);
    out
}

#[test]
fn authentic_records_that_break_the_body_rules_are_invalid() {
    let put_body = |key: &[u8], ver_len: u8, rest: &[u8]| {
        let mut b = (key.len() as u16).to_le_bytes().to_vec();
        b.extend_from_slice(key);
        b.push(ver_len);
        b.extend_from_slice(rest);
        b
    };
    let at = V3_HEADER_LEN;
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        (raw_v3(4, b""), Violation::UnknownKind(4)),
        (raw_v3(0, b""), Violation::UnknownKind(0)),
        (
            raw_v3(KIND_CURSOR, &[0; 21]),
            Violation::BodyTooLong {
                kind: KIND_CURSOR,
                len: 21,
            },
        ),
        (raw_v3(KIND_CURSOR, &[0; 11]), Violation::CursorUndecodable),
        (raw_v3(KIND_PUT, &[1]), Violation::BodyLengthMismatch),
        (
            raw_v3(KIND_PUT, &put_body(b"ab", 0, b"")[..3]),
            Violation::BodyLengthMismatch,
        ),
        (
            raw_v3(KIND_PUT, &put_body(b"k", 11, &[0; 11])),
            Violation::VersionTooLong(11),
        ),
        (
            raw_v3(KIND_PUT, &put_body(b"k", 8, &[0; 7])),
            Violation::BodyLengthMismatch,
        ),
        (
            raw_v3(KIND_PUT, &put_body(&[0xff, 0xfe], 0, b"v")),
            Violation::KeyNotUtf8,
        ),
        (
            raw_v3(KIND_DELETE, &put_body(b"k", 1, &[9, 9])),
            Violation::BodyLengthMismatch,
        ),
    ];
    for (record, want) in cases {
        assert_eq!(
            scan(&with_header(&record)),
            Err(invalid(at, want.clone())),
            "{want:?}"
        );
    }
    // An authentic head declaring an over-long Put body is refused before any read.
    let mut head = ((MAX_PUT_BODY + 1) as u32).to_le_bytes().to_vec();
    head.push(KIND_PUT);
    let crc = crc32c::crc32c(&head);
    head.extend_from_slice(&crc.to_le_bytes());
    head.extend_from_slice(&[1; 4]);
    assert_eq!(
        scan(&with_header(&head)),
        Err(invalid(
            at,
            Violation::BodyTooLong {
                kind: KIND_PUT,
                len: (MAX_PUT_BODY + 1) as u64
            }
        ))
    );
}

#[test]
fn a_non_canonical_cursor_body_is_refused() {
    // 12-byte block form with flags 0 decodes to nothing; bare forms are canonical.
    let mut block = vec![0u8; 12];
    block[10] = 0;
    assert_eq!(
        scan(&with_header(&raw_v3(KIND_CURSOR, &block))),
        Err(invalid(V3_HEADER_LEN, Violation::CursorUndecodable))
    );
    let memo = WatchCursor::from_u64(9).remembering(true);
    let bytes = with_header(&raw_v3(KIND_CURSOR, &memo.to_bytes()));
    let r = replay(&bytes).unwrap();
    assert_eq!(r.cursor, memo);
}

#[test]
fn compactness_rules() {
    let build = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        encode_header(LogFormat::V3, &mut out);
        f(&mut out);
        out
    };
    let compact = build(&|o| {
        encode_put(LogFormat::V3, "a", b"1", &rev(1), o).unwrap();
        encode_put(LogFormat::V3, "b", b"2", &rev(2), o).unwrap();
        encode_cursor(LogFormat::V3, &WatchCursor::from_u64(2), o).unwrap();
    });
    assert!(replay(&compact).unwrap().already_compact);
    let overwrite = build(&|o| {
        encode_put(LogFormat::V3, "a", b"1", &rev(1), o).unwrap();
        encode_put(LogFormat::V3, "a", b"2", &rev(2), o).unwrap();
    });
    assert!(!replay(&overwrite).unwrap().already_compact);
    let delete = build(&|o| {
        encode_delete(LogFormat::V3, "zzz", &rev(1), o).unwrap();
    });
    assert!(!replay(&delete).unwrap().already_compact);
    let two_cursors = build(&|o| {
        encode_cursor(LogFormat::V3, &WatchCursor::from_u64(1), o).unwrap();
        encode_cursor(LogFormat::V3, &WatchCursor::from_u64(2), o).unwrap();
    });
    assert!(!replay(&two_cursors).unwrap().already_compact);
    let mut torn = compact.clone();
    torn.push(0);
    assert!(!replay(&torn).unwrap().already_compact);
    assert!(replay(&hex(V3_HEADER)).unwrap().already_compact);
    assert!(!replay(b"").unwrap().already_compact);
}

/// `replay` collects strictly ascending Puts without a map and moves them into
/// one at the first key out of order or the first Delete: against a plain
/// last-write-wins fold, every sequence of up to four Puts and Deletes over
/// three keys (values tell the writes apart) gives the same entries and the
/// same compactness.
#[test]
fn replay_matches_a_plain_fold_in_every_key_order() {
    #[derive(Clone, Copy)]
    enum Op {
        Put(&'static str),
        Del(&'static str),
    }
    let ops = [
        Op::Put("a"),
        Op::Put("b"),
        Op::Put("c"),
        Op::Del("a"),
        Op::Del("b"),
    ];
    let mut sequences: Vec<Vec<Op>> = vec![Vec::new()];
    let mut frontier = sequences.clone();
    for _ in 0..4 {
        let mut next = Vec::new();
        for seq in &frontier {
            for op in ops {
                let mut longer = seq.clone();
                longer.push(op);
                next.push(longer);
            }
        }
        sequences.extend(next.iter().cloned());
        frontier = next;
    }
    assert_eq!(sequences.len(), 1 + 5 + 25 + 125 + 625);
    for seq in &sequences {
        let values: Vec<Vec<u8>> = (0..seq.len()).map(|i| vec![b'0' + i as u8]).collect();
        let mut bytes = Vec::new();
        encode_header(LogFormat::V3, &mut bytes);
        let mut model: std::collections::BTreeMap<&str, (&[u8], VersionToken)> =
            std::collections::BTreeMap::new();
        let (mut overwrote, mut deleted) = (false, false);
        for (i, op) in seq.iter().enumerate() {
            match *op {
                Op::Put(key) => {
                    encode_put(
                        LogFormat::V3,
                        key,
                        &values[i],
                        &rev(i as u64 + 1),
                        &mut bytes,
                    )
                    .unwrap();
                    overwrote |= model.insert(key, (&values[i], rev(i as u64 + 1))).is_some();
                }
                Op::Del(key) => {
                    encode_delete(LogFormat::V3, key, &rev(i as u64 + 1), &mut bytes).unwrap();
                    model.remove(key);
                    deleted = true;
                }
            }
        }
        let r = replay(&bytes).unwrap();
        let got: Vec<(&str, &[u8], &VersionToken)> = r
            .entries
            .iter()
            .map(|(k, (v, ver))| (*k, *v, ver))
            .collect();
        let want: Vec<(&str, &[u8], &VersionToken)> =
            model.iter().map(|(k, (v, ver))| (*k, *v, ver)).collect();
        assert_eq!(got, want, "entries after {} ops", seq.len());
        assert_eq!(r.already_compact, !overwrote && !deleted, "compactness");
    }
}

#[test]
fn encoders_check_limits_before_appending() {
    let mut out = vec![1, 2, 3];
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    for format in [LogFormat::V2, LogFormat::V3] {
        assert_eq!(
            encode_put(format, &long_key, b"", &rev(1), &mut out),
            Err(invalid(3, Violation::KeyTooLong(MAX_KEY_LEN + 1)))
        );
        assert_eq!(
            encode_delete(format, &long_key, &rev(1), &mut out),
            Err(invalid(3, Violation::KeyTooLong(MAX_KEY_LEN + 1)))
        );
        let big = vec![0u8; MAX_VALUE_LEN + 1];
        assert_eq!(
            encode_put(format, "k", &big, &rev(1), &mut out),
            Err(invalid(
                3,
                Violation::ValueTooLong(MAX_VALUE_LEN as u64 + 1)
            ))
        );
        assert_eq!(out, vec![1, 2, 3], "nothing appended on error");
    }
}

#[test]
fn values_and_keys_at_the_limit_round_trip() {
    let key = "k".repeat(MAX_KEY_LEN);
    let value = vec![5u8; MAX_VALUE_LEN];
    let version = VersionToken::from_raw(&[9; MAX_VERSION_LEN]).unwrap();
    for format in [LogFormat::V2, LogFormat::V3] {
        let mut out = Vec::new();
        encode_header(format, &mut out);
        encode_put(format, &key, &value, &version, &mut out).unwrap();
        encode_put(format, "short", &value, &version, &mut out).unwrap();
        let r = replay(&out).unwrap();
        assert_eq!(r.tail, Tail::Clean);
        assert_eq!(r.entries[key.as_str()], (&value[..], version.clone()));
        assert_eq!(r.entries["short"].0.len(), MAX_VALUE_LEN);
    }
}

#[test]
fn encode_compact_writes_header_puts_and_a_cursor_only_when_it_has_bytes() {
    let v1 = rev(1);
    let entries = [("a", &b"x"[..], &v1)];
    let mut out = Vec::new();
    encode_compact(LogFormat::V3, entries, &WatchCursor::none(), &mut out).unwrap();
    let mut want = hex(V3_HEADER);
    want.extend(hex(V3_PUT_A_X_1));
    assert_eq!(out, want);
    let memo = WatchCursor::none().remembering(true);
    let mut out = Vec::new();
    encode_compact(LogFormat::V3, [], &memo, &mut out).unwrap();
    let r = replay(&out).unwrap();
    assert_eq!(r.cursor, memo, "a memo-only none cursor survives");
    assert!(r.already_compact);
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    let mut out = vec![7];
    let bad = [(long_key.as_str(), &b""[..], &v1)];
    assert!(encode_compact(LogFormat::V3, bad, &memo, &mut out).is_err());
    assert_eq!(out, vec![7]);
    // The count is of the bytes appended, not of the whole buffer.
    let mut out = vec![7, 7, 7];
    let n = encode_compact(LogFormat::V3, entries, &memo, &mut out).unwrap();
    assert_eq!(n, out.len() - 3);
}

/// The longest cursor kvfold builds (a timed version with the memo: 20 bytes,
/// `MAX_CURSOR_LEN`) is written in both formats and read back unchanged.
#[test]
fn a_cursor_of_the_maximum_length_round_trips() {
    let cursor = WatchCursor::from_version(VersionToken::from_u64(9).written_at(1_700_000_000_000))
        .remembering(true);
    assert_eq!(cursor.to_bytes().len(), MAX_CURSOR_LEN);
    for format in [LogFormat::V2, LogFormat::V3] {
        let mut out = Vec::new();
        encode_header(format, &mut out);
        let header = out.len();
        let n = encode_cursor(format, &cursor, &mut out).unwrap();
        assert_eq!(n, out.len() - header);
        assert_eq!(replay(&out).unwrap().cursor, cursor, "{format:?}");
    }
}

#[test]
fn records_iterator_is_fused_and_reports_its_end() {
    let (bytes, _) = sample_v3();
    let mut iter = records(&bytes).unwrap();
    assert_eq!(iter.end(), (V3_HEADER_LEN as u64, Tail::Clean));
    assert_eq!(iter.by_ref().count(), 6);
    assert!(iter.next().is_none());
    assert_eq!(iter.end(), (bytes.len() as u64, Tail::Clean));
    let mut bad = bytes.clone();
    bad[V3_HEADER_LEN + 2] ^= 1;
    let mut iter = records(&bad).unwrap();
    assert!(matches!(iter.next(), Some(Err(LogError::Corrupted { .. }))));
    assert!(iter.next().is_none());
}

#[test]
fn empty_input_is_a_torn_creation() {
    let r = replay(b"").unwrap();
    assert_eq!(r.format, None);
    assert_eq!(
        r.tail,
        Tail::Torn {
            offset: 0,
            kind: TornKind::Creation
        }
    );
}

#[test]
fn error_messages_carry_reason_and_offset() {
    let e = invalid(12, Violation::UnknownKind(7));
    assert_eq!(
        e.to_string(),
        "invalid log format at byte 12: unknown record kind 0x07"
    );
    assert_eq!(corrupted(40).to_string(), "log corrupted at byte 40");
}
