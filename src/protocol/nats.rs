//! NATS wire kernels: TTL header text, Go duration text, retry backoff and the
//! cursor-expired text heuristic. Pure string and number rules, no I/O.

use std::time::Duration;

use super::time::Millis;

/// Bound on every NATS request/response, in ms.
pub const KV_OP_TIMEOUT_MS: u64 = 30_000;
/// Retries of a retryable answer (`retry_delay(1..=MAX_RETRIES)`).
pub const MAX_RETRIES: u32 = 6;

/// Why a TTL cannot be expressed as a `Nats-TTL` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlError {
    /// Below one second.
    TooShort,
    /// Above `i64::MAX` nanoseconds.
    TooLong,
}

impl std::fmt::Display for TtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TtlError::TooShort => write!(f, "ttl must be at least 1 s"),
            TtlError::TooLong => write!(f, "ttl is too long (above i64::MAX nanoseconds)"),
        }
    }
}

impl std::error::Error for TtlError {}

/// The `Nats-TTL` header text for `ttl`: whole seconds as a bare number (`"5"`),
/// otherwise milliseconds rounded up with the unit (`"1500ms"`).
pub fn ttl_header_value(ttl: Duration) -> Result<String, TtlError> {
    if ttl < Duration::from_secs(1) {
        return Err(TtlError::TooShort);
    }
    if ttl.as_nanos() > i64::MAX as u128 {
        return Err(TtlError::TooLong);
    }
    if ttl.subsec_nanos() == 0 {
        return Ok(ttl.as_secs().to_string());
    }
    Ok(format!("{}ms", ttl_ms_rounded_up(ttl)))
}

/// `ttl` in milliseconds, rounded up (whole milliseconds stay exact).
pub fn ttl_ms_rounded_up(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `v / 10^prec` with the fraction's trailing zeros removed, as Go prints durations.
fn fixed_point(v: u128, prec: u32) -> String {
    let unit = 10u128.pow(prec);
    let whole = v / unit;
    let mut frac = v % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let mut digits = prec as usize;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    format!("{whole}.{frac:0digits$}")
}

/// The text nats-server (Go's `time.Duration.String`) writes for `d`:
/// `0s`, `1.5ms`, `5s`, `1m30s`, `1h0m0s`. Saturates at `i64::MAX` nanoseconds.
pub fn go_duration_string(d: Duration) -> String {
    let ns = d.as_nanos().min(i64::MAX as u128);
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fixed_point(ns, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fixed_point(ns, 6));
    }
    let secs_whole = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let seconds = fixed_point((secs_whole % 60) * 1_000_000_000 + sub, 9);
    let minutes_total = secs_whole / 60;
    if minutes_total == 0 {
        return format!("{seconds}s");
    }
    let minutes = minutes_total % 60;
    let hours = minutes_total / 60;
    if hours == 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{hours}h{minutes}m{seconds}s")
    }
}

/// Backoff before retry `n` of a retryable answer: 250 ms doubling, capped at 2 s,
/// for `n = 1..=MAX_RETRIES`; `None` otherwise.
pub fn retry_delay(retry: u32) -> Option<Millis> {
    if !(1..=MAX_RETRIES).contains(&retry) {
        return None;
    }
    let ms = 250u64.saturating_mul(1u64 << (retry - 1)).min(2_000);
    Some(Millis(ms))
}

/// True when a server error text reads as "the start position is gone"
/// (ASCII case-insensitive; biased toward true).
pub fn is_cursor_expired_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "start sequence",
        "first sequence",
        "sequence not found",
        "too old",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_header_values() {
        assert_eq!(
            ttl_header_value(Duration::from_millis(999)),
            Err(TtlError::TooShort)
        );
        assert_eq!(ttl_header_value(Duration::from_secs(1)).unwrap(), "1");
        assert_eq!(ttl_header_value(Duration::from_secs(90)).unwrap(), "90");
        assert_eq!(
            ttl_header_value(Duration::from_millis(1500)).unwrap(),
            "1500ms"
        );
        assert_eq!(
            ttl_header_value(Duration::from_nanos(1_000_000_001)).unwrap(),
            "1001ms"
        );
        assert_eq!(
            ttl_header_value(Duration::from_nanos(i64::MAX as u64 + 1)),
            Err(TtlError::TooLong)
        );
        assert!(ttl_header_value(Duration::from_nanos(i64::MAX as u64)).is_ok());
    }

    #[test]
    fn go_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        ];
        for (d, text) in cases {
            assert_eq!(go_duration_string(d), text, "{d:?}");
        }
        assert_eq!(
            go_duration_string(Duration::MAX),
            "2562047h47m16.854775807s"
        );
    }

    #[test]
    fn retry_delays() {
        let got: Vec<_> = (0..=7).map(retry_delay).collect();
        assert_eq!(
            got,
            vec![
                None,
                Some(Millis(250)),
                Some(Millis(500)),
                Some(Millis(1000)),
                Some(Millis(2000)),
                Some(Millis(2000)),
                Some(Millis(2000)),
                None
            ]
        );
    }

    #[test]
    fn cursor_expired_texts() {
        assert!(is_cursor_expired_text(
            "optional start sequence 4 is too old"
        ));
        assert!(is_cursor_expired_text("FIRST SEQUENCE mismatch"));
        assert!(is_cursor_expired_text("sequence not found"));
        assert!(!is_cursor_expired_text("consumer name already in use"));
    }
}
