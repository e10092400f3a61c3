//! Files (`/v1/files`): upload (multipart, streamed from a path or a stream), list
//! with filters and pagination, retrieve, delete, download as a streamed body, and
//! signed URLs.
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::Client;
//! use mistral_tower::files::{FilePurpose, UploadFile};
//!
//! # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! // Streamed from disk: a large file is never held in memory whole.
//! let upload = UploadFile::path("requests.jsonl").await?.purpose(FilePurpose::Batch);
//! let file = client.files().upload(upload).await?;
//! let content = client.files().download(&file.id).await?;
//! content.save("copy.jsonl").await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client::{ApiResponse, RequestOptions};
use crate::common::{null_default, string_enum};
use crate::multipart::{Form, Part};
use crate::pagination::{BoxFuture, Fetch, Page, Query, path_segment};
use crate::{Body, BoxError, Client, Error, raw};

string_enum! {
    /// What a file is for (`FilePurpose`).
    FilePurpose {
        /// Fine-tuning data.
        FineTune = "fine-tune",
        /// Batch inference input (or output).
        Batch = "batch",
        /// A document for OCR.
        Ocr = "ocr",
    }
}

string_enum! {
    /// The kind of samples in a file (`SampleType`).
    SampleType {
        /// Pretraining data.
        Pretrain = "pretrain",
        /// Instruction data.
        Instruct = "instruct",
        /// Batch requests.
        BatchRequest = "batch_request",
        /// Batch results.
        BatchResult = "batch_result",
        /// Batch errors.
        BatchError = "batch_error",
    }
}

string_enum! {
    /// Where a file comes from (`Source`).
    FileSource {
        /// Uploaded by a user.
        Upload = "upload",
        /// From a repository.
        Repository = "repository",
        /// Written by Mistral (batch outputs).
        Mistral = "mistral",
    }
}

string_enum! {
    /// Who can see a file (`FileVisibility`).
    FileVisibility {
        /// The whole workspace (the default).
        Workspace = "workspace",
        /// The uploading user only.
        User = "user",
    }
}

/// A file (`FileSchema`, `CreateFileResponse`, `GetFileResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// The unique identifier of the file.
    pub id: String,
    /// The object type, always `file`.
    #[serde(default, deserialize_with = "null_default")]
    pub object: String,
    /// The size of the file, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The UNIX timestamp (in seconds) of the creation.
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: u64,
    /// The name of the uploaded file.
    #[serde(default, deserialize_with = "null_default")]
    pub filename: String,
    /// The intended purpose of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<FilePurpose>,
    /// The kind of samples in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_type: Option<SampleType>,
    /// The number of lines (JSONL files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_lines: Option<u64>,
    /// The MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mimetype: Option<String>,
    /// Where the file comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FileSource>,
    /// A signature of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The UNIX timestamp (in seconds) of the expiry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Who can see the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<FileVisibility>,
    /// Whether the file was deleted (`GetFileResponse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// One page of files (`ListFilesResponse`), as sent on the wire. The typed handle
/// returns a [`Page`] instead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileList {
    /// The files.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<FileObject>,
    /// The object type, `list`.
    #[serde(default, deserialize_with = "null_default")]
    pub object: String,
    /// The total number of files matching the filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The result of deleting a file (`DeleteFileResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeleteFileResponse {
    /// The ID of the deleted file.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// The object type that was deleted.
    #[serde(default, deserialize_with = "null_default")]
    pub object: String,
    /// The deletion status (`true` for a bodiless success).
    #[serde(default = "yes")]
    pub deleted: bool,
}

fn yes() -> bool {
    true
}

/// A signed URL to download a file (`GetSignedUrlResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignedUrl {
    /// The URL.
    pub url: String,
}

/// Filters and pagination of [`Files::list`] (the query parameters of `GET /v1/files`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileListQuery {
    /// The page, from 0.
    pub page: Option<u64>,
    /// The page size (the API's default is 100).
    pub page_size: Option<u64>,
    /// Whether to count the matching files (`total`; the API's default is `true`).
    pub include_total: Option<bool>,
    /// Only files with these sample types.
    pub sample_type: Option<Vec<SampleType>>,
    /// Only files from these sources.
    pub source: Option<Vec<FileSource>>,
    /// A search string on the file name.
    pub search: Option<String>,
    /// Only files with this purpose.
    pub purpose: Option<FilePurpose>,
    /// Only files with these MIME types.
    pub mimetypes: Option<Vec<String>>,
}

impl FileListQuery {
    /// No filter, the API's default page.
    pub fn new() -> Self {
        Self::default()
    }

    crate::common::setters! {
        page: u64,
        page_size: u64,
        include_total: bool,
        sample_type: Vec<SampleType>,
        source: Vec<FileSource>,
        search: impl String,
        purpose: FilePurpose,
        mimetypes: Vec<String>,
    }

    fn to_path(&self) -> String {
        let mut q = Query::new();
        q.opt("page", self.page)
            .opt("page_size", self.page_size)
            .opt("include_total", self.include_total)
            .list("sample_type", self.sample_type.as_deref())
            .list("source", self.source.as_deref())
            .opt("search", self.search.as_deref())
            .opt("purpose", self.purpose.as_ref())
            .list("mimetypes", self.mimetypes.as_deref());
        q.to_path("/v1/files")
    }
}

/// A file to upload ([`Files::upload`]): its content (bytes, a path streamed from disk,
/// or a stream) and the form fields.
#[derive(Debug)]
pub struct UploadFile {
    file: Part,
    /// What the file is for.
    pub purpose: Option<FilePurpose>,
    /// Expiry of the file, in hours.
    pub expiry: Option<u64>,
    /// Who can see the file.
    pub visibility: Option<FileVisibility>,
}

impl UploadFile {
    /// A file from memory.
    pub fn bytes(file_name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        let file_name = file_name.into();
        let mime = crate::multipart::guess_content_type(&file_name);
        UploadFile::part(Part::bytes(data).file_name(file_name).mime(mime))
    }

    /// A file read from disk while it is sent (never held in memory whole).
    ///
    /// # Errors
    ///
    /// When the file's metadata cannot be read.
    pub async fn path(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(UploadFile::part(Part::file(path).await?))
    }

    /// A file read from a stream while it is sent. With `len` known, the request
    /// carries a `Content-Length`.
    pub fn stream<S, E>(file_name: impl Into<String>, stream: S, len: Option<u64>) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let file_name = file_name.into();
        let mime = crate::multipart::guess_content_type(&file_name);
        UploadFile::part(Part::stream(stream, len).file_name(file_name).mime(mime))
    }

    /// A file from any multipart [`Part`] (set its file name).
    pub fn part(file: Part) -> Self {
        UploadFile {
            file,
            purpose: None,
            expiry: None,
            visibility: None,
        }
    }

    crate::common::setters! {
        purpose: FilePurpose,
        expiry: u64,
        visibility: FileVisibility,
    }

    /// The multipart form sent (`MultiPartBodyParams`).
    pub fn into_form(self) -> Form {
        let mut form = Form::new();
        if let Some(p) = &self.purpose {
            form = form.text("purpose", p.as_str());
        }
        if let Some(e) = self.expiry {
            form = form.text("expiry", e.to_string());
        }
        if let Some(v) = &self.visibility {
            form = form.text("visibility", v.as_str());
        }
        form.part("file", self.file)
    }
}

/// A downloaded file: the response body, streamed. Read it as a
/// `Stream<Item = Result<Bytes, Error>>`, or with [`bytes`](Self::bytes) or
/// [`save`](Self::save).
pub struct Download {
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("status", &self.status)
            .field("content_length", &self.content_length())
            .finish_non_exhaustive()
    }
}

impl Download {
    pub(crate) fn new(res: http::Response<Body>) -> Self {
        let (parts, body) = res.into_parts();
        Download {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The `Content-Length`, when sent.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The raw body.
    pub fn into_body(self) -> Body {
        self.body
    }

    /// Reads the whole content into memory.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        self.body
            .collect_bytes()
            .await
            .map_err(|e| Error::from_body_error(e, false))
    }

    /// Writes the content to a file, chunk by chunk; returns the bytes written.
    pub async fn save(self, path: impl AsRef<Path>) -> Result<u64, Error> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(path.as_ref())
            .await
            .map_err(Error::request)?;
        let mut n = 0u64;
        let mut stream = self;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(Error::request)?;
        }
        file.flush().await.map_err(Error::request)?;
        Ok(n)
    }
}

impl Stream for Download {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(Error::from_body_error(e, true)))),
                None => return Poll::Ready(None),
            }
        }
    }
}

use http_body::Body as _;

impl Client {
    /// Files (`/v1/files`).
    pub fn files(&self) -> Files<'_> {
        Files {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Files (`/v1/files`).
#[derive(Debug, Clone)]
pub struct Files<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Files<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Uploads a file (`POST /v1/files`, multipart). A file from a path or a stream is
    /// streamed, so such a request is not retried; the client's total timeout covers
    /// the whole upload (raise it with `ClientBuilder::timeout` for large files).
    pub async fn upload(&self, file: UploadFile) -> Result<ApiResponse<FileObject>, Error> {
        let req = raw::form_request(
            Method::POST,
            "/v1/files",
            file.into_form(),
            "application/json",
        )?;
        raw::call(self.client, req, &self.options).await
    }

    /// Lists files (`GET /v1/files`): one page, whose
    /// [`into_stream`](Page::into_stream) walks every following page.
    pub async fn list(&self, query: FileListQuery) -> Result<ApiResponse<Page<FileObject>>, Error> {
        list_page(self.client.clone(), query, self.options.clone()).await
    }

    /// Retrieves a file's metadata (`GET /v1/files/{file_id}`).
    pub async fn get(&self, file_id: &str) -> Result<ApiResponse<FileObject>, Error> {
        let path = format!("/v1/files/{}", path_segment(file_id));
        let req = raw::empty_request(Method::GET, &path, "application/json")?;
        raw::call(self.client, req, &self.options).await
    }

    /// Deletes a file (`DELETE /v1/files/{file_id}`). A `204` without a body is a
    /// success.
    pub async fn delete(&self, file_id: &str) -> Result<ApiResponse<DeleteFileResponse>, Error> {
        let path = format!("/v1/files/{}", path_segment(file_id));
        let req = raw::empty_request(Method::DELETE, &path, "application/json")?;
        let mut res: ApiResponse<DeleteFileResponse> =
            raw::call_allow_empty(self.client, req, &self.options).await?;
        if res.id.is_empty() {
            res.id = file_id.to_owned();
        }
        Ok(res)
    }

    /// Downloads a file's content (`GET /v1/files/{file_id}/content`) as a streamed
    /// body.
    pub async fn download(&self, file_id: &str) -> Result<Download, Error> {
        let path = format!("/v1/files/{}/content", path_segment(file_id));
        let req = raw::empty_request(Method::GET, &path, "application/octet-stream")?;
        Ok(Download::new(
            raw::send_checked(self.client, req, &self.options).await?,
        ))
    }

    /// A signed URL to download the file (`GET /v1/files/{file_id}/url`), valid for
    /// `expiry_hours` (1 to 168; the API's default is 24).
    pub async fn signed_url(
        &self,
        file_id: &str,
        expiry_hours: Option<u32>,
    ) -> Result<ApiResponse<SignedUrl>, Error> {
        let mut q = Query::new();
        q.opt("expiry", expiry_hours);
        let path = q.to_path(&format!("/v1/files/{}/url", path_segment(file_id)));
        let req = raw::empty_request(Method::GET, &path, "application/json")?;
        raw::call(self.client, req, &self.options).await
    }
}

fn list_page(
    client: Client,
    query: FileListQuery,
    options: RequestOptions,
) -> BoxFuture<Result<ApiResponse<Page<FileObject>>, Error>> {
    Box::pin(async move {
        let req = raw::empty_request(Method::GET, &query.to_path(), "application/json")?;
        let res: ApiResponse<FileList> = raw::call(&client, req, &options).await?;
        let page = query.page.unwrap_or(0);
        let page_size = query.page_size.unwrap_or(100);
        let fetch: Fetch<FileObject> = Arc::new(move |n| {
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
    fn file_reads_tolerantly_and_writes_exactly() {
        let f: FileObject = serde_json::from_str(
            r#"{"id":"f1","object":"file","bytes":null,"created_at":1,"filename":"a.jsonl",
                "purpose":"audio","sample_type":"batch_result","source":"mistral","new":1}"#,
        )
        .unwrap();
        assert_eq!(f.purpose, Some(FilePurpose::Other("audio".into())));
        assert_eq!(f.bytes, None);
        let v = serde_json::to_value(&f).unwrap();
        assert!(v.get("bytes").is_none() && v.get("new").is_none());
        let d: DeleteFileResponse = serde_json::from_str("{}").unwrap();
        assert!(d.deleted);
    }

    #[test]
    fn list_query_is_encoded() {
        let q = FileListQuery::new()
            .page(2)
            .page_size(10)
            .include_total(false)
            .sample_type(vec![SampleType::BatchResult, SampleType::Instruct])
            .source(vec![FileSource::Upload])
            .search("my file")
            .purpose(FilePurpose::Batch)
            .mimetypes(vec!["application/jsonl".into()]);
        assert_eq!(
            q.to_path(),
            "/v1/files?page=2&page_size=10&include_total=false&sample_type=batch_result\
             &sample_type=instruct&source=upload&search=my%20file&purpose=batch\
             &mimetypes=application%2Fjsonl"
        );
        assert_eq!(FileListQuery::new().to_path(), "/v1/files");
    }
}
