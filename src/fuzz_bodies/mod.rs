//! Fuzz target bodies (placeholder).
