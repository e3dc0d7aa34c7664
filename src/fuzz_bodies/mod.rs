//! Fuzz target bodies (docs/verification.md, "Fuzz targets"): one file per target, each
//! `pub fn <target>(data: &[u8])` asserting the target's properties with `assert!`/`panic!`
//! (a panic is a finding). `fuzz/fuzz_targets/<target>.rs` are one-line wrappers, and
//! `tests/fuzz_regressions.rs` replays committed seeds and regressions through the same
//! functions. Bodies drive the production kernels; they never re-implement one. Hidden from
//! docs: not part of the public API.

mod ack_parse;
mod cursor_decode;
mod fold_machine;
pub mod fold_script;
mod input;
mod lease_machine;
mod log_replay;
mod manifest_parse;
mod repair_machine;
pub mod repair_script;

pub use ack_parse::ack_parse;
pub use cursor_decode::cursor_decode;
pub use fold_machine::fold_machine;
pub use lease_machine::lease_machine;
pub use log_replay::log_replay;
pub use manifest_parse::manifest_parse;
pub use repair_machine::repair_machine;
