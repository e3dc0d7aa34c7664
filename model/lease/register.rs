//! The `lease` model's environment: the lease key as a CAS register with the semantics of
//! `MemoryConnection` and NATS KV (docs/protocols/export-lease.md, "The executor
//! (`ExportLease`)"): `create` fails with `AlreadyExists` while any value (a tombstone too)
//! is stored, `update` and `delete_with_version` succeed only on the latest revision, and
//! every write takes the next revision. Each stored value carries its ghost origin (who
//! wrote it, when in real time) for the properties; the production code only ever sees the
//! bytes and the revision.

use kvfold::{KvEntry, KvError, VersionToken};

/// The key every replica contends for.
pub const LEASE_KEY: &str = "export-lease";

/// A won round, as real time saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// The winning replica.
    pub node: u8,
    /// Its incarnation (a crash starts the next one).
    pub life: u8,
    /// Real time of the round's clock read (the record's `acquired_at_unix`, in
    /// real time): the lease is live in real time while `now < acquired_s + ttl`.
    pub acquired_s: u64,
}

/// Who wrote the stored value (a history variable, never shown to the code under
/// test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A won round's record (by `create` or by a takeover).
    Record(Grant),
    /// The same round's record after its holder's `complete`.
    Completed(Grant),
    /// The abandon tombstone (empty value) of that round.
    Tombstone {
        /// The round abandoned.
        abandoned: Grant,
    },
    /// Bytes that are not a lease record, present from the start.
    Junk,
}

impl Origin {
    /// The round whose lease this value stands for, if it is a record.
    pub fn grant(self) -> Option<Grant> {
        match self {
            Origin::Record(grant) | Origin::Completed(grant) => Some(grant),
            Origin::Tombstone { .. } | Origin::Junk => None,
        }
    }
}

/// The value at the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stored {
    /// The value bytes exactly as written (compact JSON, empty, or junk).
    pub value: Vec<u8>,
    /// Its revision.
    pub revision: u64,
    /// Who wrote it.
    pub origin: Origin,
}

/// The lease key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Register {
    /// The last revision written (0: never written).
    pub revision: u64,
    /// The latest value, `None` until the first write.
    pub entry: Option<Stored>,
}

impl Register {
    /// A key never written.
    pub fn empty() -> Self {
        Self {
            revision: 0,
            entry: None,
        }
    }

    /// A key holding `value` at revision 1.
    pub fn holding(value: Vec<u8>, origin: Origin) -> Self {
        let mut register = Self::empty();
        register.write(value, origin);
        register
    }

    fn write(&mut self, value: Vec<u8>, origin: Origin) -> (VersionToken, Option<Stored>) {
        self.revision += 1;
        let previous = self.entry.replace(Stored {
            value,
            revision: self.revision,
            origin,
        });
        (VersionToken::from_u64(self.revision), previous)
    }

    fn is_latest(&self, expected: &VersionToken) -> bool {
        self.entry
            .as_ref()
            .is_some_and(|stored| expected.as_u64() == Some(stored.revision))
    }

    /// `KvWriter::create`: only on a key that holds nothing.
    pub fn create(&mut self, value: Vec<u8>, origin: Origin) -> Result<VersionToken, KvError> {
        if self.entry.is_some() {
            return Err(KvError::AlreadyExists);
        }
        Ok(self.write(value, origin).0)
    }

    /// `KvReader::entry`: the latest raw write, tombstones included.
    pub fn entry(&self) -> Option<KvEntry> {
        self.entry.as_ref().map(|stored| KvEntry {
            key: LEASE_KEY.to_string(),
            value: stored.value.clone(),
            version: VersionToken::from_u64(stored.revision),
        })
    }

    /// `KvWriter::update`: only on the latest revision; returns the value replaced.
    pub fn update(
        &mut self,
        value: Vec<u8>,
        expected: &VersionToken,
        origin: Origin,
    ) -> Result<(VersionToken, Option<Stored>), KvError> {
        if !self.is_latest(expected) {
            return Err(KvError::RevisionMismatch);
        }
        Ok(self.write(value, origin))
    }

    /// An unconditional put (only the "take over without CAS" mutant uses it).
    pub fn put(&mut self, value: Vec<u8>, origin: Origin) -> (VersionToken, Option<Stored>) {
        self.write(value, origin)
    }

    /// `KvWriter::delete_with_version`: the CAS tombstone (an empty value).
    pub fn delete_with_version(
        &mut self,
        expected: &VersionToken,
        abandoned: Grant,
    ) -> Result<VersionToken, KvError> {
        if !self.is_latest(expected) {
            return Err(KvError::RevisionMismatch);
        }
        Ok(self.write(Vec::new(), Origin::Tombstone { abandoned }).0)
    }
}
