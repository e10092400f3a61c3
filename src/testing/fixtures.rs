//! Canned bodies in the shapes of Mistral's API, written by this project.
//!
//! [`FakeMistral`](super::FakeMistral) serves them; tests can assert against them.
//! The files live in the repository's `tests/fixtures/` (its README lists them).

macro_rules! fixture {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub const $name: &str = include_str!(concat!("../../tests/fixtures/", $file));
    };
}

fixture!(
    /// A chat completion request.
    CHAT_REQUEST, "chat.request.json"
);
fixture!(
    /// The answer to [`CHAT_REQUEST`] (`tool_calls: null`, `prefix: false`).
    CHAT_RESPONSE, "chat.response.json"
);
fixture!(
    /// A streamed answer as the wire sends it: `data:` events separated by blank
    /// lines, the last chunk carrying `finish_reason` and `usage`, then `data: [DONE]`.
    /// Its deltas spell [`CHAT_STREAM_TEXT`].
    CHAT_STREAM, "chat.stream.sse"
);
/// The text that the deltas of [`CHAT_STREAM`] spell.
pub const CHAT_STREAM_TEXT: &str = "Water boils at 100 °C.";
fixture!(
    /// A chat answer with `finish_reason: "tool_calls"`; `arguments` is a JSON string.
    TOOL_CALL_RESPONSE, "tool-call.response.json"
);
fixture!(
    /// A chat answer whose usage carries `prompt_tokens_details.cached_tokens`.
    PROMPT_CACHE_RESPONSE, "prompt-cache.response.json"
);
fixture!(
    /// An embeddings answer with two vectors.
    EMBEDDINGS_RESPONSE, "embeddings.response.json"
);
fixture!(
    /// The `{object, message, type, param, code}` error envelope (a 400).
    ERROR_INVALID_REQUEST, "error.invalid-request.json"
);
fixture!(
    /// A 400 whose `message` is an object with a `detail` list.
    ERROR_VALIDATION_DETAIL, "error.validation-detail.json"
);
fixture!(
    /// A 400 with a string `message` and a numeric-string `code`.
    ERROR_STRING_MESSAGE, "error.string-message.json"
);
fixture!(
    /// A 401 in the `{"detail": ...}` shape.
    ERROR_401, "error.401.json"
);
fixture!(
    /// A 400 for an invalid model, code `1500`.
    ERROR_INVALID_MODEL, "error.invalid-model.json"
);
fixture!(
    /// An older 429 body: `{"message": ...}` only.
    ERROR_429_LEGACY, "error.429-legacy.json"
);
fixture!(
    /// A current 429 body: `type: rate_limited`, `code: "1300"`, `raw_status_code`.
    ERROR_429, "error.429.json"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fixtures_parse() {
        for f in [
            CHAT_REQUEST,
            CHAT_RESPONSE,
            TOOL_CALL_RESPONSE,
            PROMPT_CACHE_RESPONSE,
            EMBEDDINGS_RESPONSE,
            ERROR_INVALID_REQUEST,
            ERROR_VALIDATION_DETAIL,
            ERROR_STRING_MESSAGE,
            ERROR_401,
            ERROR_INVALID_MODEL,
            ERROR_429_LEGACY,
            ERROR_429,
        ] {
            serde_json::from_str::<serde_json::Value>(f).unwrap();
        }
    }

    #[test]
    fn stream_deltas_spell_the_text() {
        let mut text = String::new();
        for event in CHAT_STREAM.split("\n\n").filter(|e| !e.trim().is_empty()) {
            let data = event.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
        assert_eq!(text, CHAT_STREAM_TEXT);
        assert!(CHAT_STREAM.ends_with("data: [DONE]\n\n"));
    }
}
