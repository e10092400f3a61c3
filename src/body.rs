//! The body type used by the [`Client`](crate::Client)'s tower stack.
//!
//! A [`Body`] is either a fully buffered payload (cheap to clone, so retries can
//! replay it) or a boxed streaming body (for example hyper's `Incoming`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::BoxError;

/// The request and response body of the client stack.
///
/// Buffered bodies ([`Body::from`] a `Bytes`, `String`, `Vec<u8>` or `&'static str`)
/// can be cloned with [`Body::try_clone`]; streaming bodies cannot.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// Wraps any `http_body::Body` whose data is `Bytes`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body {
            kind: Kind::Stream(body.map_err(Into::into).boxed_unsync()),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Body {
            kind: Kind::Full(None),
        }
    }

    /// A body holding exactly these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Body {
            kind: Kind::Full(if bytes.is_empty() { None } else { Some(bytes) }),
        }
    }

    /// Clones a buffered body; `None` for a streaming body.
    pub fn try_clone(&self) -> Option<Body> {
        match &self.kind {
            Kind::Full(b) => Some(Body {
                kind: Kind::Full(b.clone()),
            }),
            Kind::Stream(_) => None,
        }
    }

    /// The bytes of a buffered body without consuming it; `None` for a streaming body.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Full(Some(b)) => Some(b),
            Kind::Full(None) => Some(&[]),
            Kind::Stream(_) => None,
        }
    }

    /// Collects the whole body into one `Bytes`.
    pub async fn collect_bytes(self) -> Result<Bytes, BoxError> {
        match self.kind {
            Kind::Full(b) => Ok(b.unwrap_or_default()),
            Kind::Stream(s) => Ok(s.collect().await?.to_bytes()),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => f
                .debug_struct("Body")
                .field("len", &b.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(_) => f.debug_struct("Body").field("streaming", &true).finish(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::full(b)
    }
}
impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::full(b)
    }
}
impl From<String> for Body {
    fn from(b: String) -> Self {
        Body::full(b)
    }
}
impl From<&'static str> for Body {
    fn from(b: &'static str) -> Self {
        Body::full(Bytes::from_static(b.as_bytes()))
    }
}
impl From<()> for Body {
    fn from(_: ()) -> Self {
        Body::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[tokio::test]
    async fn full_body_clones_and_collects() {
        let b = Body::from("hello");
        assert_eq!(b.size_hint().exact(), Some(5));
        let c = b.try_clone().unwrap();
        assert_eq!(c.collect_bytes().await.unwrap(), "hello");
        assert_eq!(b.collect_bytes().await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn streaming_body_does_not_clone() {
        let b = Body::new(http_body_util::Full::new(Bytes::from_static(b"x")));
        assert!(b.try_clone().is_none());
        assert_eq!(b.collect_bytes().await.unwrap(), "x");
    }

    #[test]
    fn empty_body_is_end_of_stream() {
        assert!(Body::empty().is_end_stream());
        assert!(Body::from(String::new()).is_end_stream());
    }
}
