//! Monotonic time as plain data. Kernels never read a clock: callers pass `Millis`
//! in and machines report their next deadline as `Millis`.

/// Milliseconds on the caller's monotonic (or server) clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating at `u64::MAX`.
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::Millis;

    #[test]
    fn plus_ms_saturates() {
        assert_eq!(Millis(5).plus_ms(7), Millis(12));
        assert_eq!(Millis(u64::MAX - 1).plus_ms(7), Millis(u64::MAX));
    }
}
