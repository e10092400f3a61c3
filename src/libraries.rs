//! Document libraries (beta, `/v1/libraries`): libraries (create, list, get, update,
//! replace, delete), who they are shared with (share, list, unshare), and their
//! documents ([`Documents`]: upload as multipart, streamed from memory, a path or a
//! stream with the files machinery; list with filters; get, update, replace, delete,
//! processing status, extracted text, signed URLs, reprocess). An agent searches a
//! library with the `document_library` tool.
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::Client;
//! use mistral_tower::libraries::{CreateLibraryRequest, DocumentUpload};
//!
//! # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let lib = client.libraries().create(CreateLibraryRequest::new("handbooks")).await?;
//! let doc = client
//!     .documents()
//!     .upload(&lib.id, DocumentUpload::path("handbook.pdf").await?)
//!     .await?;
//! let status = client.documents().status(&lib.id, &doc.id).await?;
//! println!("{}: {}", doc.name, status.processing_status);
//! # Ok(()) }
//! ```
//!
//! None of these operations is cached.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::ApiResponse;
use crate::common::{null_default, setters, string_enum};
use crate::multipart::{Form, Part, guess_content_type};
use crate::pagination::{BoxFuture, Fetch, Page, Query, path_segment};
use crate::{BoxError, Client, Error, RequestOptions, raw};

string_enum! {
    /// Who owns a new library (`owner_type`).
    OwnerType {
        /// The creating user (private).
        User = "User",
        /// The workspace.
        Workspace = "Workspace",
    }
}

string_enum! {
    /// What a library is shared with (`EntityType`).
    EntityType {
        /// A user.
        User = "User",
        /// A workspace.
        Workspace = "Workspace",
        /// An organization.
        Org = "Org",
    }
}

string_enum! {
    /// The level of a share (`ShareEnum`).
    ShareLevel {
        /// Read only.
        Viewer = "Viewer",
        /// Read and write.
        Editor = "Editor",
    }
}

string_enum! {
    /// A document's processing status (`ProcessStatus`).
    ProcessStatus {
        /// Managed by the user.
        SelfManaged = "self_managed",
        /// No content to process.
        MissingContent = "missing_content",
        /// Nothing to do.
        Noop = "noop",
        /// Processed.
        Done = "done",
        /// Waiting.
        Todo = "todo",
        /// Being processed.
        InProgress = "in_progress",
        /// Failed.
        Error = "error",
        /// Waiting for capacity.
        WaitingForCapacity = "waiting_for_capacity",
    }
}

/// A library (`Library`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Library {
    /// The library id (a UUID).
    pub id: String,
    /// The name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Creation time (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Last update (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub updated_at: String,
    /// The owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// The owner's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<String>,
    /// The total size of its documents, in bytes.
    #[serde(default, deserialize_with = "null_default")]
    pub total_size: u64,
    /// The number of documents.
    #[serde(default, deserialize_with = "null_default")]
    pub nb_documents: u64,
    /// The chunk size (characters) documents are split into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u64>,
    /// An emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A generated description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_description: Option<String>,
    /// Users it is explicitly shared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_user_members_count: Option<u64>,
    /// Workspaces it is explicitly shared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_workspace_members_count: Option<u64>,
    /// The organization's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_sharing_role: Option<String>,
    /// A generated name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_name: Option<String>,
}

/// Creates a library (`CreateLibraryRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateLibraryRequest {
    /// The name.
    pub name: String,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The chunk size, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u64>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<OwnerType>,
}

impl CreateLibraryRequest {
    /// A library with a name.
    pub fn new(name: impl Into<String>) -> Self {
        CreateLibraryRequest {
            name: name.into(),
            ..Default::default()
        }
    }

    setters! {
        description: impl String,
        chunk_size: u64,
        owner_type: OwnerType,
    }
}

/// Updates a library (`UpdateLibraryRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateLibraryRequest {
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl UpdateLibraryRequest {
    /// Nothing changed.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        name: impl String,
        description: impl String,
    }
}

/// Offset pagination metadata (`PaginationInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaginationInfo {
    /// Items in all.
    #[serde(default, deserialize_with = "null_default")]
    pub total_items: u64,
    /// Pages in all.
    #[serde(default, deserialize_with = "null_default")]
    pub total_pages: u64,
    /// This page.
    #[serde(default, deserialize_with = "null_default")]
    pub current_page: u64,
    /// The page size.
    #[serde(default, deserialize_with = "null_default")]
    pub page_size: u64,
    /// Whether pages follow.
    #[serde(default, deserialize_with = "null_default")]
    pub has_more: bool,
}

#[derive(Debug, Deserialize)]
struct ListResponse<T> {
    #[serde(default)]
    pagination: Option<PaginationInfo>,
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

/// A document in a library (`Document`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The document id (a UUID).
    pub id: String,
    /// The library.
    #[serde(default, deserialize_with = "null_default")]
    pub library_id: String,
    /// A hash of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The file extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// The size, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// A summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Last processing (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_processed_at: Option<String>,
    /// The number of pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_pages: Option<u64>,
    /// The processing status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_status: Option<ProcessStatus>,
    /// Who uploaded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_by_id: Option<String>,
    /// The uploader's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_by_type: Option<String>,
    /// Tokens used processing the main content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_processing_main_content: Option<u64>,
    /// Tokens used summarizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_processing_summary: Option<u64>,
    /// The source URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Custom attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// When the document is deleted automatically (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The processing status, as text.
    #[serde(default, deserialize_with = "null_default")]
    pub processing_status: String,
    /// Tokens used in all.
    #[serde(default, deserialize_with = "null_default")]
    pub tokens_processing_total: u64,
}

/// Updates a document (`UpdateDocumentRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateDocumentRequest {
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Custom attributes (booleans, strings, numbers, dates or lists of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// When to delete the document automatically (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl UpdateDocumentRequest {
    /// Nothing changed.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        name: impl String,
        attributes: Map<String, Value>,
        expires_at: impl String,
    }
}

/// A document's extracted text (`DocumentTextContent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentTextContent {
    /// The text.
    #[serde(default, deserialize_with = "null_default")]
    pub text: String,
}

/// A document's processing status (`ProcessingStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentStatus {
    /// The document.
    #[serde(default, deserialize_with = "null_default")]
    pub document_id: String,
    /// The status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_status: Option<ProcessStatus>,
    /// The status, as text.
    #[serde(default, deserialize_with = "null_default")]
    pub processing_status: String,
}

/// A document to upload ([`Documents::upload`]): its content, streamed when it comes
/// from a path or a stream.
#[derive(Debug)]
pub struct DocumentUpload {
    file: Part,
}

impl DocumentUpload {
    /// A document from memory.
    pub fn bytes(file_name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        let file_name = file_name.into();
        let mime = guess_content_type(&file_name);
        DocumentUpload::part(Part::bytes(data).file_name(file_name).mime(mime))
    }

    /// A document read from disk while it is sent.
    ///
    /// # Errors
    ///
    /// When the file's metadata cannot be read.
    pub async fn path(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(DocumentUpload::part(Part::file(path).await?))
    }

    /// A document read from a stream while it is sent.
    pub fn stream<S, E>(file_name: impl Into<String>, stream: S, len: Option<u64>) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let file_name = file_name.into();
        let mime = guess_content_type(&file_name);
        DocumentUpload::part(Part::stream(stream, len).file_name(file_name).mime(mime))
    }

    /// A document from any multipart [`Part`] (set its file name).
    pub fn part(file: Part) -> Self {
        DocumentUpload { file }
    }

    /// The multipart form sent (`DocumentUpload`: one `file` part).
    pub fn into_form(self) -> Form {
        Form::new().part("file", self.file)
    }
}

/// Shares a library (`SharingRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharingRequest {
    /// The organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The level.
    pub level: ShareLevel,
    /// The user, workspace or organization shared with.
    pub share_with_uuid: String,
    /// Its type.
    pub share_with_type: EntityType,
}

impl SharingRequest {
    /// Shares with an entity at a level.
    pub fn new(
        share_with_type: EntityType,
        share_with_uuid: impl Into<String>,
        level: ShareLevel,
    ) -> Self {
        SharingRequest {
            org_id: None,
            level,
            share_with_uuid: share_with_uuid.into(),
            share_with_type,
        }
    }

    setters! {
        org_id: impl String,
    }
}

/// Stops sharing a library (`SharingDelete`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharingDelete {
    /// The organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The level of the share removed. The spec lists `level` as required without
    /// declaring it; it is not sent unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<ShareLevel>,
    /// The user, workspace or organization.
    pub share_with_uuid: String,
    /// Its type.
    pub share_with_type: EntityType,
}

impl SharingDelete {
    /// Stops sharing with an entity.
    pub fn new(share_with_type: EntityType, share_with_uuid: impl Into<String>) -> Self {
        SharingDelete {
            org_id: None,
            level: None,
            share_with_uuid: share_with_uuid.into(),
            share_with_type,
        }
    }

    setters! {
        org_id: impl String,
        level: ShareLevel,
    }
}

/// A share of a library (`Sharing`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sharing {
    /// The library.
    #[serde(default, deserialize_with = "null_default")]
    pub library_id: String,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The organization.
    #[serde(default, deserialize_with = "null_default")]
    pub org_id: String,
    /// The role.
    #[serde(default, deserialize_with = "null_default")]
    pub role: String,
    /// The type of what it is shared with.
    #[serde(default, deserialize_with = "null_default")]
    pub share_with_type: String,
    /// What it is shared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_with_uuid: Option<String>,
}

/// The shares of a library (`ListSharingResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SharingList {
    /// The shares.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<Sharing>,
}

/// Filters and pagination of [`Libraries::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibraryListQuery {
    /// The page, from 0.
    pub page: Option<u64>,
    /// The page size (the API's default is 100).
    pub page_size: Option<u64>,
    /// A search string.
    pub search: Option<String>,
    /// Only libraries owned by the caller.
    pub filter_owned_by_me: Option<bool>,
}

impl LibraryListQuery {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        page: u64,
        page_size: u64,
        search: impl String,
        filter_owned_by_me: bool,
    }
}

/// Filters and pagination of [`Documents::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentListQuery {
    /// The page, from 0.
    pub page: Option<u64>,
    /// The page size (the API's default is 100).
    pub page_size: Option<u64>,
    /// A search string.
    pub search: Option<String>,
    /// A filter on attributes (JSON text).
    pub filters_attributes: Option<String>,
    /// The sort field (the API's default is `created_at`).
    pub sort_by: Option<String>,
    /// `asc` or `desc` (the default).
    pub sort_order: Option<String>,
}

impl DocumentListQuery {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        page: u64,
        page_size: u64,
        search: impl String,
        filters_attributes: impl String,
        sort_by: impl String,
        sort_order: impl String,
    }
}

impl Client {
    /// Document libraries and their shares (beta, `/v1/libraries`).
    pub fn libraries(&self) -> Libraries<'_> {
        Libraries {
            client: self,
            options: RequestOptions::default(),
        }
    }

    /// Documents in libraries (beta, `/v1/libraries/{id}/documents`).
    pub fn documents(&self) -> Documents<'_> {
        Documents {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

fn lib_path(id: &str, tail: &str) -> String {
    format!("/v1/libraries/{}{tail}", path_segment(id))
}

fn doc_path(library_id: &str, document_id: &str, tail: &str) -> String {
    lib_path(
        library_id,
        &format!("/documents/{}{tail}", path_segment(document_id)),
    )
}

/// Document libraries and their shares (beta, `/v1/libraries`).
#[derive(Debug, Clone)]
pub struct Libraries<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Libraries<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates a library (`POST /v1/libraries`).
    pub async fn create(&self, req: CreateLibraryRequest) -> Result<ApiResponse<Library>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::POST,
            "/v1/libraries",
            &req,
        )
        .await
    }

    /// Lists libraries (`GET /v1/libraries`): one page, whose
    /// [`into_stream`](Page::into_stream) walks the following ones.
    pub async fn list(&self, query: LibraryListQuery) -> Result<ApiResponse<Page<Library>>, Error> {
        libraries_page(self.client.clone(), self.options.clone(), query).await
    }

    /// Retrieves a library (`GET /v1/libraries/{id}`).
    pub async fn get(&self, library_id: &str) -> Result<ApiResponse<Library>, Error> {
        crate::beta::get(self.client, &self.options, &lib_path(library_id, "")).await
    }

    /// Updates a library's name or description (`PATCH /v1/libraries/{id}`).
    pub async fn update(
        &self,
        library_id: &str,
        req: UpdateLibraryRequest,
    ) -> Result<ApiResponse<Library>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::PATCH,
            &lib_path(library_id, ""),
            &req,
        )
        .await
    }

    /// Replaces a library's name and description (`PUT /v1/libraries/{id}`).
    pub async fn replace(
        &self,
        library_id: &str,
        req: UpdateLibraryRequest,
    ) -> Result<ApiResponse<Library>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::PUT,
            &lib_path(library_id, ""),
            &req,
        )
        .await
    }

    /// Deletes a library and its documents (`DELETE /v1/libraries/{id}`); answers
    /// the deleted library.
    pub async fn delete(&self, library_id: &str) -> Result<ApiResponse<Library>, Error> {
        crate::beta::delete(self.client, &self.options, &lib_path(library_id, "")).await
    }

    /// Lists who a library is shared with (`GET /v1/libraries/{id}/share`).
    pub async fn shares(&self, library_id: &str) -> Result<ApiResponse<SharingList>, Error> {
        crate::beta::get(self.client, &self.options, &lib_path(library_id, "/share")).await
    }

    /// Shares a library, or changes a share's level (`PUT /v1/libraries/{id}/share`).
    pub async fn share(
        &self,
        library_id: &str,
        req: SharingRequest,
    ) -> Result<ApiResponse<Sharing>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::PUT,
            &lib_path(library_id, "/share"),
            &req,
        )
        .await
    }

    /// Stops sharing a library (`DELETE /v1/libraries/{id}/share`).
    pub async fn unshare(
        &self,
        library_id: &str,
        req: SharingDelete,
    ) -> Result<ApiResponse<Sharing>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::DELETE,
            &lib_path(library_id, "/share"),
            &req,
        )
        .await
    }
}

/// Documents in libraries (beta, `/v1/libraries/{id}/documents`).
#[derive(Debug, Clone)]
pub struct Documents<'a> {
    client: &'a Client,
    options: RequestOptions,
}

impl Documents<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Uploads a document (`POST /v1/libraries/{id}/documents`, multipart). One from
    /// a path or a stream is streamed, so such a request is not retried.
    pub async fn upload(
        &self,
        library_id: &str,
        doc: DocumentUpload,
    ) -> Result<ApiResponse<Document>, Error> {
        let req = raw::form_request(
            Method::POST,
            &lib_path(library_id, "/documents"),
            doc.into_form(),
            "application/json",
        )?;
        raw::call(self.client, req, &self.options).await
    }

    /// Lists a library's documents (`GET /v1/libraries/{id}/documents`): one page,
    /// whose [`into_stream`](Page::into_stream) walks the following ones.
    pub async fn list(
        &self,
        library_id: &str,
        query: DocumentListQuery,
    ) -> Result<ApiResponse<Page<Document>>, Error> {
        documents_page(
            self.client.clone(),
            self.options.clone(),
            library_id.to_owned(),
            query,
        )
        .await
    }

    /// Retrieves a document's metadata (`GET .../documents/{document_id}`).
    pub async fn get(
        &self,
        library_id: &str,
        document_id: &str,
    ) -> Result<ApiResponse<Document>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &doc_path(library_id, document_id, ""),
        )
        .await
    }

    /// Updates a document's name, attributes or expiry (`PATCH .../documents/{id}`).
    pub async fn update(
        &self,
        library_id: &str,
        document_id: &str,
        req: UpdateDocumentRequest,
    ) -> Result<ApiResponse<Document>, Error> {
        let path = doc_path(library_id, document_id, "");
        crate::beta::json(self.client, &self.options, Method::PATCH, &path, &req).await
    }

    /// Replaces a document's name, attributes and expiry (`PUT .../documents/{id}`).
    pub async fn replace(
        &self,
        library_id: &str,
        document_id: &str,
        req: UpdateDocumentRequest,
    ) -> Result<ApiResponse<Document>, Error> {
        let path = doc_path(library_id, document_id, "");
        crate::beta::json(self.client, &self.options, Method::PUT, &path, &req).await
    }

    /// Deletes a document (`DELETE .../documents/{id}`).
    pub async fn delete(
        &self,
        library_id: &str,
        document_id: &str,
    ) -> Result<ApiResponse<()>, Error> {
        let path = doc_path(library_id, document_id, "");
        crate::beta::unit(self.client, &self.options, Method::DELETE, &path).await
    }

    /// A document's extracted text (`GET .../text_content`), optionally a page range.
    pub async fn text_content(
        &self,
        library_id: &str,
        document_id: &str,
        pages: Option<(u64, u64)>,
    ) -> Result<ApiResponse<DocumentTextContent>, Error> {
        let mut q = Query::new();
        if let Some((start, end)) = pages {
            q.push("page_start", start).push("page_end", end);
        }
        let path = q.to_path(&doc_path(library_id, document_id, "/text_content"));
        crate::beta::get(self.client, &self.options, &path).await
    }

    /// A document's processing status (`GET .../status`).
    pub async fn status(
        &self,
        library_id: &str,
        document_id: &str,
    ) -> Result<ApiResponse<DocumentStatus>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &doc_path(library_id, document_id, "/status"),
        )
        .await
    }

    /// A signed URL to download the document (`GET .../signed-url`).
    pub async fn signed_url(
        &self,
        library_id: &str,
        document_id: &str,
    ) -> Result<ApiResponse<String>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &doc_path(library_id, document_id, "/signed-url"),
        )
        .await
    }

    /// A signed URL to download the extracted text
    /// (`GET .../extracted-text-signed-url`).
    pub async fn extracted_text_signed_url(
        &self,
        library_id: &str,
        document_id: &str,
    ) -> Result<ApiResponse<String>, Error> {
        let path = doc_path(library_id, document_id, "/extracted-text-signed-url");
        crate::beta::get(self.client, &self.options, &path).await
    }

    /// Processes a document again (`POST .../reprocess`).
    pub async fn reprocess(
        &self,
        library_id: &str,
        document_id: &str,
    ) -> Result<ApiResponse<()>, Error> {
        let path = doc_path(library_id, document_id, "/reprocess");
        crate::beta::unit(self.client, &self.options, Method::POST, &path).await
    }
}

fn libraries_page(
    client: Client,
    options: RequestOptions,
    query: LibraryListQuery,
) -> BoxFuture<Result<ApiResponse<Page<Library>>, Error>> {
    Box::pin(async move {
        let mut q = Query::new();
        q.opt("page", query.page)
            .opt("page_size", query.page_size)
            .opt("search", query.search.as_deref())
            .opt("filter_owned_by_me", query.filter_owned_by_me);
        let res: ApiResponse<ListResponse<Library>> =
            crate::beta::get(&client, &options, &q.to_path("/v1/libraries")).await?;
        let page = query.page.unwrap_or(0);
        let page_size = query.page_size.unwrap_or(100);
        let fetch: Fetch<Library> = Arc::new(move |n| {
            let client = client.clone();
            let options = options.clone();
            let query = query.clone().page(n);
            Box::pin(async move { Ok(libraries_page(client, options, query).await?.into_data()) })
        });
        Ok(res.map(|l| {
            let total = l.pagination.map(|p| p.total_items);
            Page::new(l.data, total, page, page_size).with_fetch(fetch)
        }))
    })
}

fn documents_page(
    client: Client,
    options: RequestOptions,
    library_id: String,
    query: DocumentListQuery,
) -> BoxFuture<Result<ApiResponse<Page<Document>>, Error>> {
    Box::pin(async move {
        let mut q = Query::new();
        q.opt("search", query.search.as_deref())
            .opt("page_size", query.page_size)
            .opt("page", query.page)
            .opt("filters_attributes", query.filters_attributes.as_deref())
            .opt("sort_by", query.sort_by.as_deref())
            .opt("sort_order", query.sort_order.as_deref());
        let path = q.to_path(&lib_path(&library_id, "/documents"));
        let res: ApiResponse<ListResponse<Document>> =
            crate::beta::get(&client, &options, &path).await?;
        let page = query.page.unwrap_or(0);
        let page_size = query.page_size.unwrap_or(100);
        let fetch: Fetch<Document> = Arc::new(move |n| {
            let client = client.clone();
            let options = options.clone();
            let library_id = library_id.clone();
            let query = query.clone().page(n);
            Box::pin(async move {
                Ok(documents_page(client, options, library_id, query)
                    .await?
                    .into_data())
            })
        });
        Ok(res.map(|l| {
            let total = l.pagination.map(|p| p.total_items);
            Page::new(l.data, total, page, page_size).with_fetch(fetch)
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_reads_tolerantly_and_requests_write_exactly() {
        let d: Document = serde_json::from_str(
            r#"{"id":"d","library_id":"l","hash":null,"mime_type":null,"extension":null,
                "size":null,"name":"a.pdf","created_at":"t","process_status":"brand_new",
                "uploaded_by_id":null,"uploaded_by_type":"User","processing_status":"x",
                "tokens_processing_total":0,"future":1}"#,
        )
        .unwrap();
        assert_eq!(
            d.process_status,
            Some(ProcessStatus::Other("brand_new".into()))
        );
        assert_eq!(
            serde_json::to_value(CreateLibraryRequest::new("n")).unwrap(),
            serde_json::json!({"name": "n"})
        );
    }
}
