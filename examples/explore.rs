//! Serves the Stateright explorer on a model (placeholder).
fn main() {}
