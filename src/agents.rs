//! Wire types for `agents`.
//!
//! STUB: owned by the types work.
