//! The canonical form of a `multipart/form-data` body, for cache keys: a form is keyed
//! on its content (each part's name, file name, content type and bytes), so the random
//! boundary and the order of the parts do not change the key.
//!
//! Self-contained (it depends on `http` alone) so the key derivation, the proxy and
//! the test fake share one parser.
//!
//! # Example
//!
//! ```
//! use http::HeaderValue;
//! use mistral_tower::cache::multipart::canonical_multipart;
//!
//! let a = b"--AAA\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nvoxtral\r\n\
//! --AAA\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\
//! Content-Type: audio/mpeg\r\n\r\nID3...\r\n--AAA--\r\n";
//! let b = b"--zz\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\
//! content-type: audio/mpeg\r\n\r\nID3...\r\n--zz\r\nContent-Disposition: form-data; \
//! name=\"model\"\r\n\r\nvoxtral\r\n--zz--\r\n";
//! let ct = |b: &str| HeaderValue::from_str(&format!("multipart/form-data; boundary={b}")).unwrap();
//! assert_eq!(canonical_multipart(&ct("AAA"), a), canonical_multipart(&ct("zz"), b));
//! assert!(canonical_multipart(&ct("AAA"), b).is_none(), "wrong boundary: not a form");
//! ```

use http::HeaderValue;

/// One part of a parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart<'a> {
    /// The field name (`name` of `Content-Disposition`).
    pub name: String,
    /// The file name, for file parts.
    pub filename: Option<String>,
    /// The part's `Content-Type`, trimmed and lowercased.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: &'a [u8],
}

/// Whether a `Content-Type` is `multipart/form-data`.
pub fn is_multipart_form(content_type: &HeaderValue) -> bool {
    let v = content_type.as_bytes();
    v.len() >= 19 && v[..19].eq_ignore_ascii_case(b"multipart/form-data")
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &HeaderValue) -> Option<Vec<u8>> {
    if !is_multipart_form(content_type) {
        return None;
    }
    let s = content_type.to_str().ok()?;
    let (_, params) = s.split_once(';')?;
    params_of(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.into_bytes())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// `; key=value; key="quoted \" value"` parameters.
fn params_of(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b';' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b';' {
            i += 1;
        }
        let key = s[ks..i].trim().to_owned();
        if i >= b.len() || b[i] == b';' {
            if !key.is_empty() {
                out.push((key, String::new()));
            }
            continue;
        }
        i += 1; // '='
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            i += 1; // closing quote
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
            value.extend_from_slice(s[vs..i].trim().as_bytes());
        }
        out.push((key, String::from_utf8_lossy(&value).into_owned()));
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a `multipart/form-data` body with this boundary; `None` when it is not a
/// well-formed form (no closing delimiter, a part without `Content-Disposition`
/// name, ...).
pub fn parse_form<'a>(boundary: &[u8], body: &'a [u8]) -> Option<Vec<FormPart<'a>>> {
    let mut delim = Vec::with_capacity(boundary.len() + 4);
    delim.extend_from_slice(b"\r\n--");
    delim.extend_from_slice(boundary);
    // The first delimiter may start the body (no preamble) or follow a preamble.
    let mut pos = if body.starts_with(&delim[2..]) {
        delim.len() - 2
    } else {
        find(body, &delim)? + delim.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        // transport padding, then CRLF
        let eol = find(rest, b"\r\n")?;
        if !rest[..eol].iter().all(|b| *b == b' ' || *b == b'\t') {
            return None;
        }
        let start = pos + eol + 2;
        let head_end = if body[start..].starts_with(b"\r\n") {
            start
        } else {
            start + find(&body[start..], b"\r\n\r\n")?
        };
        let headers = std::str::from_utf8(&body[start..head_end]).ok()?;
        let data_start = head_end + if head_end == start { 2 } else { 4 };
        let data_len = find(&body[data_start..], &delim)?;
        let data = &body[data_start..data_start + data_len];
        let (mut name, mut filename, mut content_type) = (None, None, None);
        for line in headers.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else {
                continue;
            };
            let h = h.trim();
            if h.eq_ignore_ascii_case("content-disposition") {
                let (kind, params) = v.split_once(';').unwrap_or((v, ""));
                if !kind.trim().eq_ignore_ascii_case("form-data") {
                    return None;
                }
                for (k, val) in params_of(params) {
                    if k.eq_ignore_ascii_case("name") {
                        name = Some(val);
                    } else if k.eq_ignore_ascii_case("filename") {
                        filename = Some(val);
                    }
                }
            } else if h.eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_ascii_lowercase());
            }
        }
        parts.push(FormPart {
            name: name?,
            filename,
            content_type,
            data,
        });
        pos = data_start + data_len + delim.len();
    }
}

/// The canonical form of a `multipart/form-data` body, or `None` when the content type
/// is not a form or the body is not a well-formed one.
///
/// Each part is written as four length-prefixed (u64 big-endian) fields: its name,
/// its file name (with a presence marker), its content type (same) and its bytes; the
/// parts are sorted by those fields, so neither the boundary nor the part order
/// shows. Parts with the same name keep no relative order either: forms repeat a name
/// for list values only, and the Mistral API reads them as sets.
pub fn canonical_multipart(content_type: &HeaderValue, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = boundary(content_type)?;
    let mut parts = parse_form(&boundary, body)?;
    parts.sort_by(|a, b| {
        (&a.name, &a.filename, &a.content_type, a.data).cmp(&(
            &b.name,
            &b.filename,
            &b.content_type,
            b.data,
        ))
    });
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(b"multipart/form-data;v1");
    fn field(out: &mut Vec<u8>, f: &[u8]) {
        out.extend_from_slice(&(f.len() as u64).to_be_bytes());
        out.extend_from_slice(f);
    }
    fn opt(out: &mut Vec<u8>, f: Option<&str>) {
        match f {
            None => out.push(0),
            Some(f) => {
                out.push(1);
                field(out, f.as_bytes());
            }
        }
    }
    out.extend_from_slice(&(parts.len() as u64).to_be_bytes());
    for p in &parts {
        field(&mut out, p.name.as_bytes());
        opt(&mut out, p.filename.as_deref());
        opt(&mut out, p.content_type.as_deref());
        field(&mut out, p.data);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(b: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("multipart/form-data; boundary={b}")).unwrap()
    }

    /// `(name, filename, content type, data)`.
    type P<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

    fn form(boundary: &str, parts: &[P<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, ctype, data) in parts {
            out.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"")
                    .as_bytes(),
            );
            if let Some(f) = filename {
                out.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            if let Some(c) = ctype {
                out.extend_from_slice(format!("Content-Type: {c}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    #[test]
    fn boundary_and_order_do_not_matter_content_does() {
        let audio: &[u8] = b"RIFF\r\n--not-a-boundary\r\n\x00\xff";
        let p1 = ("model", None, None, &b"voxtral-mini-latest"[..]);
        let p2 = ("file", Some("a.wav"), Some("audio/wav"), audio);
        let p3 = ("language", None, None, &b"en"[..]);
        let a = canonical_multipart(&ct("one"), &form("one", &[p1, p2, p3])).unwrap();
        let b = canonical_multipart(&ct("\"two\""), &form("two", &[p3, p2, p1])).unwrap();
        assert_eq!(a, b);
        for changed in [
            ("file", Some("b.wav"), Some("audio/wav"), audio),
            ("file", Some("a.wav"), Some("audio/x-wav"), audio),
            ("file", Some("a.wav"), Some("audio/wav"), &b"RIFF"[..]),
            ("file", None, Some("audio/wav"), audio),
        ] {
            let c = canonical_multipart(&ct("one"), &form("one", &[p1, changed, p3])).unwrap();
            assert_ne!(a, c, "{changed:?}");
        }
    }

    #[test]
    fn malformed_forms_are_none() {
        let good = form("b", &[("x", None, None, b"1")]);
        assert!(canonical_multipart(&ct("b"), &good).is_some());
        assert!(canonical_multipart(&ct("b"), &good[..good.len() - 8]).is_none());
        assert!(
            canonical_multipart(&HeaderValue::from_static("application/json"), &good).is_none()
        );
        assert!(
            canonical_multipart(&HeaderValue::from_static("multipart/form-data"), &good).is_none()
        );
        let no_name = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n";
        assert!(canonical_multipart(&ct("b"), no_name).is_none());
    }

    #[test]
    fn preamble_headers_case_and_quoted_params() {
        let body = b"preamble\r\n--b\r\nCONTENT-DISPOSITION: form-data; filename=\"a;\\\"b\"; name=f\r\nContent-Type:  Text/Plain \r\n\r\nhi\r\n--b--";
        let parts = parse_form(b"b", body).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name, "f");
        assert_eq!(parts[0].filename.as_deref(), Some("a;\"b"));
        assert_eq!(parts[0].content_type.as_deref(), Some("text/plain"));
        assert_eq!(parts[0].data, b"hi");
        // an empty part
        let body = b"--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--b--\r\n";
        assert_eq!(parse_form(b"b", body).unwrap()[0].data, b"");
    }
}
