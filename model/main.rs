//! Stateright models (docs/verification.md, "Stateright models"): each drives the
//! production `protocol` kernels against a small environment. One module per model; adding
//! a model is one `mod` line here. `check` runs a checker the same way for every model.

mod check;
mod fleet;
mod fold;
mod lease;
mod repair;
mod resume;
