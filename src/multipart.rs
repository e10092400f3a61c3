//! A `multipart/form-data` encoder that streams: file parts are read from disk or from
//! a stream while the request is sent, never held in memory whole.
//!
//! # Example
//!
//! ```
//! use mistral_tower::multipart::{Form, Part};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let form = Form::new()
//!     .text("purpose", "batch")
//!     .part("file", Part::bytes(&b"{\"a\":1}\n"[..]).file_name("in.jsonl"));
//! let content_type = form.content_type();
//! assert!(content_type.starts_with("multipart/form-data; boundary="));
//! let len = form.content_length().unwrap();
//! let body = form.into_body().collect_bytes().await?;
//! assert_eq!(body.len() as u64, len);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;

use crate::{Body, BoxError};

/// A boxed stream of body chunks, the source of a streamed [`Part`].
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + 'static>>;

/// How much of a file is read per chunk.
const FILE_CHUNK: usize = 64 * 1024;

/// A `multipart/form-data` body under construction.
pub struct Form {
    boundary: String,
    parts: Vec<(String, Part)>,
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("boundary", &self.boundary)
            .field("parts", &self.parts)
            .finish()
    }
}

impl Default for Form {
    fn default() -> Self {
        Form::new()
    }
}

/// One part of a [`Form`]: bytes, a file on disk or a stream, with an optional file
/// name and content type.
pub struct Part {
    data: PartData,
    file_name: Option<String>,
    content_type: Option<String>,
}

enum PartData {
    Bytes(Bytes),
    File {
        path: PathBuf,
        len: u64,
    },
    Stream {
        stream: ByteStream,
        len: Option<u64>,
    },
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Part");
        match &self.data {
            PartData::Bytes(b) => d.field("bytes", &b.len()),
            PartData::File { path, len } => d.field("path", path).field("len", len),
            PartData::Stream { len, .. } => d.field("stream_len", len),
        };
        d.field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .finish()
    }
}

impl Part {
    /// A part holding these bytes.
    pub fn bytes(data: impl Into<Bytes>) -> Part {
        Part {
            data: PartData::Bytes(data.into()),
            file_name: None,
            content_type: None,
        }
    }

    /// A part holding this text.
    pub fn text(value: impl Into<String>) -> Part {
        Part::bytes(value.into())
    }

    /// A part read from the file at `path` while the request is sent. The file name
    /// is the path's last component and the content type is guessed from its
    /// extension (both can be replaced).
    ///
    /// # Errors
    ///
    /// When the file's metadata cannot be read (it does not exist, ...).
    pub async fn file(path: impl AsRef<Path>) -> std::io::Result<Part> {
        let path = path.as_ref().to_path_buf();
        let meta = tokio::fs::metadata(&path).await?;
        if !meta.is_file() {
            return Err(std::io::Error::other(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let content_type = file_name.as_deref().map(guess_content_type);
        Ok(Part {
            data: PartData::File {
                path,
                len: meta.len(),
            },
            file_name,
            content_type: content_type.map(str::to_owned),
        })
    }

    /// A part read from a stream while the request is sent. With `len` known, the
    /// form can announce its `Content-Length`; the stream must then yield exactly
    /// `len` bytes.
    pub fn stream<S, E>(stream: S, len: Option<u64>) -> Part
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Part {
            data: PartData::Stream {
                stream: Box::pin(stream.map(|r| r.map_err(Into::into))),
                len,
            },
            file_name: None,
            content_type: None,
        }
    }

    /// Sets the file name (the `filename` of `Content-Disposition`).
    #[must_use]
    pub fn file_name(mut self, name: impl Into<String>) -> Part {
        self.file_name = Some(name.into());
        self
    }

    /// Sets the content type of the part.
    #[must_use]
    pub fn mime(mut self, content_type: impl Into<String>) -> Part {
        self.content_type = Some(content_type.into());
        self
    }

    /// The file name, if any.
    pub fn get_file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    /// The length of the data, when known.
    pub fn len(&self) -> Option<u64> {
        match &self.data {
            PartData::Bytes(b) => Some(b.len() as u64),
            PartData::File { len, .. } => Some(*len),
            PartData::Stream { len, .. } => *len,
        }
    }

    /// Whether the part is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// The content type of a file name, by extension (`application/octet-stream` when
/// unknown).
pub fn guess_content_type(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jsonl" => "application/jsonl",
        "json" => "application/json",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "webm" => "audio/webm",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// Quotes a `Content-Disposition` parameter value the way browsers do: `"`, CR and
/// LF are percent-encoded.
fn quote(value: &str) -> String {
    value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Form {
    /// An empty form with a random boundary.
    pub fn new() -> Form {
        let boundary: String = (0..32)
            .map(|_| {
                let n = fastrand::u8(0..62);
                (match n {
                    0..=9 => b'0' + n,
                    10..=35 => b'a' + n - 10,
                    _ => b'A' + n - 36,
                }) as char
            })
            .collect();
        Form {
            boundary: format!("mistral-tower-{boundary}"),
            parts: Vec::new(),
        }
    }

    /// Replaces the boundary (tests; it must not occur in any part).
    #[must_use]
    pub fn with_boundary(mut self, boundary: impl Into<String>) -> Form {
        self.boundary = boundary.into();
        self
    }

    /// Adds a text field.
    #[must_use]
    pub fn text(self, name: impl Into<String>, value: impl Into<String>) -> Form {
        self.part(name, Part::text(value))
    }

    /// Adds a part.
    #[must_use]
    pub fn part(mut self, name: impl Into<String>, part: Part) -> Form {
        self.parts.push((name.into(), part));
        self
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` header value: `multipart/form-data; boundary=...`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    fn head(&self, name: &str, part: &Part) -> Bytes {
        let mut h = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{}\"",
            self.boundary,
            quote(name)
        );
        if let Some(f) = &part.file_name {
            h.push_str(&format!("; filename=\"{}\"", quote(f)));
        }
        h.push_str("\r\n");
        if let Some(ct) = &part.content_type {
            h.push_str(&format!(
                "Content-Type: {}\r\n",
                ct.replace(['\r', '\n'], "")
            ));
        }
        h.push_str("\r\n");
        Bytes::from(h)
    }

    fn tail(&self) -> Bytes {
        Bytes::from(format!("--{}--\r\n", self.boundary))
    }

    /// The length of the encoded body, when every part's length is known.
    pub fn content_length(&self) -> Option<u64> {
        let mut n = self.tail().len() as u64;
        for (name, part) in &self.parts {
            n += self.head(name, part).len() as u64 + part.len()? + 2;
        }
        Some(n)
    }

    /// The encoded body: buffered when every part is in memory (so retries can
    /// replay it), streamed otherwise.
    pub fn into_body(self) -> Body {
        let all_bytes = self
            .parts
            .iter()
            .all(|(_, p)| matches!(p.data, PartData::Bytes(_)));
        if all_bytes {
            let mut buf = BytesMut::new();
            for (name, part) in &self.parts {
                buf.extend_from_slice(&self.head(name, part));
                if let PartData::Bytes(b) = &part.data {
                    buf.extend_from_slice(b);
                }
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(&self.tail());
            return Body::full(buf.freeze());
        }
        let Form { boundary, parts } = self;
        let boundary_form = Form {
            boundary,
            parts: Vec::new(),
        };
        let tail = boundary_form.tail();
        let mut pieces: Vec<ByteStream> = Vec::new();
        for (name, part) in parts {
            let head = boundary_form.head(&name, &part);
            pieces.push(once(head));
            pieces.push(match part.data {
                PartData::Bytes(b) => once(b),
                PartData::File { path, len } => file_stream(path, len),
                PartData::Stream { stream, len } => match len {
                    Some(len) => exact(stream, len),
                    None => stream,
                },
            });
            pieces.push(once(Bytes::from_static(b"\r\n")));
        }
        pieces.push(once(tail));
        let stream = futures_util::stream::iter(pieces).flatten();
        Body::new(http_body_util::StreamBody::new(
            stream.map(|r| r.map(http_body::Frame::data)),
        ))
    }
}

fn once(b: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::once(async move { Ok(b) }))
}

/// Checks that a stream yields exactly `len` bytes (the announced `Content-Length`).
fn exact(stream: ByteStream, len: u64) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        (stream, 0u64, false),
        move |(mut s, seen, done)| async move {
            if done {
                return None;
            }
            match s.next().await {
                Some(Ok(b)) => {
                    let seen = seen + b.len() as u64;
                    if seen > len {
                        let e: BoxError =
                            format!("a multipart stream yielded more than its {len} bytes").into();
                        return Some((Err(e), (s, seen, true)));
                    }
                    Some((Ok(b), (s, seen, false)))
                }
                Some(Err(e)) => Some((Err(e), (s, seen, true))),
                None if seen != len => {
                    let e: BoxError =
                        format!("a multipart stream yielded {seen} bytes, not {len}").into();
                    Some((Err(e), (s, seen, true)))
                }
                None => None,
            }
        },
    ))
}

/// Reads a file in chunks, checking it still has the length announced.
fn file_stream(path: PathBuf, len: u64) -> ByteStream {
    use tokio::io::AsyncReadExt;
    enum St {
        Closed(PathBuf),
        Open(tokio::fs::File),
        Done,
    }
    let s = futures_util::stream::unfold(St::Closed(path), |st| async move {
        let mut file = match st {
            St::Done => return None,
            St::Open(f) => f,
            St::Closed(path) => match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => return Some((Err(BoxError::from(e)), St::Done)),
            },
        };
        let mut buf = BytesMut::with_capacity(FILE_CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), St::Open(file))),
            Err(e) => Some((Err(BoxError::from(e)), St::Done)),
        }
    });
    exact(Box::pin(s), len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::multipart::parse_form;

    #[tokio::test]
    async fn buffered_and_streamed_forms_encode_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audio.mp3");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();

        let streamed = Form::new()
            .with_boundary("b0undary")
            .text("model", "voxtral-mini-latest")
            .part("file", Part::file(&path).await.unwrap());
        let len = streamed.content_length().unwrap();
        let body = streamed.into_body();
        assert!(body.as_bytes().is_none(), "a file part is streamed");
        let streamed = body.collect_bytes().await.unwrap();
        assert_eq!(streamed.len() as u64, len);

        let buffered = Form::new()
            .with_boundary("b0undary")
            .text("model", "voxtral-mini-latest")
            .part(
                "file",
                Part::bytes(data.clone())
                    .file_name("audio.mp3")
                    .mime("audio/mpeg"),
            );
        assert_eq!(buffered.content_length(), Some(len));
        let buffered = buffered.into_body().collect_bytes().await.unwrap();
        assert_eq!(buffered, streamed);

        let parts = parse_form(b"b0undary", &buffered).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "model");
        assert_eq!(parts[0].data, &b"voxtral-mini-latest"[..]);
        assert_eq!(parts[1].filename.as_deref(), Some("audio.mp3"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/mpeg"));
        assert_eq!(parts[1].data, &data[..]);
    }

    #[tokio::test]
    async fn a_stream_of_the_wrong_length_is_an_error() {
        let chunks = futures_util::stream::iter(vec![Ok::<_, BoxError>(Bytes::from("abc"))]);
        let form = Form::new().part("file", Part::stream(chunks, Some(5)));
        assert!(form.into_body().collect_bytes().await.is_err());
        let chunks = futures_util::stream::iter(vec![Ok::<_, BoxError>(Bytes::from("abc"))]);
        let form = Form::new().part("file", Part::stream(chunks, None));
        assert_eq!(form.content_length(), None);
        assert!(form.into_body().collect_bytes().await.is_ok());
    }

    #[test]
    fn names_are_quoted_and_boundaries_random() {
        let a = Form::new();
        let b = Form::new();
        assert_ne!(a.boundary(), b.boundary());
        let f = Form::new().with_boundary("x");
        let head = f.head(
            "na\"me",
            &Part::text("v").file_name("a\r\nb.txt").mime("text/plain"),
        );
        assert_eq!(
            head,
            "--x\r\nContent-Disposition: form-data; name=\"na%22me\"; filename=\"a%0D%0Ab.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        );
        assert_eq!(guess_content_type("x.JSONL"), "application/jsonl");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
    }
}
