//! Audio (placeholder).
