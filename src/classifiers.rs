//! Wire types for `classifiers`.
//!
//! STUB: owned by the types work.
