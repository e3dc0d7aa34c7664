//! Structured fuzz input decoded by hand from the raw bytes (instead of a library
//! dependency on `arbitrary`): a forward-only reader that never fails, yielding
//! zeros once the bytes run out, so every byte string is a valid structured input.

/// A forward-only reader over fuzz bytes.
pub(crate) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// The next byte, or 0 when exhausted.
    pub(crate) fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&first, rest)) => {
                self.rest = rest;
                first
            }
            None => 0,
        }
    }

    /// The next (at most) `len` bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        head
    }

    /// The next 8 bytes as a little-endian `u64`; missing bytes read as 0.
    pub(crate) fn u64_le(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let head = self.bytes(8);
        buf[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(buf)
    }

    /// A `u64` spread over the interesting range: small values, the edges around
    /// `u64::MAX` and the full width, chosen by a selector byte.
    pub(crate) fn number(&mut self) -> u64 {
        match self.byte() % 4 {
            0 => u64::from(self.byte()),
            1 => u64::MAX - u64::from(self.byte()),
            _ => self.u64_le(),
        }
    }

    /// Everything not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zeros_past_the_end() {
        let mut input = Input::new(&[1, 2, 3]);
        assert_eq!(input.byte(), 1);
        assert_eq!(input.bytes(5), &[2, 3]);
        assert_eq!(input.byte(), 0);
        assert_eq!(input.u64_le(), 0);
        assert!(input.rest().is_empty());
        let mut input = Input::new(&[1, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(input.u64_le(), 1);
        assert_eq!(input.rest(), &[9]);
    }
}
