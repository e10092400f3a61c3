//! STUB: owned by the engines work.

/// An in-memory L1 in front of any L2 engine.
#[derive(Debug)]
pub struct TieredEngine<L1, L2> {
    _l1: L1,
    _l2: L2,
}
