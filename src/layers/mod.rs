//! Tower layers of the client stack: retry, timeouts, auth and base URL, tracing, limits.
//!
//! STUB: owned by the client work.
