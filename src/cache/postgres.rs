//! STUB: owned by the engines work.

/// Stub.
#[derive(Debug)]
pub struct PostgresEngine;
