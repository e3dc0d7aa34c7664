//! Unit tests of the v2 reader (docs/formats.md §2): golden vectors, every row of the
//! classification table, the torn tail at every offset and the pinned v2 limitation (a
//! length pointing past EOF reads as a tail).

use super::tests::hex;
use super::*;

const V2_HEADER: &str = "50 47 53 53 02 00";
const V2_PUT_A_X_1: &str = "70 9a 64 40 01 01 00 61 01 00 00 00 78 08 00 00 00 00 00 00 00 01";
const V2_DELETE_A_2: &str = "dc 13 7e 9f 02 01 00 61 08 00 00 00 00 00 00 00 02";
const V2_CURSOR_2: &str = "41 10 6b 5d 03 08 00 00 00 00 00 00 00 02";

fn rev(n: u64) -> VersionToken {
    VersionToken::from_u64(n)
}

fn golden_v2_file() -> Vec<u8> {
    [V2_HEADER, V2_PUT_A_X_1, V2_DELETE_A_2, V2_CURSOR_2]
        .iter()
        .flat_map(|h| hex(h))
        .collect()
}

fn torn(offset: usize, kind: TornKind) -> Tail {
    Tail::Torn {
        offset: offset as u64,
        kind,
    }
}

#[test]
fn golden_v2_vectors_are_reproduced_byte_for_byte() {
    let mut out = Vec::new();
    encode_header(LogFormat::V2, &mut out);
    assert_eq!(out, hex(V2_HEADER));
    let mut out = Vec::new();
    encode_put(LogFormat::V2, "a", b"x", &rev(1), &mut out).unwrap();
    assert_eq!(out, hex(V2_PUT_A_X_1));
    let mut out = Vec::new();
    encode_delete(LogFormat::V2, "a", &rev(2), &mut out).unwrap();
    assert_eq!(out, hex(V2_DELETE_A_2));
    let mut out = Vec::new();
    encode_cursor(LogFormat::V2, &WatchCursor::from_u64(2), &mut out).unwrap();
    assert_eq!(out, hex(V2_CURSOR_2));
}

#[test]
fn golden_v2_file_decodes_to_the_exact_state() {
    let bytes = golden_v2_file();
    let r = replay(&bytes).unwrap();
    assert_eq!(r.format, Some(LogFormat::V2));
    assert!(r.entries.is_empty(), "a deleted by the Delete record");
    assert_eq!(r.cursor, WatchCursor::from_u64(2));
    assert_eq!(r.tail, Tail::Clean);
    assert!(!r.already_compact, "v2 is never compact");
    let mut with_put = bytes.clone();
    encode_put(LogFormat::V2, "k", b"", &rev(3), &mut with_put).unwrap();
    let r = replay(&with_put).unwrap();
    assert_eq!(r.entries["k"], (&b""[..], rev(3)));
}

#[test]
fn v2_torn_tail_at_every_offset_of_the_last_record() {
    let bytes = golden_v2_file();
    let last = bytes.len() - hex(V2_CURSOR_2).len();
    for k in last..bytes.len() {
        for fill in [0usize, 1, 7, 4096] {
            let mut cut = bytes[..k].to_vec();
            cut.resize(k + fill, 0);
            let r = replay(&cut).unwrap_or_else(|e| panic!("cut {k} fill {fill}: {e}"));
            assert_eq!(r.valid_len, last as u64, "cut {k} fill {fill}");
            if cut.len() == last {
                assert_eq!(r.tail, Tail::Clean);
            } else {
                assert!(matches!(r.tail, Tail::Torn { offset, .. } if offset == last as u64));
            }
            assert_eq!(r.cursor, WatchCursor::none());
            assert_eq!(r.cursor_records, 0);
        }
    }
}

#[test]
fn v2_header_plus_a_short_first_record_is_a_v2_torn_tail() {
    let mut bytes = hex(V2_HEADER);
    let first = hex(V2_PUT_A_X_1);
    for k in 1..=4 {
        bytes.truncate(V2_HEADER_LEN);
        bytes.extend_from_slice(&first[..k]);
        let s = scan(&bytes).unwrap();
        assert_eq!(s.format, Some(LogFormat::V2));
        assert_eq!(s.valid_len, V2_HEADER_LEN as u64);
        assert_eq!(s.tail, torn(V2_HEADER_LEN, TornKind::Partial));
    }
}

#[test]
fn v2_classification_table() {
    let h = V2_HEADER_LEN;
    let mut cases: Vec<(&str, Vec<u8>, Result<Tail, LogError>)> = Vec::new();
    let with = |record: &[u8]| {
        let mut b = hex(V2_HEADER);
        b.extend_from_slice(record);
        b
    };
    let put = hex(V2_PUT_A_X_1);
    // fewer than 5 bytes
    cases.push(("short", with(&put[..3]), Ok(torn(h, TornKind::Partial))));
    cases.push((
        "short zeros",
        with(&[0; 4]),
        Ok(torn(h, TornKind::ZeroFill)),
    ));
    // crc 0, type 0, all zero
    cases.push(("zero fill", with(&[0; 40]), Ok(torn(h, TornKind::ZeroFill))));
    // crc 0, type 0, non-zero later
    let mut hole = vec![0u8; 10];
    hole.extend_from_slice(&put);
    cases.push((
        "zero hole",
        with(&hole),
        Err(invalid(h, Violation::ZeroHole)),
    ));
    // type 0, crc != 0, zeros after the crc
    let mut partial_crc = put[..2].to_vec();
    partial_crc.resize(30, 0);
    cases.push((
        "partial crc then zeros",
        with(&partial_crc),
        Ok(torn(h, TornKind::ZeroFill)),
    ));
    // other unknown type
    let mut unknown = put.clone();
    unknown[4] = 9;
    cases.push((
        "unknown type",
        with(&unknown),
        Err(invalid(h, Violation::UnknownKind(9))),
    ));
    let mut type0 = put.clone();
    type0[4] = 0;
    cases.push((
        "type 0 with data",
        with(&type0),
        Err(invalid(h, Violation::UnknownKind(0))),
    ));
    // type 0 after a CRC, with data beyond the CRC's four bytes, then zeros: the zeros
    // begin too late for a torn CRC, so the record is an unknown type
    let mut type0_then_zeros = vec![1, 2, 3, 4, 0, 7, 7, 7, 7, 7];
    type0_then_zeros.resize(40, 0);
    cases.push((
        "type 0, data, then zeros",
        with(&type0_then_zeros),
        Err(invalid(h, Violation::UnknownKind(0))),
    ));
    // ver_len > 10 (checked before the CRC)
    let mut ver = put.clone();
    ver[13] = 11;
    cases.push((
        "ver_len 11",
        with(&ver),
        Err(invalid(h, Violation::VersionTooLong(11))),
    ));
    // cursor len > 20
    let mut cur = hex(V2_CURSOR_2);
    cur[5] = 21;
    cur.extend_from_slice(&[0; 30]);
    cases.push((
        "cursor len 21",
        with(&cur),
        Err(invalid(h, Violation::CursorTooLong(21))),
    ));
    // CRC mismatch mid-file
    let mut bad = put.clone();
    bad[12] ^= 1;
    bad.extend_from_slice(&put);
    cases.push(("crc mismatch mid-file", with(&bad), Err(corrupted(h))));
    // CRC mismatch with fewer than 6 bytes after the record
    let mut bad = put.clone();
    bad[12] ^= 1;
    bad.extend_from_slice(&[1, 2, 3, 4, 5]);
    cases.push((
        "crc mismatch near eof",
        with(&bad),
        Ok(torn(h, TornKind::Partial)),
    ));
    // CRC mismatch with exactly 6 (non-zero) bytes after the record: not a torn tail
    let mut bad = put.clone();
    bad[12] ^= 1;
    bad.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    cases.push((
        "crc mismatch with 6 bytes after",
        with(&bad),
        Err(corrupted(h)),
    ));
    // CRC mismatch followed by zeros only
    let mut bad = put.clone();
    bad[12] ^= 1;
    bad.extend_from_slice(&[0; 100]);
    cases.push((
        "crc mismatch then zeros",
        with(&bad),
        Ok(torn(h, TornKind::ZeroFill)),
    ));
    // value_len > 64 MiB: a CRC mismatch ending after value_len
    let mut huge = put.clone();
    huge[8..12].copy_from_slice(&(MAX_VALUE_LEN as u32 + 1).to_le_bytes());
    let mut mid = huge.clone();
    mid.extend_from_slice(&put);
    cases.push(("oversized value mid-file", with(&mid), Err(corrupted(h))));
    cases.push((
        "oversized value, record bytes after it",
        with(&huge),
        Err(corrupted(h)),
    ));
    cases.push((
        "oversized value at eof",
        with(&huge[..12]),
        Ok(torn(h, TornKind::Partial)),
    ));
    // the v2 ambiguity: a length pointing past EOF reads as a tail
    let mut long = put.clone();
    long[8..12].copy_from_slice(&1000u32.to_le_bytes());
    long.extend_from_slice(&put);
    cases.push((
        "length past eof (known limitation)",
        with(&long),
        Ok(torn(h, TornKind::Partial)),
    ));
    for (name, bytes, want) in cases {
        assert_eq!(scan(&bytes).map(|s| s.tail), want, "{name}");
    }
}

/// A v2 record with a correct CRC around an arbitrary payload.
fn raw_v2(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(payload);
    let mut out = crc32fast::hash(&body).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

#[test]
fn v2_records_that_pass_the_crc_but_break_the_format_are_invalid() {
    let h = V2_HEADER_LEN;
    let with = |record: &[u8]| {
        let mut b = hex(V2_HEADER);
        b.extend_from_slice(record);
        b
    };
    // key not UTF-8
    let rec = raw_v2(KIND_DELETE, &[2, 0, 0xff, 0xfe, 0]);
    assert_eq!(scan(&with(&rec)), Err(invalid(h, Violation::KeyNotUtf8)));
    // undecodable cursor (11 bytes)
    let mut payload = vec![11u8];
    payload.extend_from_slice(&[0; 11]);
    let rec = raw_v2(KIND_CURSOR, &payload);
    assert_eq!(
        scan(&with(&rec)),
        Err(invalid(h, Violation::CursorUndecodable))
    );
    // a decodable cursor in block form is accepted
    let memo = WatchCursor::from_u64(3).remembering(true).to_bytes();
    let mut payload = vec![memo.len() as u8];
    payload.extend_from_slice(&memo);
    let bytes = with(&raw_v2(KIND_CURSOR, &payload));
    let r = replay(&bytes).unwrap();
    assert!(r.cursor.seen_evicting());
}

#[test]
fn v2_delete_version_is_kept_but_ignored() {
    let mut bytes = hex(V2_HEADER);
    encode_put(LogFormat::V2, "a", b"1", &rev(5), &mut bytes).unwrap();
    encode_delete(LogFormat::V2, "a", &rev(1), &mut bytes).unwrap();
    let r = replay(&bytes).unwrap();
    assert!(
        r.entries.is_empty(),
        "an older delete version still deletes"
    );
}
