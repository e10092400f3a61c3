//! STUB: the caching proxy, owned by the proxy work.
