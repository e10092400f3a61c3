//! Wire types for `models`.
//!
//! STUB: owned by the types work.
