//! Tower layers of the client stack: retry, timeouts, auth and base URL, tracing,
//! rate and concurrency limits.
//!
//! [`ClientBuilder`](crate::ClientBuilder) assembles them in this order, outermost
//! first: user layers → cache slot → limits → [`retry`] → [`trace`] →
//! [`timeout`] → [`auth`] → transport. Each layer also works on its own around any
//! `Service<http::Request<B>>`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mistral_tower::Body;
//! use mistral_tower::layers::{AuthLayer, RetryConfig, RetryLayer, TimeoutLayer, timeout::TimeoutBody};
//! use mistral_tower::transport::HttpTransport;
//!
//! let stack = tower::ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryConfig::default()))
//!     .map_response(|res: http::Response<TimeoutBody<Body>>| res.map(Body::new))
//!     .layer(TimeoutLayer::new().total(Duration::from_secs(30)))
//!     .layer(AuthLayer::new("https://api.mistral.ai")?.api_key("sk-...")?)
//!     .service(HttpTransport::default());
//! # let _ = stack;
//! # Ok::<(), mistral_tower::Error>(())
//! ```

pub mod auth;
pub mod limit;
pub mod retry;
pub mod timeout;
pub mod trace;

pub use auth::AuthLayer;
pub use limit::{ConcurrencyLimitLayer, RateLimitLayer};
pub use retry::{RetryConfig, RetryLayer, RetryPolicy};
pub use timeout::TimeoutLayer;
pub use trace::TraceLayer;
