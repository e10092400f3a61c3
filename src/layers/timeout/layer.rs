//! [`TimeoutLayer`]: configuration of the timeouts.

use std::time::Duration;

use tower_layer::Layer;

use super::Timeout;

/// Applies the total and stream idle timeouts (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer {
    total: Option<Duration>,
    stream_idle: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer with no timeout set.
    pub fn new() -> Self {
        TimeoutLayer::default()
    }
    /// The total timeout: response headers and, for non-SSE responses, the whole body.
    pub fn total(mut self, d: Duration) -> Self {
        self.total = Some(d);
        self
    }
    /// The longest pause between two body frames of an SSE response.
    pub fn stream_idle(mut self, d: Duration) -> Self {
        self.stream_idle = Some(d);
        self
    }
    /// Sets or clears the total timeout.
    pub fn set_total(mut self, d: Option<Duration>) -> Self {
        self.total = d;
        self
    }
    /// Sets or clears the stream idle timeout.
    pub fn set_stream_idle(mut self, d: Option<Duration>) -> Self {
        self.stream_idle = d;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::new(inner, self.total, self.stream_idle)
    }
}
