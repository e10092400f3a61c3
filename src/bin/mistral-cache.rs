//! `mistral-cache`: the caching proxy. STUB.
fn main() {}
