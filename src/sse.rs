//! Server-sent events: an incremental parser following the WHATWG event-stream
//! rules, an adapter from an `http_body::Body` to events, and the typed
//! [`EventStream`] the client returns for streaming endpoints.
//!
//! # Example
//!
//! ```
//! use mistral_tower::sse::SseParser;
//!
//! let mut parser = SseParser::new();
//! // Events may be split anywhere across network chunks.
//! let mut events = parser.feed(b"data: {\"a\":");
//! assert!(events.is_empty());
//! events.extend(parser.feed(b"1}\r\n\r\n: a comment\ndata: [DONE]\n\n"));
//! assert_eq!(events.len(), 2);
//! assert_eq!(events[0].data, "{\"a\":1}");
//! assert_eq!(events[1].data, "[DONE]");
//! ```

use std::collections::VecDeque;
use std::fmt;
#[cfg(feature = "client")]
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

#[cfg(feature = "client")]
use bytes::Bytes;
use futures_core::Stream;
#[cfg(feature = "client")]
use http::{HeaderMap, StatusCode};
#[cfg(feature = "client")]
use serde::de::DeserializeOwned;

use crate::BoxError;
#[cfg(feature = "client")]
use crate::error::{ApiError, CORRELATION_ID_HEADER, StreamEventError};
#[cfg(feature = "client")]
use crate::{Body, Error};

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The event type (`event:` field); `"message"` when none was given.
    pub event: String,
    /// The data: every `data:` line of the event joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream (`id:` field), possibly empty.
    pub id: String,
    /// The reconnection time, when this event carried a valid `retry:` field.
    pub retry: Option<Duration>,
}

/// An incremental event-stream parser.
///
/// Feed it bytes as they arrive; it returns every event completed by them. Line
/// ends may be CRLF, LF or CR (also split across chunks), a leading UTF-8 BOM is
/// skipped, comment lines (`:`) are ignored, multi-line data is joined with `\n`,
/// and an unterminated event at end of stream is discarded, as the spec requires.
#[derive(Debug, Default, Clone)]
pub struct SseParser {
    line: Vec<u8>,
    bom_checked: bool,
    last_was_cr: bool,
    data: String,
    has_data: bool,
    event: String,
    last_id: String,
    retry: Option<Duration>,
    event_retry: Option<Duration>,
    overflowed: bool,
    /// The line and event size limit (`None`: [`MAX_EVENT_SIZE`]).
    limit: Option<usize>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The largest line or event the parser buffers (16 MiB): past it the stream is
/// broken (see [`SseParser::is_overflowed`]), so a peer that never ends a line
/// cannot grow memory without bound.
pub const MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// A parser whose line and event limit is `limit` bytes instead of
    /// [`MAX_EVENT_SIZE`] (the limit holds however the bytes are split into chunks).
    pub fn with_max_event_size(limit: usize) -> Self {
        SseParser {
            limit: Some(limit),
            ..SseParser::default()
        }
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(MAX_EVENT_SIZE)
    }

    /// Breaks the stream: a line or an event went over the limit.
    fn overflow(&mut self) {
        self.overflowed = true;
        self.line = Vec::new();
        self.data = String::new();
        self.has_data = false;
    }

    /// The reconnection time last set by a `retry:` field.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The last event id.
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Whether a line or an event grew over [`MAX_EVENT_SIZE`]; the parser then
    /// ignores the rest of the stream.
    pub fn is_overflowed(&self) -> bool {
        self.overflowed
    }

    /// Whether bytes of an incomplete line or event are pending.
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data || !self.event.is_empty()
    }

    /// Feeds a chunk; returns the events it completes.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.feed_into(&mut chunk, &mut out);
        out
    }

    /// Feeds a chunk, appending the completed events to `out`.
    pub fn feed_into<E: Extend<SseEvent>>(&mut self, chunk: &mut &[u8], out: &mut E) {
        let mut buf = *chunk;
        *chunk = &[];
        if self.overflowed {
            return;
        }
        if !self.bom_checked {
            // Wait until we can tell whether the stream starts with a BOM.
            let have = self.line.len() + buf.len();
            if have < BOM.len() {
                let mut joined = self.line.clone();
                joined.extend_from_slice(buf);
                if BOM.starts_with(&joined) {
                    self.line = joined;
                    return;
                }
            }
            self.bom_checked = true;
            if !self.line.is_empty() {
                // bytes held back while checking for a BOM
                let mut joined = std::mem::take(&mut self.line);
                joined.extend_from_slice(buf);
                let start = if joined.starts_with(BOM) {
                    BOM.len()
                } else {
                    0
                };
                let rest = joined[start..].to_vec();
                let mut slice = rest.as_slice();
                self.feed_into(&mut slice, out);
                return;
            } else if buf.starts_with(BOM) {
                buf = &buf[BOM.len()..];
            }
        }
        while !buf.is_empty() {
            if self.last_was_cr {
                self.last_was_cr = false;
                if buf[0] == b'\n' {
                    buf = &buf[1..];
                    continue;
                }
            }
            match buf.iter().position(|&b| b == b'\n' || b == b'\r') {
                // The limits are checked per line, not per chunk, so they hold at the
                // same size however the bytes were split.
                Some(i) if self.line.len() + i > self.limit() => {
                    self.overflow();
                    return;
                }
                Some(i) => {
                    let end = buf[i];
                    if self.line.is_empty() {
                        self.process_line_ref(&buf[..i], out);
                    } else {
                        self.line.extend_from_slice(&buf[..i]);
                        let line = std::mem::take(&mut self.line);
                        self.process_line_ref(&line, out);
                        self.line = line;
                        self.line.clear();
                    }
                    if self.overflowed {
                        return;
                    }
                    buf = &buf[i + 1..];
                    if end == b'\r' {
                        self.last_was_cr = true;
                    }
                }
                None if self.line.len() + buf.len() > self.limit() => {
                    self.overflow();
                    return;
                }
                None => {
                    self.line.extend_from_slice(buf);
                    break;
                }
            }
        }
    }

    /// Ends the input: a last line without its line end is processed and a pending
    /// event is dispatched as if a blank line followed (for a recorded body that has
    /// ended; a live stream drops an unterminated event instead).
    pub(crate) fn finish_into<E: Extend<SseEvent>>(&mut self, out: &mut E) {
        if self.overflowed {
            return;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let line = if self.bom_checked {
                &line[..]
            } else {
                line.strip_prefix(BOM).unwrap_or(&line)
            };
            self.process_line_ref(line, out);
        }
        self.dispatch(out);
    }

    fn process_line_ref<E: Extend<SseEvent>>(&mut self, line: &[u8], out: &mut E) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                let value = String::from_utf8_lossy(value);
                if self.data.len() + usize::from(self.has_data) + value.len() > self.limit() {
                    self.overflow();
                    return;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.last_id = String::from_utf8_lossy(value).into_owned();
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // all ASCII digits: valid UTF-8; overflow ignored like an invalid value
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or("x").parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                    self.event_retry = self.retry;
                }
            }
            _ => {}
        }
    }

    fn dispatch<E: Extend<SseEvent>>(&mut self, out: &mut E) {
        let retry = self.event_retry.take();
        if !self.has_data {
            self.event.clear();
            return;
        }
        let event = if self.event.is_empty() {
            "message".to_owned()
        } else {
            std::mem::take(&mut self.event)
        };
        self.has_data = false;
        out.extend(Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            retry,
        }));
    }
}

/// A stream of [`SseEvent`]s read from an `http_body::Body`.
///
/// Ends when the body ends; a pending incomplete event is discarded (check
/// [`SseStream::ended_cleanly`] to tell an unterminated event).
pub struct SseStream<B> {
    body: B,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    done: bool,
    /// The parser overflowed: one error is still to be yielded.
    overflow: bool,
}

impl<B> fmt::Debug for SseStream<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseStream")
            .field("queued", &self.queue.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> SseStream<B> {
    /// Reads events from this body.
    pub fn new(body: B) -> Self {
        SseStream {
            body,
            parser: SseParser::new(),
            queue: VecDeque::new(),
            done: false,
            overflow: false,
        }
    }

    /// Whether the body ended with no incomplete event pending.
    pub fn ended_cleanly(&self) -> bool {
        self.done && !self.parser.has_pending()
    }

    /// The parser's state (last event id, retry).
    pub fn parser(&self) -> &SseParser {
        &self.parser
    }
}

impl<B> Stream for SseStream<B>
where
    B: http_body::Body + Unpin,
    B::Data: bytes::Buf,
    B::Error: Into<BoxError>,
{
    type Item = Result<SseEvent, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(ev) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(ev)));
            }
            if this.done {
                if std::mem::take(&mut this.overflow) {
                    return Poll::Ready(Some(Err(format!(
                        "an event-stream line or event is over {MAX_EVENT_SIZE} bytes"
                    )
                    .into())));
                }
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        use bytes::Buf;
                        while data.has_remaining() {
                            let mut chunk = data.chunk();
                            let n = chunk.len();
                            this.parser.feed_into(&mut chunk, &mut this.queue);
                            data.advance(n);
                        }
                    }
                    if this.parser.is_overflowed() {
                        // The events completed before it go out first, then the error.
                        this.done = true;
                        this.overflow = true;
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => this.done = true,
            }
        }
    }
}

/// A typed stream of server-sent events: each `data:` is decoded as JSON into `T`;
/// the stream ends at `data: [DONE]`, or after an event of one of the
/// [`FINAL_EVENT_TYPES`] (endpoints that send no `[DONE]`).
///
/// It yields an error ([`Error::is_stream`]) and then ends when the body ends
/// without `[DONE]` (truncated), when an event is not valid JSON for `T`, or when
/// upstream sends an error event; a stream idle timeout yields
/// [`Error::is_timeout`]. After `[DONE]` the body is read to its end before the
/// stream ends, so layers that act on a clean end of stream (the cache) see it;
/// a body still open 2 s after `[DONE]` is dropped instead (the stream ends).
/// Dropping it drops the response body and so the connection: no task keeps
/// running.
#[cfg(feature = "client")]
pub struct EventStream<T> {
    inner: SseStream<Body>,
    status: StatusCode,
    headers: HeaderMap,
    finished: bool,
    draining: bool,
    /// Bounds the drain after `[DONE]` (an upstream that keeps the body open).
    drain_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Event names (`event:` field) that end the stream cleanly, like `[DONE]`.
    terminal: &'static [&'static str],
    _t: PhantomData<fn() -> T>,
}

#[cfg(feature = "client")]
impl<T> fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("status", &self.status)
            .field("correlation_id", &self.correlation_id())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "client")]
impl<T> EventStream<T> {
    /// Decodes the events of this response body.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Body) -> Self {
        EventStream {
            inner: SseStream::new(body),
            status,
            headers,
            finished: false,
            draining: false,
            drain_deadline: None,
            terminal: &[],
            _t: PhantomData,
        }
    }

    /// Declares the events, by `event:` name, that end this stream cleanly, for
    /// endpoints that never send `data: [DONE]` (the conversations API ends with
    /// `event: conversation.response.done`). Such an event is decoded and yielded
    /// like any other; the stream then ends as it does after `[DONE]`, and a body
    /// that ends before any of them (or `[DONE]`) is still reported as truncated.
    #[must_use]
    pub fn ends_after(mut self, events: &'static [&'static str]) -> Self {
        self.terminal = events;
        self
    }

    fn start_drain(&mut self) {
        self.draining = true;
        if tokio::runtime::Handle::try_current().is_ok() {
            self.drain_deadline = Some(Box::pin(tokio::time::sleep(DRAIN_AFTER_DONE)));
        }
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// What a cache on the way did (the `x-cache` header), as
    /// [`ApiResponse::cache_status`](crate::ApiResponse::cache_status).
    pub fn cache_status(&self) -> Option<crate::cache::CacheStatus> {
        crate::client::cache_status(&self.headers)
    }

    /// How long ago a replayed stream was stored (the `age` header of a hit).
    pub fn age(&self) -> Option<std::time::Duration> {
        crate::client::age(&self.headers)
    }

    /// The `mistral-correlation-id` response header.
    pub fn correlation_id(&self) -> Option<&str> {
        self.headers.get(CORRELATION_ID_HEADER)?.to_str().ok()
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<T, Error>>> {
        self.finished = true;
        Poll::Ready(Some(Err(
            e.with_response_meta(self.status, self.headers.clone())
        )))
    }
}

/// Event types that end a stream by themselves: endpoints that send no `data: [DONE]`
/// finish with one of these (a streamed transcription with `transcription.done`,
/// streamed speech with `speech.audio.done`, a conversation turn with
/// `conversation.response.done`).
pub const FINAL_EVENT_TYPES: &[&str] = &[
    "transcription.done",
    "speech.audio.done",
    "conversation.response.done",
];

/// Whether an event is the last of its stream: `data: [DONE]`, or an event of one of
/// the [`FINAL_EVENT_TYPES`], named by its `event:` field or by its JSON data's
/// `type`. [`EventStream`] and the cache's "completed cleanly" rule both use it.
pub fn is_final_event(event: &str, data: &str) -> bool {
    let data = data.trim();
    if data == "[DONE]" {
        return true;
    }
    FINAL_EVENT_TYPES.iter().any(|t| {
        event == *t
            || (data.contains(t)
                && serde_json::from_str::<serde_json::Value>(data)
                    .is_ok_and(|v| v.get("type").and_then(serde_json::Value::as_str) == Some(t)))
    })
}

/// How long the rest of an event stream is still read after its `data: [DONE]`, waiting
/// for the body's end: by the client's [`EventStream`] (so layers below it see a clean
/// end of stream), and by the cache when its caller dropped the body right after
/// `[DONE]` (so the answer is still stored). An upstream that keeps the body open
/// longer is dropped.
pub(crate) const DRAIN_AFTER_DONE: Duration = Duration::from_secs(2);

/// Whether the event is an error sent by upstream, returning it.
#[cfg(feature = "client")]
fn error_event(ev: &SseEvent) -> Option<StreamEventError> {
    if !is_error_event(ev) {
        return None;
    }
    Some(StreamEventError {
        api_error: ApiError::parse(ev.data.as_bytes()),
        data: ev.data.clone(),
    })
}

/// Whether an event reports an error: an `event: error`, or a JSON payload with a
/// non-null `error` member, `"object": "error"`, or a choice whose `finish_reason` is
/// `"error"` (LLM APIs end a failed generation that way). The one rule of the crate:
/// the client fails its stream on such an event, and the cache does not store a
/// stream that carries one.
pub(crate) fn is_error_event(ev: &SseEvent) -> bool {
    ev.event == "error" || payload_reports_error(ev.data.as_bytes())
}

/// Whether one event's JSON payload reports an error (see [`is_error_event`]).
fn payload_reports_error(data: &[u8]) -> bool {
    if memchr::memmem::find(data, b"error").is_none() {
        return false;
    }
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return false;
    };
    if obj.get("error").is_some_and(|e| !e.is_null())
        || obj.get("object").and_then(|o| o.as_str()) == Some("error")
    {
        return true;
    }
    obj.get("choices")
        .and_then(|c| c.as_array())
        .is_some_and(|choices| {
            choices
                .iter()
                .any(|c| c.get("finish_reason").and_then(|f| f.as_str()) == Some("error"))
        })
}

/// Feeds a whole recorded body, given in frames, through one [`SseParser`] and calls
/// `f` with each event, in order, until it breaks. A last event that is not followed
/// by a blank line is passed too: a recorded body has ended, so nothing more can
/// complete it.
pub(crate) fn for_each_event<'a>(
    frames: impl IntoIterator<Item = &'a [u8]>,
    mut f: impl FnMut(&SseEvent) -> ControlFlow<()>,
) {
    struct Sink<F> {
        f: F,
        stopped: bool,
    }
    impl<F: FnMut(&SseEvent) -> ControlFlow<()>> Extend<SseEvent> for Sink<F> {
        fn extend<I: IntoIterator<Item = SseEvent>>(&mut self, events: I) {
            for ev in events {
                if !self.stopped && (self.f)(&ev).is_break() {
                    self.stopped = true;
                }
            }
        }
    }
    let mut parser = SseParser::new();
    let mut sink = Sink {
        f: &mut f,
        stopped: false,
    };
    for mut frame in frames {
        parser.feed_into(&mut frame, &mut sink);
        if sink.stopped {
            return;
        }
    }
    parser.finish_into(&mut sink);
}

/// Whether a recorded event stream ended cleanly, so that replaying it is right.
///
/// Clean means: its last event is `data: [DONE]` (a whole event, not the text inside
/// another event's data), and no event is an error (see [`is_error_event`]). Lines end
/// in LF, CRLF or CR, and may be split anywhere across frames.
pub(crate) fn completed_cleanly<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut done = false;
    let mut error = false;
    for_each_event(frames, |ev| {
        if is_error_event(ev) {
            error = true;
            return ControlFlow::Break(());
        }
        // `[DONE]`, or an endpoint's own last event (`transcription.done`, ...).
        done = is_final_event(&ev.event, &ev.data);
        ControlFlow::Continue(())
    });
    done && !error
}

#[cfg(feature = "client")]
impl<T: DeserializeOwned> Stream for EventStream<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            if this.draining {
                // After `[DONE]`, read the body to its end (it normally ends right
                // there) so layers that act on a clean end of stream, like the
                // cache, see it; anything after `[DONE]` is ignored. An upstream that
                // keeps the body open gets `DRAIN_AFTER_DONE`, then the body is dropped.
                let expired = this
                    .drain_deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                let next = if expired {
                    None
                } else {
                    Some(ready!(Pin::new(&mut this.inner).poll_next(cx)))
                };
                match next {
                    Some(Some(Ok(_))) => continue,
                    Some(Some(Err(_)) | None) | None => {
                        this.finished = true;
                        this.drain_deadline = None;
                        this.inner = SseStream::new(Body::empty());
                        return Poll::Ready(None);
                    }
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(ev)) => {
                    if let Some(err) = error_event(&ev) {
                        return this.fail(Error::stream_event(err));
                    }
                    let data = ev.data.trim();
                    if data == "[DONE]" {
                        this.start_drain();
                        continue;
                    }
                    let terminal = this.terminal.contains(&ev.event.as_str());
                    if data.is_empty() && !terminal {
                        continue;
                    }
                    let data = if data.is_empty() { "{}" } else { data };
                    return match serde_json::from_str::<T>(data) {
                        Ok(v) => {
                            if terminal || is_final_event(&ev.event, data) {
                                // The endpoint's own last event (no `[DONE]` follows):
                                // yield it, then end as after `[DONE]`.
                                this.start_drain();
                            }
                            Poll::Ready(Some(Ok(v)))
                        }
                        Err(e) => this.fail(Error::decode(e, Bytes::from(ev.data))),
                    };
                }
                Some(Err(e)) => return this.fail(Error::from_body_error(e, true)),
                None => {
                    return this.fail(Error::stream(match this.terminal.first() {
                        Some(_) => "the stream ended before its final event (truncated)",
                        None => "the stream ended without `data: [DONE]` (truncated)",
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod clean_end_tests {
    use super::*;

    fn clean(parts: &[&'static str]) -> bool {
        completed_cleanly(parts.iter().map(|p| p.as_bytes()))
    }

    #[test]
    fn a_final_done_event_ends_a_clean_stream_without_done() {
        assert!(clean(&[
            "event: transcription.text.delta\ndata: {\"type\":\"transcription.text.delta\",\"text\":\"a\"}\n\n",
            "event: transcription.done\ndata: {\"type\":\"transcription.done\",\"text\":\"a\"}\n\n",
        ]));
        assert!(clean(&[
            "data: {\"type\":\"speech.audio.done\",\"usage\":{}}\n\n"
        ]));
        assert!(clean(&[
            "event: conversation.response.done\ndata: {\"type\":\"conversation.response.done\"}\n\n"
        ]));
        // cut before it, or followed by more events: not clean
        assert!(!clean(&[
            "event: transcription.text.delta\ndata: {\"type\":\"transcription.text.delta\",\"text\":\"a\"}\n\n"
        ]));
        assert!(!clean(&[
            "data: {\"type\":\"transcription.done\"}\n\n",
            "data: {\"type\":\"transcription.text.delta\"}\n\n",
        ]));
    }

    #[test]
    fn done_event_ends_a_clean_stream_in_any_line_ending() {
        assert!(clean(&["data: {\"a\":1}\n\n", "data: [DONE]\n\n"]));
        assert!(clean(&[
            "data: {\"a\":1}\r\n\r\n",
            "data: [DO",
            "NE]\r\n\r\n"
        ]));
        assert!(clean(&["data: {\"a\":1}\r\rdata: [DONE]\r\r"]));
        assert!(clean(&[": keep-alive\n\ndata:[DONE]\n\n"]));
        assert!(clean(&["data: [DONE]"]));
    }

    #[test]
    fn missing_or_embedded_done_is_not_clean() {
        assert!(!clean(&[]));
        assert!(!clean(&["data: {\"a\":1}\n\n"]));
        assert!(!clean(&["data: {\"t\":\"data: [DONE]\"}\n\n"]));
        assert!(!clean(&["data: [DONE]\n\ndata: {\"a\":1}\n\n"]));
        assert!(!clean(&["data: [DONE]\ndata: x\n\n"]));
    }

    #[test]
    fn error_events_and_error_finishes_are_not_clean() {
        assert!(!clean(&["event: error\ndata: {}\n\n", "data: [DONE]\n\n"]));
        assert!(!clean(&[
            "data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n"
        ]));
        assert!(!clean(&[
            "data: {\"object\":\"error\",\"message\":\"x\"}\n\ndata: [DONE]\n\n"
        ]));
        assert!(!clean(&[
            "data: {\"choices\":[{\"finish_reason\":\"error\"}]}\n\ndata: [DONE]\n\n"
        ]));
        // The word "error" in content is not an error.
        assert!(clean(&[
            "data: {\"choices\":[{\"delta\":{\"content\":\"error\"},\"finish_reason\":\"stop\"}],\"error\":null}\n\ndata: [DONE]\n\n"
        ]));
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use proptest::prelude::*;
    use serde_json::Value;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c));
        }
        out
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: "message".into(),
            data: data.into(),
            ..Default::default()
        }
    }

    #[test]
    fn basic_lf() {
        assert_eq!(
            parse_all(&[b"data: a\n\ndata: b\n\n"]),
            vec![ev("a"), ev("b")]
        );
    }

    #[test]
    fn crlf_and_cr() {
        assert_eq!(
            parse_all(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\n"]),
            vec![ev("a"), ev("b"), ev("c")]
        );
    }

    #[test]
    fn crlf_split_across_chunks() {
        assert_eq!(
            parse_all(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\r\n\r\n"]),
            vec![ev("a"), ev("b")]
        );
    }

    #[test]
    fn multiline_data_and_fields() {
        let got = parse_all(&[b"event: delta\nid: 7\nretry: 1500\ndata: one\ndata:two\ndata\n\n"]);
        assert_eq!(
            got,
            vec![SseEvent {
                event: "delta".into(),
                data: "one\ntwo\n".into(),
                id: "7".into(),
                retry: Some(Duration::from_millis(1500)),
            }]
        );
    }

    #[test]
    fn comments_unknown_fields_and_empty_events_ignored() {
        let got = parse_all(&[b": keep-alive\n\nfoo: bar\n\nevent: x\n\ndata: y\n\n"]);
        // the `event: x` block has no data: not dispatched, and its type is reset
        assert_eq!(got, vec![ev("y")]);
    }

    #[test]
    fn only_one_leading_space_stripped() {
        assert_eq!(parse_all(&[b"data:  two\n\n"]), vec![ev(" two")]);
        assert_eq!(parse_all(&[b"data:\n\n"]), vec![ev("")]);
    }

    #[test]
    fn id_persists_and_nul_id_ignored() {
        let got = parse_all(&[b"id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\n"]);
        assert_eq!(got[0].id, "1");
        assert_eq!(got[1].id, "1");
        assert_eq!(got[2].id, "1");
    }

    #[test]
    fn invalid_retry_ignored() {
        let mut p = SseParser::new();
        p.feed(b"retry: 12a\ndata: a\n\n");
        assert_eq!(p.retry(), None);
        p.feed(b"retry: 30\n");
        assert_eq!(p.retry(), Some(Duration::from_millis(30)));
    }

    #[test]
    fn bom_skipped_even_when_split() {
        assert_eq!(parse_all(&[b"\xEF\xBB", b"\xBFdata: a\n\n"]), vec![ev("a")]);
        assert_eq!(
            parse_all(&[b"\xEF", b"\xBB", b"\xBF", b"data: a\n\n"]),
            vec![ev("a")]
        );
        // only the first BOM is removed; a second one is part of the field name
        assert_eq!(parse_all(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n"]), vec![]);
        // a non-BOM prefix is kept
        assert_eq!(parse_all(&[b"\xEF", b"data: a\n\n"]), vec![]);
        assert_eq!(parse_all(&[b"d", b"ata: a\n\n"]), vec![ev("a")]);
    }

    #[test]
    fn unterminated_event_discarded() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: a\n").is_empty());
        assert!(p.has_pending());
    }

    fn sample() -> Vec<u8> {
        include_bytes!("../tests/fixtures/chat.stream.sse").to_vec()
    }

    fn rich_sample() -> Vec<u8> {
        let mut s = b"\xEF\xBB\xBF: comment\r\nevent: e1\r\nid: 42\r\nretry: 10\r\ndata: line1\r\ndata: line2\r\n\r\n".to_vec();
        s.extend_from_slice(b"data: cr\r\rdata: lf\n\n");
        s.extend_from_slice(&sample());
        s
    }

    #[test]
    fn sample_stream_parses() {
        let got = parse_all(&[&sample()]);
        assert_eq!(got.len(), 6);
        assert_eq!(got.last().unwrap().data, "[DONE]");
        for e in &got[..5] {
            serde_json::from_str::<Value>(&e.data).unwrap();
        }
    }

    #[test]
    fn every_split_point_gives_same_events() {
        let s = rich_sample();
        let whole = parse_all(&[&s]);
        assert_eq!(whole.len(), 9);
        for i in 0..=s.len() {
            assert_eq!(parse_all(&[&s[..i], &s[i..]]), whole, "split at {i}");
        }
        // byte by byte
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    /// Issue 16: the limit used to be checked once per chunk, so a line or an event over
    /// it passed when it arrived in one chunk and failed when split.
    #[test]
    fn the_limit_holds_however_the_bytes_are_split() {
        let run = |limit: usize, input: &[u8], size: usize| {
            let mut p = SseParser::with_max_event_size(limit);
            let mut events = Vec::new();
            for c in input.chunks(size) {
                events.extend(p.feed(c));
            }
            (events.len(), p.is_overflowed())
        };
        let line = |n: usize| format!("data: {}\n\n", "x".repeat(n - 6));
        for (input, want) in [
            (line(64), (1, false)), // a 64-byte line: at the limit
            (line(65), (0, true)),  // one byte over
            (
                format!("data: {}\ndata: {}\n\n", "a".repeat(32), "b".repeat(31)),
                (1, false),
            ),
            (
                format!("data: {}\ndata: {}\n\n", "a".repeat(32), "b".repeat(32)),
                (0, true),
            ),
        ] {
            for size in [1, 2, 3, 7, 64, 65, 1000] {
                assert_eq!(
                    run(64, input.as_bytes(), size),
                    want,
                    "{input:?} in {size}-byte chunks"
                );
            }
        }
        // The default limit, in one chunk: a 16 MiB + 1 line is refused.
        let mut p = SseParser::new();
        let big = format!("data: {}\n\n", "x".repeat(MAX_EVENT_SIZE - 5));
        assert!(p.feed(big.as_bytes()).is_empty());
        assert!(p.is_overflowed());
    }

    #[tokio::test]
    async fn an_endless_line_is_an_error_not_unbounded_memory() {
        let mut p = SseParser::new();
        assert_eq!(p.feed(b"data: ok\n\n").len(), 1);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..=(MAX_EVENT_SIZE >> 20) {
            assert!(p.feed(&chunk).is_empty());
        }
        assert!(p.is_overflowed());
        assert!(!p.has_pending(), "the buffer was released");
        assert!(p.feed(b"\n\ndata: later\n\n").is_empty());

        // Through the stream: the events before it, then an error, then the end.
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
            std::iter::once(Bytes::from_static(b"data: first\n\ndata: "))
                .chain(std::iter::repeat_n(
                    Bytes::from(vec![b'y'; 1 << 20]),
                    (MAX_EVENT_SIZE >> 20) + 1,
                ))
                .map(|b| Ok(http_body::Frame::data(b)))
                .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let mut s = SseStream::new(body);
        assert_eq!(s.next().await.unwrap().unwrap().data, "first");
        assert!(s.next().await.unwrap().is_err());
        assert!(s.next().await.is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_chunking_gives_same_events(cuts in proptest::collection::vec(0usize..2000, 0..12)) {
            let s = rich_sample();
            let whole = parse_all(&[&s]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts {
                chunks.push(&s[prev..c]);
                prev = c;
            }
            chunks.push(&s[prev..]);
            prop_assert_eq!(parse_all(&chunks), whole);
        }

        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
            let cut = cut.min(data.len());
            let _ = parse_all(&[&data[..cut], &data[cut..]]);
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Chunk {
        n: u32,
    }

    fn stream_of(chunks: Vec<&'static [u8]>) -> EventStream<Chunk> {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(c)))),
        );
        let body = Body::new(http_body_util::StreamBody::new(frames));
        EventStream::new(StatusCode::OK, HeaderMap::new(), body)
    }

    #[tokio::test]
    async fn typed_stream_ends_at_done() {
        let s = stream_of(vec![
            b"data: {\"n\":1}\n\nda",
            b"ta: {\"n\":2}\n\ndata: [DONE]\n\n",
        ]);
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].as_ref().unwrap(), &Chunk { n: 2 });
    }

    #[tokio::test]
    async fn typed_stream_truncated_is_an_error() {
        let s = stream_of(vec![b"data: {\"n\":1}\n\n"]);
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 2);
        let e = got[1].as_ref().unwrap_err();
        assert!(e.is_stream(), "{e:?}");
    }

    #[tokio::test]
    async fn typed_stream_ends_cleanly_after_a_declared_terminal_event() {
        let s = stream_of(vec![
            b"event: delta\ndata: {\"n\":1}\n\n",
            b"event: response.done\ndata: {\"n\":2}\n\nevent: delta\ndata: {\"n\":3}\n\n",
        ])
        .ends_after(&["response.done"]);
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].as_ref().unwrap(), &Chunk { n: 2 });
        // without the terminal event, the end is a truncation
        let s =
            stream_of(vec![b"event: delta\ndata: {\"n\":1}\n\n"]).ends_after(&["response.done"]);
        let got: Vec<_> = s.collect().await;
        assert!(got[1].as_ref().unwrap_err().is_stream());
    }

    #[tokio::test]
    async fn typed_stream_bad_json_is_decode_error() {
        let s = stream_of(vec![b"data: {\"n\":\"x\"}\n\ndata: [DONE]\n\n"]);
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().is_decode());
    }

    #[tokio::test]
    async fn typed_stream_error_event() {
        let s = stream_of(vec![
            b"data: {\"n\":1}\n\nevent: error\ndata: {\"object\":\"error\",\"message\":\"overloaded\",\"type\":\"service_unavailable\",\"code\":\"3505\"}\n\n",
        ]);
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 2);
        let e = got[1].as_ref().unwrap_err();
        assert!(e.is_stream());
        assert_eq!(e.api_error().unwrap().message, "overloaded");
        // also without an event name
        let s = stream_of(vec![
            b"data: {\"object\":\"error\",\"message\":\"boom\"}\n\n",
        ]);
        let got: Vec<_> = s.collect().await;
        assert_eq!(
            got[0].as_ref().unwrap_err().api_error().unwrap().message,
            "boom"
        );
    }

    #[tokio::test]
    async fn typed_stream_reads_the_body_to_its_end_after_done() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let ended = Arc::new(AtomicBool::new(false));
        let e = ended.clone();
        let frames = futures_util::stream::unfold(0, move |i| {
            let e = e.clone();
            async move {
                let chunk: &'static [u8] = match i {
                    0 => b"data: {\"n\":1}\n\ndata: [DONE]\n\n",
                    1 => b": trailing comment\n\ndata: {\"n\":2}\n\n",
                    _ => {
                        e.store(true, std::sync::atomic::Ordering::SeqCst);
                        return None;
                    }
                };
                Some((
                    Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(chunk))),
                    i + 1,
                ))
            }
        });
        let body = Body::new(http_body_util::StreamBody::new(frames));
        let s: EventStream<Chunk> = EventStream::new(StatusCode::OK, HeaderMap::new(), body);
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 1, "events after [DONE] are ignored");
        assert!(ended.load(Ordering::SeqCst), "the body was read to its end");
    }

    #[tokio::test]
    async fn typed_stream_ends_cleanly_at_a_final_event_without_done() {
        let s: EventStream<Value> = EventStream::new(
            StatusCode::OK,
            HeaderMap::new(),
            Body::from(
                "event: transcription.text.delta\ndata: {\"type\":\"transcription.text.delta\",\"text\":\"Hi\"}\n\n\
                 event: transcription.done\ndata: {\"type\":\"transcription.done\",\"text\":\"Hi\"}\n\n",
            ),
        );
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(Result::is_ok));
        // without its final event, the same stream is truncated
        let s: EventStream<Value> = EventStream::new(
            StatusCode::OK,
            HeaderMap::new(),
            Body::from("data: {\"type\":\"transcription.text.delta\",\"text\":\"Hi\"}\n\n"),
        );
        let got: Vec<_> = s.collect().await;
        assert!(got[1].as_ref().unwrap_err().is_stream());
        assert!(is_final_event(
            "message",
            "{\"type\":\"speech.audio.done\"}"
        ));
        assert!(!is_final_event(
            "message",
            "{\"text\":\"transcription.done\"}"
        ));
    }

    #[test]
    fn event_stream_is_unpin_send() {
        fn check<T: Unpin + Send + 'static>() {}
        check::<EventStream<Chunk>>();
    }
}
