//! Batch (placeholder).
