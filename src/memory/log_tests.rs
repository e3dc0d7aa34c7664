//! Unit tests of the bucket log core (memory-backend.md §10).

#[allow(unused_imports)]
use super::*;
