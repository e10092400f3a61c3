//! What a stored answer saves when it is served again: the `usage` object of the
//! common OpenAI-style response shape (`prompt_tokens`, `completion_tokens`,
//! `total_tokens`) and the answering `model`, read once when the entry is stored and
//! kept in the entry as the `x-cache-saved-tokens` header, so a hit carries it
//! without parsing its body.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use mistral_tower::cache::{SavedTokens, Usage};
//!
//! let body = Bytes::from_static(
//!     br#"{"model":"m-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
//! );
//! let saved = SavedTokens::from_answer(&[body], false).unwrap();
//! assert_eq!(saved.usage, Usage { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
//! let header = saved.to_header_value().unwrap();
//! assert_eq!(header, r#"7; prompt=3; completion=4; model="m-1""#);
//! assert_eq!(SavedTokens::from_header(&header), Some(saved));
//! ```

use std::ops::ControlFlow;

use bytes::Bytes;
use http::HeaderValue;
use http::header::HeaderName;

/// The response header naming the key digest an answer is stored under (hits and
/// misses; see the [module docs](super)).
pub const X_CACHE_KEY: HeaderName = HeaderName::from_static("x-cache-key");

/// The response header of a hit telling the tokens the stored answer's `usage`
/// counted, and its model: `98; prompt=27; completion=71; model="mistral-small-latest"`
/// (an RFC 8941 integer with parameters; the leading number is the total).
pub const X_CACHE_SAVED_TOKENS: HeaderName = HeaderName::from_static("x-cache-saved-tokens");

/// Longest model name kept in [`X_CACHE_SAVED_TOKENS`].
const MAX_MODEL_LEN: usize = 128;

/// Token counts read from a `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`.
    pub prompt_tokens: u64,
    /// `usage.completion_tokens`.
    pub completion_tokens: u64,
    /// `usage.total_tokens`.
    pub total_tokens: u64,
}

/// The tokens a stored answer saves on each hit, and the model that produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SavedTokens {
    /// The answer's `usage`.
    pub usage: Usage,
    /// The answer's `model` member, when it had one (a printable ASCII name of at most
    /// 128 characters without quotes or backslashes; others are left out).
    pub model: Option<String>,
}

impl SavedTokens {
    /// Tokens counted for `model`.
    pub fn new(usage: Usage, model: Option<String>) -> Self {
        SavedTokens {
            usage,
            model: model.filter(|m| valid_model(m)),
        }
    }

    /// Reads the `usage` (and `model`) of a complete answer: a JSON object, or an
    /// event stream (`sse`) whose last event with a `usage` carries them. `None` when
    /// the answer has no `usage` object.
    pub fn from_answer(frames: &[Bytes], sse: bool) -> Option<SavedTokens> {
        if sse {
            return from_events(frames.iter().map(|f| &f[..]));
        }
        match frames {
            [] => None,
            [one] => from_json(one),
            many => from_json(&many.concat()),
        }
    }

    /// The [`X_CACHE_SAVED_TOKENS`] value.
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        let u = &self.usage;
        let mut s = format!(
            "{}; prompt={}; completion={}",
            u.total_tokens, u.prompt_tokens, u.completion_tokens
        );
        if let Some(m) = &self.model {
            s.push_str("; model=\"");
            s.push_str(m);
            s.push('"');
        }
        HeaderValue::from_str(&s).ok()
    }

    /// Parses an [`X_CACHE_SAVED_TOKENS`] value; `None` when it is not one.
    pub fn from_header(value: &HeaderValue) -> Option<SavedTokens> {
        let s = value.to_str().ok()?;
        let mut parts = s.split(';').map(str::trim);
        let total: u64 = parts.next()?.parse().ok()?;
        let mut usage = Usage {
            total_tokens: total,
            ..Usage::default()
        };
        let mut model = None;
        for p in parts {
            let (k, v) = p.split_once('=')?;
            match k.trim() {
                "prompt" => usage.prompt_tokens = v.trim().parse().ok()?,
                "completion" => usage.completion_tokens = v.trim().parse().ok()?,
                "model" => {
                    let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
                    model = Some(v.to_owned()).filter(|m| valid_model(m));
                }
                _ => {}
            }
        }
        Some(SavedTokens { usage, model })
    }
}

/// Printable ASCII without quotes or backslashes (an RFC 8941 string needing no
/// escapes), not empty, at most [`MAX_MODEL_LEN`] bytes.
fn valid_model(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= MAX_MODEL_LEN
        && m.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Reads the token usage from a response body: a JSON object with a `usage`
/// member, or an SSE stream whose events carry one (the last one wins).
///
/// Deserializes only the `usage` object (and `model`): the rest of the document is
/// skipped without building a `serde_json::Value` tree.
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    SavedTokens::from_body(body).map(|s| s.usage)
}

impl SavedTokens {
    /// [`from_answer`](Self::from_answer) of a whole body: a JSON object when it
    /// starts with `{`, an event stream otherwise.
    pub fn from_body(body: &[u8]) -> Option<SavedTokens> {
        if body.trim_ascii_start().starts_with(b"{") {
            from_json(body)
        } else {
            from_events([body])
        }
    }
}

fn from_json(body: &[u8]) -> Option<SavedTokens> {
    let body = body.trim_ascii_start();
    // `usage` usually closes the answer: look in its tail first. No `"usage"`
    // anywhere: no `usage` member, and nothing to parse.
    let tail = body.len().saturating_sub(TAIL);
    let at = match memchr::memmem::rfind(&body[tail..], b"\"usage\"") {
        Some(at) => tail + at,
        None => memchr::memmem::rfind(&body[..tail + 6.min(body.len() - tail)], b"\"usage\"")?,
    };
    located(body, at).or_else(|| serde_json::from_slice::<UsageOnly>(body).ok()?.into_saved())
}

/// How much of an answer's end is searched for `usage` first.
const TAIL: usize = 512;

/// The usual shape read without walking the content (which parsing the whole answer
/// would): the last `"usage"` member (after the choices) and the first `"model"` member
/// (before them), each taken only where its name follows `{` or `,` (inside a string it
/// would follow a backslash). `None` sends the caller to the full parse.
fn located(body: &[u8], usage_at: usize) -> Option<SavedTokens> {
    let usage = member::<RawUsage>(body, usage_at, b"\"usage\"")?;
    let model = match memchr::memmem::find(body, b"\"model\"") {
        Some(at) => Some(member::<serde_json::Value>(body, at, b"\"model\"")?),
        None => None,
    };
    UsageOnly {
        usage: Some(usage),
        model,
    }
    .into_saved()
}

/// The value of the member whose quoted `name` starts at `at`, if the name is a
/// member name there.
fn member<T: serde::de::DeserializeOwned>(body: &[u8], at: usize, name: &[u8]) -> Option<T> {
    let before = body[..at].trim_ascii_end().last()?;
    if !matches!(before, b'{' | b',') {
        return None;
    }
    let rest = body[at + name.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?;
    let mut de = serde_json::Deserializer::from_slice(rest);
    serde::Deserialize::deserialize(&mut de).ok()
}

fn from_events<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Option<SavedTokens> {
    let mut found = None;
    // The crate's one event-stream framing (LF, CRLF or lone-CR line ends).
    crate::sse::for_each_event(frames, |ev| {
        let data = ev.data.trim();
        if data == "[DONE]" || !data.starts_with('{') || !data.contains("\"usage\"") {
            return ControlFlow::Continue(());
        }
        if let Ok(v) = serde_json::from_str::<UsageOnly>(data)
            && let Some(u) = v.into_saved()
        {
            found = Some(u);
        }
        ControlFlow::Continue(())
    });
    found
}

/// The only members of a response this module reads; every other member is skipped
/// by the deserializer.
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<RawUsage>,
    /// Kept as a JSON value so a `model` that is not a string does not fail the rest.
    #[serde(default)]
    model: Option<serde_json::Value>,
}

/// A `usage` object. The counts are kept as JSON values so a count that is not an
/// unsigned integer reads as absent instead of failing the whole object.
#[derive(serde::Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<serde_json::Value>,
    #[serde(default)]
    completion_tokens: Option<serde_json::Value>,
    #[serde(default)]
    total_tokens: Option<serde_json::Value>,
}

impl UsageOnly {
    fn into_saved(self) -> Option<SavedTokens> {
        let usage = self.usage?;
        let count = |v: Option<serde_json::Value>| v.as_ref().and_then(serde_json::Value::as_u64);
        let prompt_tokens = count(usage.prompt_tokens).unwrap_or(0);
        let completion_tokens = count(usage.completion_tokens).unwrap_or(0);
        let total_tokens = count(usage.total_tokens)
            .unwrap_or_else(|| prompt_tokens.saturating_add(completion_tokens));
        let model = match self.model {
            Some(serde_json::Value::String(m)) => Some(m),
            _ => None,
        };
        Some(SavedTokens::new(
            Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens,
            },
            model,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_located_members_agree_with_the_full_parse() {
        let full = |b: &[u8]| serde_json::from_slice::<UsageOnly>(b).ok()?.into_saved();
        for body in [
            &br#"{"id":"1","model":"m-1","choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#[..],
            // A content quoting the member names is skipped (they follow a backslash).
            br#"{"model":"m-2","choices":[{"message":{"content":"say \"model\": 1, \"usage\": {}"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            // `usage` before the content, `model` last.
            br#"{ "usage" : {"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}, "choices":[], "model":"m-3"}"#,
            // A string ending in a quoted name: `x"usage` is content, not a member.
            br#"{"model":"m-4","usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9},"note":"x\"usage\""}"#,
            br#"{"model":7,"usage":{"prompt_tokens":"a","completion_tokens":2}}"#,
        ] {
            let want = full(body);
            assert!(want.is_some());
            assert_eq!(from_json(body), want, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(from_json(br#"{"model":"m","choices":[]}"#), None);
        // `usage` far from the end (outside the tail searched first).
        let long = format!(
            r#"{{"usage":{{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}},"model":"m-5","choices":[{{"message":{{"content":"{}"}}}}]}}"#,
            "a".repeat(3 * TAIL)
        );
        assert_eq!(from_json(long.as_bytes()), full(long.as_bytes()));
        assert_eq!(from_json(long.as_bytes()).unwrap().usage.total_tokens, 5);
    }

    #[test]
    fn usage_from_json_and_sse() {
        let json: &[u8] = include_bytes!("../../tests/fixtures/chat.response.json");
        assert_eq!(
            usage_from_body(json),
            Some(Usage {
                prompt_tokens: 27,
                completion_tokens: 71,
                total_tokens: 98
            })
        );
        let sse: &[u8] = include_bytes!("../../tests/fixtures/chat.stream.sse");
        let usage = usage_from_body(sse).expect("the last chunk carries usage");
        assert!(usage.total_tokens > 0);
        assert_eq!(usage_from_body(b"not json"), None);
        assert_eq!(usage_from_body(br#"{"usage":null}"#), None);
        assert_eq!(usage_from_body(br#"{"usage":3}"#), None);
        assert_eq!(usage_from_body(br#"[{"usage":{"total_tokens":3}}]"#), None);
        // Other members of any shape are skipped; odd counts read as absent.
        assert_eq!(
            usage_from_body(
                br#"{"id":"x","choices":[{"message":{"content":"a \"usage\": {}"}}],"usage":{"prompt_tokens":2,"completion_tokens":1.5,"details":{"a":[1]}}}"#
            ),
            Some(Usage {
                prompt_tokens: 2,
                completion_tokens: 0,
                total_tokens: 2
            })
        );
        assert_eq!(
            usage_from_body(
                b"data: [1]\n\ndata: {\"usage\":{\"total_tokens\":7}}\n\ndata: [DONE]\n\n"
            ),
            Some(Usage {
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 7
            })
        );
        assert_eq!(
            usage_from_body(b"data: {\"usage\":{\"total_tokens\":5}}\r\rdata: [DONE]\r\r")
                .map(|u| u.total_tokens),
            Some(5)
        );
    }

    #[test]
    fn saved_tokens_of_answers_in_frames() {
        let sse: Vec<Bytes> = [
            "data: {\"model\":\"m\",\"choices\":[]}\n\n",
            "data: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":1,",
            "\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n",
        ]
        .into_iter()
        .map(|s: &'static str| Bytes::from_static(s.as_bytes()))
        .collect();
        let saved = SavedTokens::from_answer(&sse, true).unwrap();
        assert_eq!(
            (saved.usage.total_tokens, saved.model.as_deref()),
            (3, Some("m"))
        );
        let json = [
            Bytes::from_static(b"{\"model\":7,\"usage\":"),
            Bytes::from_static(b"{\"prompt_tokens\":4}}"),
        ];
        let saved = SavedTokens::from_answer(&json, false).unwrap();
        assert_eq!(saved.usage.total_tokens, 4);
        assert_eq!(
            saved.model, None,
            "a model that is not a string is left out"
        );
        assert_eq!(SavedTokens::from_answer(&[], false), None);
        assert_eq!(SavedTokens::from_answer(&sse[..1], true), None);
    }

    #[test]
    fn header_round_trip_and_bad_values() {
        let s = SavedTokens::new(
            Usage {
                prompt_tokens: 1,
                completion_tokens: u64::MAX,
                total_tokens: 2,
            },
            Some("a b-1.2".into()),
        );
        let v = s.to_header_value().unwrap();
        assert_eq!(SavedTokens::from_header(&v), Some(s));
        // Names that would need escaping are dropped, not stored.
        for bad in ["", "q\"x", "b\\s", "é", &"x".repeat(129)] {
            assert_eq!(
                SavedTokens::new(Usage::default(), Some(bad.into())).model,
                None
            );
        }
        for bad in ["", "x", "1; prompt", "1; prompt=-1", "1; model=m", "-3"] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert_eq!(SavedTokens::from_header(&v), None, "{bad:?}");
        }
        let v = HeaderValue::from_static("5;prompt=2; other=1");
        let s = SavedTokens::from_header(&v).unwrap();
        assert_eq!((s.usage.total_tokens, s.usage.prompt_tokens), (5, 2));
    }
}
