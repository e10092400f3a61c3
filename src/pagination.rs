//! Paginated lists: a [`Page`] of items that knows how to fetch the next one, and
//! [`Page::into_stream`], an async stream over every item of every page, so callers
//! never write the page loop.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use mistral_tower::Client;
//! use mistral_tower::files::FileListQuery;
//!
//! # async fn run(client: Client) -> Result<(), mistral_tower::Error> {
//! let first = client.files().list(FileListQuery::new().page_size(50)).await?;
//! println!("{} files in all", first.total.unwrap_or(0));
//! let all: Vec<_> = first.into_data().into_stream().try_collect().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::Error;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Fetches page `n` (from 0).
pub(crate) type Fetch<T> = Arc<dyn Fn(u64) -> BoxFuture<Result<Page<T>, Error>> + Send + Sync>;

/// One page of a list, able to fetch the pages after it.
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The total number of items, when the API reports it.
    pub total: Option<u64>,
    /// This page's number, from 0.
    pub page: u64,
    /// The requested page size.
    pub page_size: u64,
    fetch: Option<Fetch<T>>,
}

impl<T: fmt::Debug> fmt::Debug for Page<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("items", &self.items)
            .field("total", &self.total)
            .field("page", &self.page)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Clone for Page<T> {
    fn clone(&self) -> Self {
        Page {
            items: self.items.clone(),
            total: self.total,
            page: self.page,
            page_size: self.page_size,
            fetch: self.fetch.clone(),
        }
    }
}

impl<T> Page<T> {
    /// A page that cannot fetch others (for tests and hand-made lists).
    pub fn new(items: Vec<T>, total: Option<u64>, page: u64, page_size: u64) -> Self {
        Page {
            items,
            total,
            page,
            page_size,
            fetch: None,
        }
    }

    pub(crate) fn with_fetch(mut self, fetch: Fetch<T>) -> Self {
        self.fetch = Some(fetch);
        self
    }

    /// Whether pages follow this one: by `total` when known, else by whether this page
    /// was full.
    pub fn has_more(&self) -> bool {
        if self.fetch.is_none() || self.items.is_empty() || self.page_size == 0 {
            return false;
        }
        match self.total {
            Some(total) => (self.page + 1).saturating_mul(self.page_size) < total,
            None => self.items.len() as u64 >= self.page_size,
        }
    }

    /// Fetches the next page, or `None` after the last one.
    pub async fn next_page(&self) -> Result<Option<Page<T>>, Error> {
        match (&self.fetch, self.has_more()) {
            (Some(fetch), true) => fetch(self.page + 1).await.map(Some),
            _ => Ok(None),
        }
    }

    /// An async stream over this page's items and those of every following page.
    /// A failed fetch yields the error and ends the stream.
    pub fn into_stream(self) -> PageStream<T>
    where
        T: Send + 'static,
    {
        PageStream {
            items: self.items.into_iter(),
            next: None,
            after: Some(PageCursor {
                page: self.page,
                page_size: self.page_size,
                total: self.total,
                full: true,
                fetch: self.fetch,
            }),
            had_items: true,
        }
        .primed()
    }
}

/// Where the stream stands: the page last read.
struct PageCursor<T> {
    page: u64,
    page_size: u64,
    total: Option<u64>,
    full: bool,
    fetch: Option<Fetch<T>>,
}

/// The stream of [`Page::into_stream`].
pub struct PageStream<T> {
    items: std::vec::IntoIter<T>,
    next: Option<BoxFuture<Result<Page<T>, Error>>>,
    after: Option<PageCursor<T>>,
    had_items: bool,
}

impl<T> fmt::Debug for PageStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageStream")
            .field("buffered", &self.items.len())
            .field("fetching", &self.next.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> PageStream<T> {
    fn primed(mut self) -> Self {
        if let Some(c) = &mut self.after {
            c.full = self.items.len() as u64 >= c.page_size;
            self.had_items = !self.items.as_slice().is_empty();
        }
        self
    }

    fn more(&self) -> bool {
        let Some(c) = &self.after else {
            return false;
        };
        if c.fetch.is_none() || !self.had_items || c.page_size == 0 {
            return false;
        }
        match c.total {
            Some(total) => (c.page + 1).saturating_mul(c.page_size) < total,
            None => c.full,
        }
    }
}

// Nothing is pinned in place: the in-flight fetch is boxed.
impl<T> Unpin for PageStream<T> {}

impl<T: Send + 'static> Stream for PageStream<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.items.next() {
                return Poll::Ready(Some(Ok(item)));
            }
            if let Some(fut) = &mut this.next {
                let res = std::task::ready!(fut.as_mut().poll(cx));
                this.next = None;
                match res {
                    Ok(page) => {
                        let n = page.items.len() as u64;
                        if let Some(c) = &mut this.after {
                            c.page = page.page;
                            c.total = page.total.or(c.total);
                            c.full = n >= c.page_size;
                        }
                        this.had_items = n > 0;
                        this.items = page.items.into_iter();
                        continue;
                    }
                    Err(e) => {
                        this.after = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            if !this.more() {
                this.after = None;
                return Poll::Ready(None);
            }
            let c = this.after.as_ref().expect("checked by more()");
            let fetch = c.fetch.as_ref().expect("checked by more()");
            this.next = Some(fetch(c.page + 1));
        }
    }
}

/// A query string under construction: `?a=1&b=x%20y`, each value percent-encoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(String);

impl Query {
    pub(crate) fn new() -> Self {
        Query::default()
    }

    /// Appends `name=value`.
    pub(crate) fn push(&mut self, name: &str, value: impl fmt::Display) -> &mut Self {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        encode_into(&mut self.0, name);
        self.0.push('=');
        encode_into(&mut self.0, &value.to_string());
        self
    }

    /// Appends `name=value` when the value is set.
    pub(crate) fn opt(&mut self, name: &str, value: Option<impl fmt::Display>) -> &mut Self {
        if let Some(v) = value {
            self.push(name, v);
        }
        self
    }

    /// Appends `name=v` for every value (a repeated parameter: a list).
    pub(crate) fn list<V: fmt::Display>(&mut self, name: &str, values: Option<&[V]>) -> &mut Self {
        for v in values.unwrap_or_default() {
            self.push(name, v);
        }
        self
    }

    /// `path` followed by the query.
    pub(crate) fn to_path(&self, path: &str) -> String {
        format!("{path}{}", self.0)
    }
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Percent-encodes a path segment (ids may hold `:` and other characters).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    fn pages(total: Option<u64>, sizes: &'static [usize]) -> Page<u32> {
        let fetch: Fetch<u32> = Arc::new(move |n| {
            Box::pin(async move {
                let start: usize = sizes[..n as usize].iter().sum();
                let items = (start..start + sizes[n as usize])
                    .map(|i| i as u32)
                    .collect();
                Ok(Page::new(items, total, n, 2))
            })
        });
        Page::new(vec![0, 1], total, 0, 2).with_fetch(fetch)
    }

    #[tokio::test]
    async fn streams_every_page_by_total_or_by_a_short_page() {
        let all: Vec<u32> = pages(Some(5), &[2, 2, 1])
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all, [0, 1, 2, 3, 4]);
        let all: Vec<u32> = pages(None, &[2, 2, 1])
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all, [0, 1, 2, 3, 4]);
        // a last full page then an empty one
        let all: Vec<u32> = pages(None, &[2, 2, 0])
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all, [0, 1, 2, 3]);
        let p = pages(Some(5), &[2, 2, 1]);
        assert!(p.has_more());
        let second = p.next_page().await.unwrap().unwrap();
        assert_eq!(second.items, [2, 3]);
        assert!(!Page::new(vec![1], None, 0, 2).has_more());
    }

    #[test]
    fn query_encodes_values() {
        let mut q = Query::new();
        q.push("search", "a b&c")
            .opt("x", None::<u32>)
            .list("t", Some(&["a", "b"][..]));
        assert_eq!(q.to_path("/v1/files"), "/v1/files?search=a%20b%26c&t=a&t=b");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
