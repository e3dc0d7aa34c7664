//! Unit tests of the resume kernels and the ResumeGuard transition table.

#[allow(unused_imports)]
use super::*;
