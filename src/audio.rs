//! Audio: transcriptions (`/v1/audio/transcriptions`, multipart, from a file, a URL or
//! an uploaded file id; whole or streamed), speech (`/v1/audio/speech`) and voices
//! (`/v1/audio/voices`).
//!
//! A streamed transcription ends with its `transcription.done` event, not with
//! `data: [DONE]`: the [`EventStream`] ends cleanly there (see
//! [`sse::FINAL_EVENT_TYPES`](crate::sse::FINAL_EVENT_TYPES)).
//!
//! # Example
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use mistral_tower::Client;
//! use mistral_tower::audio::{TimestampGranularity, TranscriptionRequest, TranscriptionStreamEvent};
//!
//! # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let req = TranscriptionRequest::path("voxtral-mini-latest", "meeting.mp3")
//!     .await?
//!     .language("en")
//!     .timestamp_granularities(vec![TimestampGranularity::Segment]);
//! let res = client.audio().transcribe(req).await?;
//! println!("{}", res.text);
//!
//! let url = TranscriptionRequest::url("voxtral-mini-latest", "https://example.com/a.mp3");
//! let mut events = client.audio().transcribe_stream(url).await?;
//! while let Some(event) = events.next().await {
//!     if let TranscriptionStreamEvent::TextDelta { text } = event? {
//!         print!("{text}");
//!     }
//! }
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_core::Stream;
use http::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::client::{ApiResponse, EventStream, RequestOptions};
use crate::common::{UsageInfo, null_default, setters, string_enum};
use crate::files::Download;
use crate::multipart::{Form, Part};
use crate::pagination::{BoxFuture, Fetch, Page, Query, path_segment};
use crate::{BoxError, Client, Error, raw};

string_enum! {
    /// A granularity of transcription timestamps (`TimestampGranularity`).
    TimestampGranularity {
        /// Per segment.
        Segment = "segment",
        /// Per word.
        Word = "word",
    }
}

/// The audio to transcribe.
#[derive(Debug)]
pub enum AudioSource {
    /// The audio itself, sent as the `file` part.
    File(Part),
    /// A URL the API fetches (`file_url`).
    Url(String),
    /// A file uploaded to `/v1/files` (`file_id`).
    FileId(String),
}

/// A transcription request (`AudioTranscriptionRequest`, sent as multipart).
#[derive(Debug)]
pub struct TranscriptionRequest {
    /// The model, e.g. `voxtral-mini-latest`.
    pub model: String,
    /// The audio.
    pub source: AudioSource,
    /// The language of the audio (two letters, e.g. `en`); it can boost accuracy.
    pub language: Option<String>,
    /// The sampling temperature.
    pub temperature: Option<f64>,
    /// Whether to tell speakers apart.
    pub diarize: Option<bool>,
    /// Words or phrases (without spaces or commas) to bias the transcription towards.
    pub context_bias: Option<Vec<String>>,
    /// Which timestamps to include.
    pub timestamp_granularities: Option<Vec<TimestampGranularity>>,
}

impl TranscriptionRequest {
    /// A request for audio held in memory.
    pub fn bytes(
        model: impl Into<String>,
        file_name: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        let file_name = file_name.into();
        let mime = crate::multipart::guess_content_type(&file_name);
        Self::new(
            model,
            AudioSource::File(Part::bytes(data).file_name(file_name).mime(mime)),
        )
    }

    /// A request for an audio file read from disk while it is sent.
    ///
    /// # Errors
    ///
    /// When the file's metadata cannot be read.
    pub async fn path(model: impl Into<String>, path: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self::new(model, AudioSource::File(Part::file(path).await?)))
    }

    /// A request for audio read from a stream while it is sent.
    pub fn stream<S, E>(
        model: impl Into<String>,
        file_name: impl Into<String>,
        stream: S,
        len: Option<u64>,
    ) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let file_name = file_name.into();
        let mime = crate::multipart::guess_content_type(&file_name);
        Self::new(
            model,
            AudioSource::File(Part::stream(stream, len).file_name(file_name).mime(mime)),
        )
    }

    /// A request for audio at a URL.
    pub fn url(model: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(model, AudioSource::Url(url.into()))
    }

    /// A request for a file uploaded to `/v1/files`.
    pub fn file_id(model: impl Into<String>, file_id: impl Into<String>) -> Self {
        Self::new(model, AudioSource::FileId(file_id.into()))
    }

    /// A request for this source.
    pub fn new(model: impl Into<String>, source: AudioSource) -> Self {
        TranscriptionRequest {
            model: model.into(),
            source,
            language: None,
            temperature: None,
            diarize: None,
            context_bias: None,
            timestamp_granularities: None,
        }
    }

    setters! {
        language: impl String,
        temperature: f64,
        diarize: bool,
        context_bias: Vec<String>,
        timestamp_granularities: Vec<TimestampGranularity>,
    }

    /// The multipart form sent, with `stream` set as given. List fields repeat their
    /// name, one part per value.
    pub fn into_form(self, stream: bool) -> Form {
        let mut form = Form::new().text("model", self.model);
        form = match self.source {
            AudioSource::File(part) => form.part("file", part),
            AudioSource::Url(url) => form.text("file_url", url),
            AudioSource::FileId(id) => form.text("file_id", id),
        };
        if let Some(l) = self.language {
            form = form.text("language", l);
        }
        if let Some(t) = self.temperature {
            form = form.text("temperature", t.to_string());
        }
        if stream {
            form = form.text("stream", "true");
        }
        if let Some(d) = self.diarize {
            form = form.text("diarize", d.to_string());
        }
        for word in self.context_bias.unwrap_or_default() {
            form = form.text("context_bias", word);
        }
        for g in self.timestamp_granularities.unwrap_or_default() {
            form = form.text("timestamp_granularities", g.as_str());
        }
        form
    }
}

/// A timed segment of a transcription (`TranscriptionSegmentChunk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionSegment {
    /// The text.
    #[serde(default, deserialize_with = "null_default")]
    pub text: String,
    /// Start, in seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub start: f64,
    /// End, in seconds.
    #[serde(default, deserialize_with = "null_default")]
    pub end: f64,
    /// A confidence score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The speaker (with `diarize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<String>,
}

/// A transcription (`TranscriptionResponse`, and the `transcription.done` event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionResponse {
    /// The model.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// The whole text.
    #[serde(default, deserialize_with = "null_default")]
    pub text: String,
    /// The language of the audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Timed segments (with `timestamp_granularities`).
    #[serde(default, deserialize_with = "null_default")]
    pub segments: Vec<TranscriptionSegment>,
    /// Token and audio usage.
    #[serde(default, deserialize_with = "null_default")]
    pub usage: UsageInfo,
}

/// An event of a streamed transcription (`TranscriptionStreamEvents`), by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscriptionStreamEvent {
    /// The detected language (`transcription.language`).
    Language {
        /// Two letters.
        audio_language: String,
    },
    /// More text (`transcription.text.delta`).
    TextDelta {
        /// The new text.
        text: String,
    },
    /// A timed segment (`transcription.segment`).
    Segment(TranscriptionSegment),
    /// The whole transcription, the last event (`transcription.done`).
    Done(TranscriptionResponse),
    /// An event type this version does not know, kept as sent.
    Unknown(Value),
}

impl<'de> Deserialize<'de> for TranscriptionStreamEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let err = serde::de::Error::custom;
        Ok(match ty {
            "transcription.language" => TranscriptionStreamEvent::Language {
                audio_language: v
                    .get("audio_language")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            "transcription.text.delta" => TranscriptionStreamEvent::TextDelta {
                text: v
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            "transcription.segment" => {
                TranscriptionStreamEvent::Segment(serde_json::from_value(v).map_err(err)?)
            }
            "transcription.done" => {
                TranscriptionStreamEvent::Done(serde_json::from_value(v).map_err(err)?)
            }
            _ => TranscriptionStreamEvent::Unknown(v),
        })
    }
}

string_enum! {
    /// The audio format of generated speech (`SpeechOutputFormat`).
    SpeechOutputFormat {
        /// Raw PCM.
        Pcm = "pcm",
        /// WAV.
        Wav = "wav",
        /// MP3 (the default).
        Mp3 = "mp3",
        /// FLAC.
        Flac = "flac",
        /// Opus.
        Opus = "opus",
    }
}

/// A speech generation request (`SpeechRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpeechRequest {
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Your metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Whether to stream the audio (set by [`Audio::speech_stream`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// A key for Mistral's server-side prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// The preset or custom voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
    /// A reference audio to imitate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_audio: Option<String>,
    /// The text to speak.
    pub input: String,
    /// The audio format (the API's default is mp3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<SpeechOutputFormat>,
}

impl SpeechRequest {
    /// Speaks `input`.
    pub fn new(input: impl Into<String>) -> Self {
        SpeechRequest {
            input: input.into(),
            ..SpeechRequest::default()
        }
    }

    setters! {
        model: impl String,
        metadata: Map<String, Value>,
        stream: bool,
        prompt_cache_key: impl String,
        voice_id: impl String,
        ref_audio: impl String,
        response_format: SpeechOutputFormat,
    }
}

/// Generated speech (`SpeechResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechResponse {
    /// The audio, base64.
    #[serde(default, deserialize_with = "null_default")]
    pub audio_data: String,
}

impl SpeechResponse {
    /// The audio bytes.
    ///
    /// # Errors
    ///
    /// When `audio_data` is not base64.
    pub fn audio(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.audio_data)
    }
}

/// An event of streamed speech, by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeechStreamEvent {
    /// More audio, base64 (`speech.audio.delta`).
    AudioDelta {
        /// The audio chunk, base64.
        audio_data: String,
    },
    /// The end, with usage (`speech.audio.done`).
    Done {
        /// Token usage.
        usage: UsageInfo,
    },
    /// An event type this version does not know, kept as sent.
    Unknown(Value),
}

impl<'de> Deserialize<'de> for SpeechStreamEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        Ok(match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "speech.audio.delta" => SpeechStreamEvent::AudioDelta {
                audio_data: v
                    .get("audio_data")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            "speech.audio.done" => SpeechStreamEvent::Done {
                usage: v
                    .get("usage")
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(serde::de::Error::custom)?
                    .unwrap_or_default(),
            },
            _ => SpeechStreamEvent::Unknown(v),
        })
    }
}

/// A voice (`VoiceResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Voice {
    /// The name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// A short unique name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Languages the voice speaks.
    #[serde(default, deserialize_with = "null_default")]
    pub languages: Vec<String>,
    /// The gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// The age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A display color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Days the sample is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_notice: Option<u32>,
    /// The voice id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// Creation date-time (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// The owner (`None` for presets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Seconds trimmed from the sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trimmed_seconds: Option<f64>,
}

/// One page of voices (`VoiceListResponse`), as sent on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceList {
    /// The voices.
    #[serde(default, deserialize_with = "null_default")]
    pub items: Vec<Voice>,
    /// Voices in all.
    #[serde(default, deserialize_with = "null_default")]
    pub total: u64,
    /// This page.
    #[serde(default, deserialize_with = "null_default")]
    pub page: u64,
    /// The page size.
    #[serde(default, deserialize_with = "null_default")]
    pub page_size: u64,
    /// Pages in all.
    #[serde(default, deserialize_with = "null_default")]
    pub total_pages: u64,
}

string_enum! {
    /// Which voices [`Voices::list`] returns (`type`).
    VoiceKind {
        /// Presets and custom voices (the default).
        All = "all",
        /// Custom voices.
        Custom = "custom",
        /// Presets.
        Preset = "preset",
    }
}

/// The query of [`Voices::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceListQuery {
    /// Voices per page (1 to 100; the API's default is 10).
    pub limit: Option<u64>,
    /// Voices to skip.
    pub offset: Option<u64>,
    /// Which voices.
    pub kind: Option<VoiceKind>,
}

impl VoiceListQuery {
    /// The API's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        limit: u64,
        offset: u64,
        kind: VoiceKind,
    }

    fn to_path(&self) -> String {
        let mut q = Query::new();
        q.opt("limit", self.limit)
            .opt("offset", self.offset)
            .opt("type", self.kind.as_ref());
        q.to_path("/v1/audio/voices")
    }
}

/// A new custom voice (`VoiceCreateRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceCreateRequest {
    /// The name.
    pub name: String,
    /// A short unique name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Languages the voice speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// The gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// The age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A display color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// A description (up to 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Days the sample is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_notice: Option<u32>,
    /// The sample audio, base64.
    pub sample_audio: String,
    /// The sample's file name (for its extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_filename: Option<String>,
}

impl VoiceCreateRequest {
    /// A voice named `name` from sample audio bytes (base64-encoded here).
    pub fn new(name: impl Into<String>, sample: &[u8]) -> Self {
        VoiceCreateRequest {
            name: name.into(),
            sample_audio: base64::engine::general_purpose::STANDARD.encode(sample),
            ..VoiceCreateRequest::default()
        }
    }

    setters! {
        slug: impl String,
        languages: Vec<String>,
        gender: impl String,
        age: u32,
        tags: Vec<String>,
        color: impl String,
        description: impl String,
        retention_notice: u32,
        sample_filename: impl String,
    }
}

/// Changes to a voice (`VoiceUpdateRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceUpdateRequest {
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Languages the voice speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// The gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// The age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl VoiceUpdateRequest {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        name: impl String,
        languages: Vec<String>,
        gender: impl String,
        age: u32,
        tags: Vec<String>,
        description: impl String,
    }
}

impl Client {
    /// Audio: transcriptions, speech and voices (`/v1/audio/...`).
    pub fn audio(&self) -> Audio<'_> {
        Audio {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Audio: transcriptions, speech and voices (`/v1/audio/...`).
#[derive(Debug, Clone)]
pub struct Audio<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl<'a> Audio<'a> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Transcribes audio (`POST /v1/audio/transcriptions`, multipart).
    pub async fn transcribe(
        &self,
        req: TranscriptionRequest,
    ) -> Result<ApiResponse<TranscriptionResponse>, Error> {
        let req = raw::form_request(
            Method::POST,
            "/v1/audio/transcriptions",
            req.into_form(false),
            "application/json",
        )?;
        raw::call(self.client, req, &self.options).await
    }

    /// Streams a transcription (`stream: true`): events until `transcription.done`,
    /// where the stream ends cleanly (no `data: [DONE]` is expected).
    pub async fn transcribe_stream(
        &self,
        req: TranscriptionRequest,
    ) -> Result<EventStream<TranscriptionStreamEvent>, Error> {
        let req = raw::form_request(
            Method::POST,
            "/v1/audio/transcriptions",
            req.into_form(true),
            "text/event-stream",
        )?;
        raw::stream(self.client, req, &self.options).await
    }

    /// Generates speech (`POST /v1/audio/speech`). A `stream: Some(true)` is cleared.
    pub async fn speech(
        &self,
        mut req: SpeechRequest,
    ) -> Result<ApiResponse<SpeechResponse>, Error> {
        if req.stream == Some(true) {
            req.stream = None;
        }
        self.client
            .send_json_with_options(Method::POST, "/v1/audio/speech", Some(&req), &self.options)
            .await
    }

    /// Streams generated speech (`stream: true`): audio deltas until
    /// `speech.audio.done`.
    pub async fn speech_stream(
        &self,
        mut req: SpeechRequest,
    ) -> Result<EventStream<SpeechStreamEvent>, Error> {
        req.stream = Some(true);
        self.client
            .send_stream_with_options("/v1/audio/speech", &req, &self.options)
            .await
    }

    /// Voices (`/v1/audio/voices`), with this handle's options.
    pub fn voices(&self) -> Voices<'a> {
        Voices {
            client: self.client,
            options: self.options.clone(),
        }
    }
}

/// Voices (`/v1/audio/voices`).
#[derive(Debug, Clone)]
pub struct Voices<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Voices<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Lists voices (`GET /v1/audio/voices`): one page, whose
    /// [`into_stream`](Page::into_stream) walks every following page.
    pub async fn list(&self, query: VoiceListQuery) -> Result<ApiResponse<Page<Voice>>, Error> {
        list_voices(self.client.clone(), query, self.options.clone()).await
    }

    /// Creates a custom voice (`POST /v1/audio/voices`).
    pub async fn create(&self, req: &VoiceCreateRequest) -> Result<ApiResponse<Voice>, Error> {
        self.client
            .send_json_with_options(Method::POST, "/v1/audio/voices", Some(req), &self.options)
            .await
    }

    /// Gets a voice (`GET /v1/audio/voices/{voice_id}`).
    pub async fn get(&self, voice_id: &str) -> Result<ApiResponse<Voice>, Error> {
        let path = format!("/v1/audio/voices/{}", path_segment(voice_id));
        self.client
            .send_json_with_options::<(), _>(Method::GET, &path, None, &self.options)
            .await
    }

    /// Updates a voice (`PATCH /v1/audio/voices/{voice_id}`).
    pub async fn update(
        &self,
        voice_id: &str,
        req: &VoiceUpdateRequest,
    ) -> Result<ApiResponse<Voice>, Error> {
        let path = format!("/v1/audio/voices/{}", path_segment(voice_id));
        self.client
            .send_json_with_options(Method::PATCH, &path, Some(req), &self.options)
            .await
    }

    /// Deletes a voice (`DELETE /v1/audio/voices/{voice_id}`); answers the deleted
    /// voice. A `204` without a body is a success (the voice then has only its id).
    pub async fn delete(&self, voice_id: &str) -> Result<ApiResponse<Voice>, Error> {
        let path = format!("/v1/audio/voices/{}", path_segment(voice_id));
        let req = raw::empty_request(Method::DELETE, &path, "application/json")?;
        let mut res: ApiResponse<Voice> =
            raw::call_allow_empty(self.client, req, &self.options).await?;
        if res.id.is_empty() {
            res.id = voice_id.to_owned();
        }
        Ok(res)
    }

    /// Downloads a voice's sample audio (`GET /v1/audio/voices/{voice_id}/sample`) as
    /// a streamed body.
    pub async fn sample(&self, voice_id: &str) -> Result<Download, Error> {
        let path = format!("/v1/audio/voices/{}/sample", path_segment(voice_id));
        let req = raw::empty_request(Method::GET, &path, "audio/wav")?;
        Ok(Download::new(
            raw::send_checked(self.client, req, &self.options).await?,
        ))
    }
}

fn list_voices(
    client: Client,
    query: VoiceListQuery,
    options: RequestOptions,
) -> BoxFuture<Result<ApiResponse<Page<Voice>>, Error>> {
    Box::pin(async move {
        let res: ApiResponse<VoiceList> = client
            .send_json_with_options::<(), _>(Method::GET, &query.to_path(), None, &options)
            .await?;
        let limit = query.limit.unwrap_or(10).max(1);
        let offset = query.offset.unwrap_or(0);
        let fetch: Fetch<Voice> = Arc::new(move |n| {
            let client = client.clone();
            // page `n` of this query: `n` pages of `limit` after the first offset
            let query = query.clone().offset(offset % limit + n * limit);
            let options = options.clone();
            Box::pin(async move { Ok(list_voices(client, query, options).await?.into_data()) })
        });
        // Page `p` holds the voices from `offset % limit + p * limit`: counted from
        // there, `total` is what lies past that first remainder.
        let skew = offset % limit;
        Ok(res.map(|l| {
            Page::new(
                l.items,
                Some(l.total.saturating_sub(skew)),
                offset / limit,
                limit,
            )
            .with_fetch(fetch)
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_read_by_type() {
        let e: TranscriptionStreamEvent =
            serde_json::from_str(r#"{"type":"transcription.text.delta","text":"Hi"}"#).unwrap();
        assert_eq!(e, TranscriptionStreamEvent::TextDelta { text: "Hi".into() });
        let e: TranscriptionStreamEvent = serde_json::from_str(
            r#"{"type":"transcription.done","model":"v","text":"Hi","language":"en","usage":{"prompt_tokens":1}}"#,
        )
        .unwrap();
        assert!(matches!(e, TranscriptionStreamEvent::Done(ref r) if r.text == "Hi"));
        let e: TranscriptionStreamEvent =
            serde_json::from_str(r#"{"type":"transcription.new","x":1}"#).unwrap();
        assert!(matches!(e, TranscriptionStreamEvent::Unknown(_)));
        let e: SpeechStreamEvent =
            serde_json::from_str(r#"{"type":"speech.audio.done","usage":{"total_tokens":3}}"#)
                .unwrap();
        assert!(matches!(e, SpeechStreamEvent::Done { ref usage } if usage.total_tokens == 3));
    }

    #[test]
    fn speech_request_writes_only_what_was_set() {
        let r = SpeechRequest::new("Hello").voice_id("v1");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"input": "Hello", "voice_id": "v1"})
        );
    }
}
