//! Validating a write against the log before it is appended: TTL, CAS and
//! fence checks, the headers it carries and what it removes.

use super::*;

impl BucketLog {
    fn check_ttl(&self, ttl: Duration) -> Result<u64, KvError> {
        if !self.config.allow_msg_ttl {
            return Err(KvError::OperationFailed(format!(
                "per-message TTL is disabled on bucket {}; create it with StoreOptions::with_ttl",
                self.config.name
            )));
        }
        match ttl_header_value(ttl) {
            Ok(_) => Ok(ttl_ms_rounded_up(ttl)),
            Err(TtlError::TooShort) => Err(KvError::OperationFailed(
                "ttl must be at least 1 s".to_string(),
            )),
            Err(e @ TtlError::TooLong) => Err(KvError::OperationFailed(e.to_string())),
        }
    }

    /// The CAS rule of `update`: `expected == 0` needs no retained entry, otherwise
    /// the latest entry (any kind) must have revision `expected`.
    fn cas_holds(&self, key: &str, expected: u64) -> bool {
        match self.latest(key) {
            None => expected == 0,
            Some(latest) => expected != 0 && latest.revision == expected,
        }
    }

    pub(super) fn prepare(&self, op: WriteOp) -> Result<Prepared, KvError> {
        let fence_key = match &op {
            WriteOp::PutFenced { fence_key, .. } | WriteOp::DeleteFenced { fence_key, .. } => {
                Some(fence_key.as_str())
            }
            _ => None,
        };
        for key in std::iter::once(op.key()).chain(fence_key) {
            require_key(key)?;
        }
        let ttl_ms = match &op {
            WriteOp::PutWithTtl { ttl, .. } | WriteOp::Create { ttl: Some(ttl), .. } => {
                Some((self.check_ttl(*ttl)?, *ttl))
            }
            _ => None,
        };
        let ttl_header = |ttl: Duration| ttl_header_value(ttl).unwrap_or_default();
        let fence_headers = |bucket: &str, fence_key: &str, fence_revision: u64| {
            vec![
                (EXPECTED_SEQ, fence_revision.to_string()),
                (EXPECTED_SEQ_SUBJECT, format!("$KV.{bucket}.{fence_key}")),
            ]
        };
        let prepared = match op {
            WriteOp::Put { key, value } => Prepared {
                key,
                kind: EntryKind::Value,
                value,
                ttl_ms: None,
                headers: Vec::new(),
                removal: Removal::History,
            },
            WriteOp::Create { key, value, ttl } => {
                let expected = match self.latest(&key) {
                    None => 0,
                    Some(latest) if latest.kind.is_marker() => latest.revision,
                    Some(_) => return Err(KvError::AlreadyExists),
                };
                let mut headers = vec![(EXPECTED_SEQ, expected.to_string())];
                if let Some(ttl) = ttl {
                    headers.push((TTL, ttl_header(ttl)));
                }
                Prepared {
                    key,
                    kind: EntryKind::Value,
                    value,
                    ttl_ms: ttl_ms.map(|(ms, _)| ms),
                    headers,
                    removal: Removal::History,
                }
            }
            WriteOp::Update {
                key,
                value,
                expected,
            } => {
                if !self.cas_holds(&key, expected) {
                    return Err(KvError::RevisionMismatch);
                }
                Prepared {
                    key,
                    kind: EntryKind::Value,
                    value,
                    ttl_ms: None,
                    headers: vec![(EXPECTED_SEQ, expected.to_string())],
                    removal: Removal::History,
                }
            }
            WriteOp::DeleteWithVersion { key, expected } => {
                if !self.cas_holds(&key, expected) {
                    return Err(KvError::RevisionMismatch);
                }
                Prepared {
                    key,
                    kind: EntryKind::Value,
                    value: Vec::new(),
                    ttl_ms: None,
                    headers: vec![(EXPECTED_SEQ, expected.to_string())],
                    removal: Removal::History,
                }
            }
            WriteOp::Delete { key } => Prepared {
                key,
                kind: EntryKind::DeleteMarker,
                value: Vec::new(),
                ttl_ms: None,
                headers: vec![(KV_OPERATION, "DEL".to_string())],
                removal: Removal::History,
            },
            WriteOp::Purge { key } => Prepared {
                key,
                kind: EntryKind::PurgeMarker,
                value: Vec::new(),
                ttl_ms: None,
                headers: vec![
                    (KV_OPERATION, "PURGE".to_string()),
                    (ROLLUP, "sub".to_string()),
                ],
                removal: Removal::Rollup,
            },
            WriteOp::PutWithTtl { key, value, ttl } => Prepared {
                key,
                kind: EntryKind::Value,
                value,
                ttl_ms: ttl_ms.map(|(ms, _)| ms),
                headers: vec![(TTL, ttl_header(ttl)), (ROLLUP, "sub".to_string())],
                removal: Removal::Rollup,
            },
            WriteOp::PutFenced {
                key,
                value,
                fence_key,
                fence_revision,
            } => {
                if !self.cas_holds(&fence_key, fence_revision) {
                    return Err(KvError::RevisionMismatch);
                }
                Prepared {
                    headers: fence_headers(&self.config.name, &fence_key, fence_revision),
                    key,
                    kind: EntryKind::Value,
                    value,
                    ttl_ms: None,
                    removal: Removal::History,
                }
            }
            WriteOp::DeleteFenced {
                key,
                fence_key,
                fence_revision,
            } => {
                if !self.cas_holds(&fence_key, fence_revision) {
                    return Err(KvError::RevisionMismatch);
                }
                let mut headers = fence_headers(&self.config.name, &fence_key, fence_revision);
                headers.push((KV_OPERATION, "DEL".to_string()));
                Prepared {
                    key,
                    kind: EntryKind::DeleteMarker,
                    value: Vec::new(),
                    ttl_ms: None,
                    headers,
                    removal: Removal::History,
                }
            }
        };
        Ok(prepared)
    }
}
