//! Server-sent events: a spec-compliant incremental parser.
//!
//! STUB: owned by the client work.
