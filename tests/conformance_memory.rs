//! The conformance suite against `MemoryConnection` (placeholder until the suite lands).
