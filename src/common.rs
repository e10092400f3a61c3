//! Wire types for `common`.
//!
//! STUB: owned by the types work.
