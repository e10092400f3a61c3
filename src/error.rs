//! The client's error type.
//!
//! STUB: owned by the client work.

/// Every failure of a client call.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
}
