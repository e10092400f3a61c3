//! Embeddings (`POST /v1/embeddings`): request and response types, with decoding of base64
//! embeddings.
//!
//! With `encoding_format: base64` each embedding is the base64 of its raw little-endian bytes:
//! 4 bytes (`f32`) per value for `float`, one byte per value for `int8`/`uint8`, and bit-packed
//! bytes for `binary` (read as `i8`) and `ubinary` (read as `u8`).
//!
//! # Example
//!
//! ```
//! use mistral_tower::embeddings::{EmbeddingDtype, EmbeddingRequest, EmbeddingResponse, EncodingFormat};
//!
//! let req = EmbeddingRequest::new("mistral-embed", ["a", "b"])
//!     .output_dimension(256)
//!     .encoding_format(EncodingFormat::Base64);
//! assert_eq!(serde_json::to_value(&req)?["input"], serde_json::json!(["a", "b"]));
//!
//! // 1.0f32 and -2.0f32, little-endian, base64-encoded.
//! let res: EmbeddingResponse = serde_json::from_str(
//!     r#"{"id":"e","object":"list","model":"mistral-embed","data":[{"object":"embedding","index":0,"embedding":"AACAPwAAAMA="}]}"#,
//! )?;
//! assert_eq!(res.data[0].embedding.to_f32(&EmbeddingDtype::Float).unwrap(), vec![1.0, -2.0]);
//! # Ok::<(), serde_json::Error>(())
//! ```

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::common::{UsageInfo, null_default, setters, string_enum};

string_enum! {
    /// The data type of the output embeddings (`EmbeddingDtype`).
    EmbeddingDtype {
        /// 32-bit floats (the default).
        Float = "float",
        /// Signed 8-bit integers.
        Int8 = "int8",
        /// Unsigned 8-bit integers.
        Uint8 = "uint8",
        /// Bit-packed, as signed bytes.
        Binary = "binary",
        /// Bit-packed, as unsigned bytes.
        Ubinary = "ubinary",
    }
}

string_enum! {
    /// The format of embeddings in the response (`EncodingFormat`).
    EncodingFormat {
        /// A JSON array of numbers (the default).
        Float = "float",
        /// A base64 string of the raw little-endian bytes.
        Base64 = "base64",
    }
}

/// An embeddings request (`EmbeddingRequest`).
///
/// Every optional field is `None` by default and then not sent. Set fields directly or with the
/// builder-style setters of the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// ID of the model to use.
    pub model: String,
    /// Text to embed (sent as an array).
    #[serde(deserialize_with = "one_or_many")]
    pub input: Vec<String>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The dimension of the output embeddings when feature available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimension: Option<u32>,
    /// The data type of the output embeddings when feature available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dtype: Option<EmbeddingDtype>,
    /// The format of embeddings in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
}

/// Accepts a string or an array of strings.
pub(crate) fn one_or_many<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl EmbeddingRequest {
    /// A request embedding these inputs; every other field unset.
    pub fn new<I, S>(model: impl Into<String>, input: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EmbeddingRequest {
            model: model.into(),
            input: input.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    setters! {
        metadata: Map<String, Value>,
        output_dimension: u32,
        output_dtype: impl EmbeddingDtype,
        encoding_format: impl EncodingFormat,
    }
}

/// An embeddings response (`EmbeddingResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// The response id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The object type, `list`.
    #[serde(default, deserialize_with = "null_default")]
    pub object: String,
    /// The model used.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageInfo>,
    /// One embedding per input, in input order (see `index`).
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<EmbeddingData>,
}

/// One embedding (`EmbeddingResponseData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingData {
    /// The object type, `embedding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The embedding: numbers, or a base64 string with `encoding_format: base64`.
    pub embedding: Embedding,
    /// The index of the input this embeds.
    #[serde(default, deserialize_with = "null_default")]
    pub index: u32,
}

/// An embedding vector as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Embedding {
    /// A JSON array of numbers (integers for the integer dtypes).
    Float(Vec<f32>),
    /// The base64 of the raw little-endian bytes.
    Base64(String),
}

/// Why a base64 embedding could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingDecodeError {
    /// The string is not valid base64.
    #[error("invalid base64 embedding: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The byte length is not a multiple of 4 for `float`.
    #[error("a float embedding needs a multiple of 4 bytes, got {0}")]
    Length(usize),
    /// The dtype is not one this crate knows how to decode.
    #[error("cannot decode embedding dtype {0:?}")]
    UnsupportedDtype(String),
}

impl Embedding {
    /// The raw bytes: the decoded base64, or the `f32` values as little-endian bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmbeddingDecodeError> {
        match self {
            Embedding::Base64(s) => Ok(base64::engine::general_purpose::STANDARD.decode(s)?),
            Embedding::Float(values) => Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }

    /// The values as `f32`, decoding base64 according to the requested `output_dtype`:
    /// `float` is 4 little-endian bytes per value, `int8`/`binary` one signed byte,
    /// `uint8`/`ubinary` one unsigned byte (packed bits are not unpacked).
    pub fn to_f32(&self, dtype: &EmbeddingDtype) -> Result<Vec<f32>, EmbeddingDecodeError> {
        let bytes = match self {
            Embedding::Float(values) => return Ok(values.clone()),
            Embedding::Base64(_) => self.to_bytes()?,
        };
        match dtype {
            EmbeddingDtype::Float => {
                if bytes.len() % 4 != 0 {
                    return Err(EmbeddingDecodeError::Length(bytes.len()));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            }
            EmbeddingDtype::Int8 | EmbeddingDtype::Binary => Ok(bytes
                .iter()
                .map(|b| f32::from(i8::from_le_bytes([*b])))
                .collect()),
            EmbeddingDtype::Uint8 | EmbeddingDtype::Ubinary => {
                Ok(bytes.iter().map(|b| f32::from(*b)).collect())
            }
            EmbeddingDtype::Other(other) => {
                Err(EmbeddingDecodeError::UnsupportedDtype(other.clone()))
            }
        }
    }
}
