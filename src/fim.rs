//! Wire types for `fim`.
//!
//! STUB: owned by the types work.
