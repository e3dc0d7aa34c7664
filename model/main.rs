//! Stateright models (placeholder until the resume model lands).
