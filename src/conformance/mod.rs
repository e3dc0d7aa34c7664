//! Reusable backend checks (feature `conformance`). Filled in by the conformance work.
