//! Batch inference (`/v1/batch/jobs`): create a job from input files or inline
//! requests, list, get, cancel, delete; [`Batch::wait`] polls with backoff until a
//! terminal status, and [`Batch::results`] reads the output and error files as typed
//! JSONL [`BatchResult`]s.
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::Client;
//! use mistral_tower::batch::{ApiEndpoint, BatchRequest, CreateBatchJobRequest, WaitOptions};
//! use mistral_tower::chat::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage};
//!
//! # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let requests = ["Capital of France?", "Capital of Italy?"]
//!     .iter()
//!     .enumerate()
//!     .map(|(i, q)| {
//!         let req = ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user(*q)]);
//!         BatchRequest::new(i.to_string(), &req)
//!     })
//!     .collect::<Result<Vec<_>, _>>()?;
//! let job = client
//!     .batch()
//!     .create(&CreateBatchJobRequest::inline(ApiEndpoint::ChatCompletions, requests))
//!     .await?;
//! let job = client.batch().wait(&job.id, WaitOptions::default()).await?;
//! for result in client.batch().results::<ChatCompletionResponse>(&job).await? {
//!     match result.outcome {
//!         Ok(answer) => println!("{:?}: {}", result.custom_id, answer.text()),
//!         Err(e) => println!("{:?} failed: {e}", result.custom_id),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{ApiResponse, RequestOptions};
use crate::common::{null_default, setters, string_enum};
use crate::error::{ApiError, TimeoutError, TimeoutKind};
use crate::pagination::{BoxFuture, Fetch, Page, Query, path_segment};
use crate::{Client, Error, raw};

string_enum! {
    /// The status of a batch job (`BatchJobStatus`).
    BatchJobStatus {
        /// Waiting to start.
        Queued = "QUEUED",
        /// Running.
        Running = "RUNNING",
        /// Done; the results are in the output file.
        Success = "SUCCESS",
        /// Failed.
        Failed = "FAILED",
        /// Stopped at its timeout.
        TimeoutExceeded = "TIMEOUT_EXCEEDED",
        /// A cancellation was asked for.
        CancellationRequested = "CANCELLATION_REQUESTED",
        /// Cancelled.
        Cancelled = "CANCELLED",
    }
}

impl BatchJobStatus {
    /// Whether the job will not change any more (success, failure, timeout,
    /// cancelled; an unknown status counts as terminal).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            BatchJobStatus::Queued
                | BatchJobStatus::Running
                | BatchJobStatus::CancellationRequested
        )
    }
}

string_enum! {
    /// The endpoint a batch runs against (`ApiEndpoint`).
    ApiEndpoint {
        /// Chat completions.
        ChatCompletions = "/v1/chat/completions",
        /// Embeddings.
        Embeddings = "/v1/embeddings",
        /// FIM completions.
        FimCompletions = "/v1/fim/completions",
        /// Moderations.
        Moderations = "/v1/moderations",
        /// Chat moderations.
        ChatModerations = "/v1/chat/moderations",
        /// OCR.
        Ocr = "/v1/ocr",
        /// Classifications.
        Classifications = "/v1/classifications",
        /// Chat classifications.
        ChatClassifications = "/v1/chat/classifications",
        /// Conversations.
        Conversations = "/v1/conversations",
        /// Audio transcriptions.
        AudioTranscriptions = "/v1/audio/transcriptions",
    }
}

/// One request of a batch (`BatchRequest`): a body as the endpoint takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Your id for the request, echoed in its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    /// The request body.
    #[serde(default)]
    pub body: Map<String, Value>,
}

impl BatchRequest {
    /// A request from any typed request (a `ChatCompletionRequest`, an
    /// `EmbeddingRequest`, ...).
    ///
    /// # Errors
    ///
    /// When `body` does not serialize to a JSON object.
    pub fn new(custom_id: impl Into<String>, body: &impl Serialize) -> Result<Self, Error> {
        match serde_json::to_value(body).map_err(Error::request)? {
            Value::Object(body) => Ok(BatchRequest {
                custom_id: Some(custom_id.into()),
                body,
            }),
            _ => Err(Error::request("a batch request body must be a JSON object")),
        }
    }

    /// The JSONL line of this request, for an input file.
    pub fn to_jsonl_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a JSON object serializes");
        s.push('\n');
        s
    }
}

/// Creates a batch job (`CreateBatchJobRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateBatchJobRequest {
    /// Input `.jsonl` files (one [`BatchRequest`] per line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_files: Option<Vec<String>>,
    /// Inline requests (up to 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Vec<BatchRequest>>,
    /// The endpoint to run the requests against.
    pub endpoint: ApiEndpoint,
    /// The model (unless the requests name one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// An agent of the deprecated agents API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Your metadata (string values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The timeout of the job in hours (1 to 168; the API's default is 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_hours: Option<u32>,
}

impl CreateBatchJobRequest {
    /// A job over uploaded input files.
    pub fn from_files<I, S>(endpoint: ApiEndpoint, input_files: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CreateBatchJobRequest {
            input_files: Some(input_files.into_iter().map(Into::into).collect()),
            requests: None,
            endpoint,
            model: None,
            agent_id: None,
            metadata: None,
            timeout_hours: None,
        }
    }

    /// A job over inline requests.
    pub fn inline(endpoint: ApiEndpoint, requests: Vec<BatchRequest>) -> Self {
        CreateBatchJobRequest {
            input_files: None,
            requests: Some(requests),
            ..CreateBatchJobRequest::from_files(endpoint, Vec::<String>::new())
        }
    }

    setters! {
        model: impl String,
        agent_id: impl String,
        metadata: Map<String, Value>,
        timeout_hours: u32,
    }
}

/// An error count of a job (`BatchError`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    /// The message.
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    /// How many requests failed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// A batch job (`BatchJob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchJob {
    /// The job id.
    pub id: String,
    /// The object type, `batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The input files.
    #[serde(default, deserialize_with = "null_default")]
    pub input_files: Vec<String>,
    /// Your metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The endpoint the requests run against.
    #[serde(default = "unknown_endpoint")]
    pub endpoint: ApiEndpoint,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The results file, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
    /// The errors file, when some requests failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_file: Option<String>,
    /// Error counts.
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<BatchError>,
    /// The results inline (`get` with `inline`), each a [`BatchResult`] line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<Value>>,
    /// The status.
    pub status: BatchJobStatus,
    /// Unix timestamp (seconds) of the creation.
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: u64,
    /// Requests in the job.
    #[serde(default, deserialize_with = "null_default")]
    pub total_requests: u64,
    /// Requests done.
    #[serde(default, deserialize_with = "null_default")]
    pub completed_requests: u64,
    /// Requests that succeeded.
    #[serde(default, deserialize_with = "null_default")]
    pub succeeded_requests: u64,
    /// Requests that failed.
    #[serde(default, deserialize_with = "null_default")]
    pub failed_requests: u64,
    /// Unix timestamp (seconds) of the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Unix timestamp (seconds) of the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
}

fn unknown_endpoint() -> ApiEndpoint {
    ApiEndpoint::Other(String::new())
}

/// One page of batch jobs (`ListBatchJobsResponse`), as sent on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchJobList {
    /// The jobs.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<BatchJob>,
    /// The object type, `list`.
    #[serde(default, deserialize_with = "null_default")]
    pub object: String,
    /// The total number of jobs matching the filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The result of deleting a job (`DeleteBatchJobResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBatchJobResponse {
    /// The job id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The object type, `batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The deletion status (`true` for a bodiless success).
    #[serde(default = "yes")]
    pub deleted: bool,
}

fn yes() -> bool {
    true
}

string_enum! {
    /// The order of [`Batch::list`] (`order_by`).
    BatchOrder {
        /// Oldest first.
        Created = "created",
        /// Newest first (the API's default).
        CreatedDesc = "-created",
    }
}

/// Filters and pagination of [`Batch::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchListQuery {
    /// The page, from 0.
    pub page: Option<u64>,
    /// The page size (the API's default is 100).
    pub page_size: Option<u64>,
    /// Only jobs of this model.
    pub model: Option<String>,
    /// Only jobs of this agent.
    pub agent_id: Option<String>,
    /// Only jobs with this metadata.
    pub metadata: Option<Map<String, Value>>,
    /// Only jobs created after this date-time (RFC 3339).
    pub created_after: Option<String>,
    /// Only your own jobs.
    pub created_by_me: Option<bool>,
    /// Only jobs in these statuses.
    pub status: Option<Vec<BatchJobStatus>>,
    /// The order.
    pub order_by: Option<BatchOrder>,
}

impl BatchListQuery {
    /// No filter, the API's default page.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        page: u64,
        page_size: u64,
        model: impl String,
        agent_id: impl String,
        metadata: Map<String, Value>,
        created_after: impl String,
        created_by_me: bool,
        status: Vec<BatchJobStatus>,
        order_by: BatchOrder,
    }

    fn to_path(&self) -> String {
        let mut q = Query::new();
        q.opt("page", self.page)
            .opt("page_size", self.page_size)
            .opt("model", self.model.as_deref())
            .opt("agent_id", self.agent_id.as_deref())
            .opt(
                "metadata",
                self.metadata
                    .as_ref()
                    .map(|m| Value::Object(m.clone()).to_string()),
            )
            .opt("created_after", self.created_after.as_deref())
            .opt("created_by_me", self.created_by_me)
            .list("status", self.status.as_deref())
            .opt("order_by", self.order_by.as_ref());
        q.to_path("/v1/batch/jobs")
    }
}

/// How [`Batch::wait`] polls: exponential backoff from `initial` to `max`, for at
/// most `timeout`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitOptions {
    /// The first pause (default 1 s).
    pub initial: Duration,
    /// The longest pause (default 30 s).
    pub max: Duration,
    /// The growth of the pause (default 2).
    pub factor: f64,
    /// Give up after this long (default: never).
    pub timeout: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            factor: 2.0,
            timeout: None,
        }
    }
}

impl WaitOptions {
    /// Pauses from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        WaitOptions {
            initial,
            max,
            ..WaitOptions::default()
        }
    }

    /// Gives up after `timeout` (an error with [`Error::is_timeout`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A failed request of a batch: its status and error body.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItemError {
    /// The HTTP status of the request, when it got one.
    pub status_code: Option<u16>,
    /// The parsed API error, when the body is one.
    pub api_error: Option<ApiError>,
    /// The error as sent: the response body, or the line's `error`.
    pub body: Value,
}

impl fmt::Display for BatchItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.status_code {
            write!(f, "status {s}: ")?;
        }
        match &self.api_error {
            Some(e) => f.write_str(&e.message),
            None => write!(f, "{}", self.body),
        }
    }
}

impl std::error::Error for BatchItemError {}

/// One line of a batch's output or error file: the answer to one request, typed
/// `T` (`ChatCompletionResponse`, `EmbeddingResponse`, ...), or its error.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult<T> {
    /// The line's id.
    pub id: Option<String>,
    /// The request's `custom_id`.
    pub custom_id: Option<String>,
    /// The answer, or the error.
    pub outcome: Result<T, BatchItemError>,
}

impl<T: DeserializeOwned> BatchResult<T> {
    /// Reads one line (`{"id", "custom_id", "response": {"status_code", "body"},
    /// "error"}`). A 2xx body that does not decode as `T` is an error.
    pub fn from_value(line: Value) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Line {
            #[serde(default)]
            id: Option<String>,
            #[serde(default)]
            custom_id: Option<String>,
            #[serde(default)]
            response: Option<Resp>,
            #[serde(default)]
            error: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            status_code: Option<u16>,
            #[serde(default)]
            body: Value,
        }
        let line: Line = serde_json::from_value(line)?;
        let failed = |status_code, body: Value| BatchItemError {
            status_code,
            api_error: ApiError::from_value(body.clone()),
            body,
        };
        let outcome = match (line.response, line.error) {
            (_, Some(e)) if !e.is_null() => Err(failed(None, e)),
            (Some(r), _) if r.status_code.is_none_or(|s| (200..300).contains(&s)) => {
                Ok(serde_json::from_value::<T>(r.body)?)
            }
            (Some(r), _) => Err(failed(r.status_code, r.body)),
            (None, _) => Err(failed(None, Value::Null)),
        };
        Ok(BatchResult {
            id: line.id,
            custom_id: line.custom_id,
            outcome,
        })
    }

    /// Reads a JSONL file of result lines (blank lines skipped).
    pub fn parse_jsonl(bytes: &[u8]) -> Result<Vec<Self>, serde_json::Error> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(|l| Self::from_value(serde_json::from_slice(l)?))
            .collect()
    }
}

impl Client {
    /// Batch inference (`/v1/batch/jobs`).
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Batch inference (`/v1/batch/jobs`).
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Batch<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates a job (`POST /v1/batch/jobs`).
    pub async fn create(
        &self,
        req: &CreateBatchJobRequest,
    ) -> Result<ApiResponse<BatchJob>, Error> {
        self.client
            .send_json_with_options(Method::POST, "/v1/batch/jobs", Some(req), &self.options)
            .await
    }

    /// Lists jobs (`GET /v1/batch/jobs`): one page, whose
    /// [`into_stream`](Page::into_stream) walks every following page.
    pub async fn list(&self, query: BatchListQuery) -> Result<ApiResponse<Page<BatchJob>>, Error> {
        list_page(self.client.clone(), query, self.options.clone()).await
    }

    /// Gets a job (`GET /v1/batch/jobs/{job_id}`).
    pub async fn get(&self, job_id: &str) -> Result<ApiResponse<BatchJob>, Error> {
        let path = format!("/v1/batch/jobs/{}", path_segment(job_id));
        self.client
            .send_json_with_options::<(), _>(Method::GET, &path, None, &self.options)
            .await
    }

    /// Gets a job with its results inline in [`BatchJob::outputs`]
    /// (`GET /v1/batch/jobs/{job_id}?inline=true`).
    pub async fn get_inline(&self, job_id: &str) -> Result<ApiResponse<BatchJob>, Error> {
        let path = format!("/v1/batch/jobs/{}?inline=true", path_segment(job_id));
        self.client
            .send_json_with_options::<(), _>(Method::GET, &path, None, &self.options)
            .await
    }

    /// Asks for a job's cancellation (`POST /v1/batch/jobs/{job_id}/cancel`).
    pub async fn cancel(&self, job_id: &str) -> Result<ApiResponse<BatchJob>, Error> {
        let path = format!("/v1/batch/jobs/{}/cancel", path_segment(job_id));
        let req = raw::empty_request(Method::POST, &path, "application/json")?;
        raw::call(self.client, req, &self.options).await
    }

    /// Deletes a job (`DELETE /v1/batch/jobs/{job_id}`). A `204` without a body is a
    /// success.
    pub async fn delete(&self, job_id: &str) -> Result<ApiResponse<DeleteBatchJobResponse>, Error> {
        let path = format!("/v1/batch/jobs/{}", path_segment(job_id));
        let req = raw::empty_request(Method::DELETE, &path, "application/json")?;
        let mut res: ApiResponse<DeleteBatchJobResponse> =
            raw::call_allow_empty(self.client, req, &self.options).await?;
        if res.id.is_empty() {
            res.id = job_id.to_owned();
        }
        Ok(res)
    }

    /// Polls the job with backoff until its status is terminal
    /// ([`BatchJobStatus::is_terminal`]) and returns it. (Batch calls are never cached:
    /// see [`cacheable`](crate::cacheable).)
    pub async fn wait(&self, job_id: &str, options: WaitOptions) -> Result<BatchJob, Error> {
        let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut pause = options.initial;
        loop {
            let job = self.get(job_id).await?.into_data();
            if job.status.is_terminal() {
                return Ok(job);
            }
            if let Some(d) = deadline {
                let now = tokio::time::Instant::now();
                if now >= d {
                    return Err(Error::from_service_error(Box::new(TimeoutError::new(
                        TimeoutKind::Total,
                        options.timeout,
                    ))));
                }
                pause = pause.min(d - now);
            }
            tokio::time::sleep(pause).await;
            pause = pause.mul_f64(options.factor.max(1.0)).min(options.max);
        }
    }

    /// The results of a finished job, typed: the lines of its output file, then
    /// those of its error file.
    pub async fn results<T: DeserializeOwned>(
        &self,
        job: &BatchJob,
    ) -> Result<Vec<BatchResult<T>>, Error> {
        let mut out = Vec::new();
        for file in [&job.output_file, &job.error_file].into_iter().flatten() {
            let bytes = self
                .client
                .files()
                .with_options(self.options.clone())
                .download(file)
                .await?
                .bytes()
                .await?;
            let lines = BatchResult::<T>::parse_jsonl(&bytes).map_err(|e| {
                Error::decode(e, bytes.clone())
                    .with_response_meta(StatusCode::OK, Default::default())
            })?;
            out.extend(lines);
        }
        Ok(out)
    }
}

fn list_page(
    client: Client,
    query: BatchListQuery,
    options: RequestOptions,
) -> BoxFuture<Result<ApiResponse<Page<BatchJob>>, Error>> {
    Box::pin(async move {
        let res: ApiResponse<BatchJobList> = client
            .send_json_with_options::<(), _>(Method::GET, &query.to_path(), None, &options)
            .await?;
        let page = query.page.unwrap_or(0);
        let page_size = query.page_size.unwrap_or(100);
        let fetch: Fetch<BatchJob> = Arc::new(move |n| {
            let client = client.clone();
            let query = query.clone().page(n);
            let options = options.clone();
            Box::pin(async move { Ok(list_page(client, query, options).await?.into_data()) })
        });
        Ok(res.map(|l| Page::new(l.data, l.total, page, page_size).with_fetch(fetch)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_read_answers_and_errors() {
        let jsonl = br#"{"id":"b-0","custom_id":"0","response":{"status_code":200,"body":{"n":1}},"error":null}

{"id":"b-1","custom_id":"1","response":{"status_code":400,"body":{"object":"error","message":"bad","type":"invalid_request_error","code":"3051"}}}
{"id":"b-2","custom_id":"2","error":{"message":"timeout"}}
"#;
        #[derive(Deserialize, Debug, PartialEq)]
        struct N {
            n: u32,
        }
        let lines = BatchResult::<N>::parse_jsonl(jsonl).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].outcome, Ok(N { n: 1 }));
        let e = lines[1].outcome.as_ref().unwrap_err();
        assert_eq!(e.status_code, Some(400));
        assert_eq!(e.api_error.as_ref().unwrap().message, "bad");
        assert!(lines[2].outcome.is_err());
    }

    #[test]
    fn statuses_and_queries() {
        assert!(!BatchJobStatus::Running.is_terminal());
        assert!(BatchJobStatus::from("CANCELLED").is_terminal());
        let mut m = Map::new();
        m.insert("team".into(), "a".into());
        let q = BatchListQuery::new()
            .status(vec![BatchJobStatus::Queued, BatchJobStatus::Running])
            .metadata(m)
            .order_by(BatchOrder::Created);
        assert_eq!(
            q.to_path(),
            "/v1/batch/jobs?metadata=%7B%22team%22%3A%22a%22%7D&status=QUEUED&status=RUNNING&order_by=created"
        );
    }
}
