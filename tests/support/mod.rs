//! Shared test support. Each integration test crate declares `mod support;`; other
//! helpers add their own files here and declare them with `#[path]` in their tests.
#![allow(dead_code, unreachable_pub, missing_docs)]
