//! Wire types for `ocr`.
//!
//! STUB: owned by the types work.
