//! Prompts (beta, `/v2/prompts`): a registry of versioned prompt templates (create,
//! list, get, update, delete, versions), and [`Prompts::render`], which fetches a
//! stored prompt and fills its `{{var}}` placeholders into chat messages in one call.
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::Client;
//! use mistral_tower::chat::ChatCompletionRequest;
//! use mistral_tower::prompts::{CreatePromptRequest, PromptDefinition};
//!
//! # async fn run(client: Client) -> Result<(), mistral_tower::Error> {
//! let prompt = client
//!     .prompts()
//!     .create(CreatePromptRequest::new(
//!         "greeting",
//!         PromptDefinition::new("Say hello to {{name}} in {{language}}."),
//!     ))
//!     .await?;
//! let messages = client
//!     .prompts()
//!     .render(&prompt.id, None, [("name", "Ada"), ("language", "French")])
//!     .await?;
//! let res = client
//!     .chat()
//!     .create(ChatCompletionRequest::new("mistral-small-latest", messages))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Templates
//!
//! A placeholder is `{{name}}` (spaces inside the braces are allowed). The content
//! renders into one user message, or, when it is a JSON array of
//! `{"role": ..., "content": ...}` messages, into those messages with each content
//! rendered. Every placeholder and every declared variable must have a value;
//! otherwise rendering fails with [`MissingVariables`], which names each one.
//!
//! None of these operations is cached.

use std::collections::HashMap;
use std::fmt;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::ChatMessage;
use crate::client::ApiResponse;
use crate::common::{setters, string_enum};
use crate::pagination::{Query, path_segment};
use crate::{Client, Error, RequestOptions};

string_enum! {
    /// Who can see a prompt (`RegistrySharingScope`).
    SharingScope {
        /// Not specified.
        Unspecified = "sharing_scope_unspecified",
        /// The author only.
        Private = "private",
        /// The workspace.
        Workspace = "workspace",
    }
}

string_enum! {
    /// The sort field of a prompt list (`ListSortField`).
    PromptSortField {
        /// Not specified.
        Unspecified = "list_sort_field_unspecified",
        /// Creation time.
        CreatedAt = "list_sort_field_created_at",
        /// Last modification.
        LastModifiedAt = "list_sort_field_last_modified_at",
        /// Name.
        Name = "list_sort_field_name",
        /// Title.
        Title = "list_sort_field_title",
    }
}

string_enum! {
    /// The sort direction of a prompt list (`ListSortDirection`).
    SortDirection {
        /// Not specified.
        Unspecified = "list_sort_direction_unspecified",
        /// Ascending.
        Asc = "list_sort_direction_asc",
        /// Descending.
        Desc = "list_sort_direction_desc",
    }
}

/// A variable of a prompt (`PromptVariable`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptVariable {
    /// The variable's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A prompt's versioned content (`PromptDefinition`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptDefinition {
    /// The template, with `{{var}}` placeholders.
    #[serde(default)]
    pub content: String,
    /// The declared variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<PromptVariable>>,
}

/// The variables a template needs that were not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVariables {
    /// Each missing variable, in order of first appearance.
    pub names: Vec<String>,
}

impl fmt::Display for MissingVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
        write!(
            f,
            "missing prompt variable{}: {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}

impl std::error::Error for MissingVariables {}

/// Replaces `{{name}}` placeholders; collects the names without a value.
fn fill(template: &str, vars: &HashMap<String, String>, missing: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + len].trim();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        out.push_str(&rest[..start]);
        if valid {
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    if !missing.iter().any(|m| m == name) {
                        missing.push(name.to_owned());
                    }
                }
            }
        } else {
            out.push_str(&rest[start..start + 4 + len]);
        }
        rest = &rest[start + 4 + len..];
    }
    out.push_str(rest);
    out
}

impl PromptDefinition {
    /// A definition with this template.
    pub fn new(content: impl Into<String>) -> Self {
        PromptDefinition {
            content: content.into(),
            variables: None,
        }
    }

    /// Declares the variables.
    #[must_use]
    pub fn variables<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.variables = Some(
            names
                .into_iter()
                .map(|n| PromptVariable {
                    name: Some(n.into()),
                })
                .collect(),
        );
        self
    }

    fn declared_missing(&self, vars: &HashMap<String, String>, missing: &mut Vec<String>) {
        for v in self.variables.iter().flatten() {
            if let Some(name) = &v.name
                && !vars.contains_key(name)
                && !missing.contains(name)
            {
                missing.push(name.clone());
            }
        }
    }

    /// The content with every placeholder filled.
    ///
    /// # Errors
    ///
    /// [`MissingVariables`] naming each placeholder or declared variable without a
    /// value.
    pub fn render_text<I, K, V>(&self, vars: I) -> Result<String, MissingVariables>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = collect(vars);
        let mut missing = Vec::new();
        let text = fill(&self.content, &vars, &mut missing);
        self.declared_missing(&vars, &mut missing);
        if missing.is_empty() {
            Ok(text)
        } else {
            Err(MissingVariables { names: missing })
        }
    }

    /// The chat messages of the template, every placeholder filled: one user message,
    /// or the messages of a content that is a JSON array of `{role, content}`.
    ///
    /// # Errors
    ///
    /// [`MissingVariables`] naming each placeholder or declared variable without a
    /// value.
    pub fn render<I, K, V>(&self, vars: I) -> Result<Vec<ChatMessage>, MissingVariables>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = collect(vars);
        let mut missing = Vec::new();
        let messages = match serde_json::from_str::<Vec<Map<String, Value>>>(&self.content) {
            Ok(list)
                if list
                    .iter()
                    .all(|m| m.get("role").is_some_and(Value::is_string)) =>
            {
                list.iter()
                    .map(|m| {
                        let content = m.get("content").and_then(Value::as_str).unwrap_or("");
                        let text = fill(content, &vars, &mut missing);
                        match m["role"].as_str().unwrap_or("user") {
                            "system" => ChatMessage::system(text),
                            "assistant" => ChatMessage::assistant(text),
                            _ => ChatMessage::user(text),
                        }
                    })
                    .collect()
            }
            _ => vec![ChatMessage::user(fill(&self.content, &vars, &mut missing))],
        };
        self.declared_missing(&vars, &mut missing);
        if missing.is_empty() {
            Ok(messages)
        } else {
            Err(MissingVariables { names: missing })
        }
    }
}

fn collect<I, K, V>(vars: I) -> HashMap<String, String>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    vars.into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// A stored prompt at one version (`Prompt`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prompt {
    /// The prompt id.
    #[serde(default)]
    pub id: String,
    /// The stable name.
    #[serde(default)]
    pub name: String,
    /// The content at this version.
    #[serde(default)]
    pub definition: PromptDefinition,
    /// This version's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Notes of this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Aliases pointing to this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// Who can see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_scope: Option<SharingScope>,
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The latest version's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<u32>,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Display description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Creates a prompt (`CreatePromptRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePromptRequest {
    /// The stable name.
    pub name: String,
    /// The first version's content.
    pub definition: PromptDefinition,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Display description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Notes of the first version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Who can see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_scope: Option<SharingScope>,
    /// Aliases pointing to the first version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
}

impl CreatePromptRequest {
    /// A prompt with a name and its first version's content.
    pub fn new(name: impl Into<String>, definition: PromptDefinition) -> Self {
        CreatePromptRequest {
            name: name.into(),
            definition,
            ..Default::default()
        }
    }

    setters! {
        title: impl String,
        description: impl String,
        notes: impl String,
        sharing_scope: SharingScope,
        aliases: Vec<String>,
    }
}

/// Updates a prompt's display fields (`UpdatePromptRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePromptRequest {
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Display description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who can see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_scope: Option<SharingScope>,
}

impl UpdatePromptRequest {
    /// Nothing changed.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        title: impl String,
        description: impl String,
        sharing_scope: SharingScope,
    }
}

/// Adds a version to a prompt (`CreatePromptVersionRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatePromptVersionRequest {
    /// The content.
    pub definition: PromptDefinition,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Aliases pointing to this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
}

impl CreatePromptVersionRequest {
    /// A version with this content.
    pub fn new(definition: PromptDefinition) -> Self {
        CreatePromptVersionRequest {
            definition,
            ..Default::default()
        }
    }

    setters! {
        notes: impl String,
        aliases: Vec<String>,
    }
}

/// A set of aliases on an update (`AliasList`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AliasList {
    /// The aliases.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Updates a version's notes and aliases (`UpdatePromptVersionRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatePromptVersionRequest {
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The aliases (replacing the current ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<AliasList>,
}

impl UpdatePromptVersionRequest {
    /// Nothing changed.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        notes: impl String,
    }

    /// Sets the aliases (builder style).
    #[must_use]
    pub fn aliases<I, S>(mut self, aliases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aliases = Some(AliasList {
            values: aliases.into_iter().map(Into::into).collect(),
        });
        self
    }
}

/// One page of prompts (`ListPromptsResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptList {
    /// The prompts.
    #[serde(default)]
    pub data: Vec<Prompt>,
    /// The token of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A version of a prompt (`PromptVersion`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptVersion {
    /// The version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The content.
    #[serde(default)]
    pub definition: PromptDefinition,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Aliases pointing to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The versions of a prompt (`ListPromptVersionsResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptVersionList {
    /// The versions.
    #[serde(default)]
    pub data: Vec<PromptVersion>,
}

/// The result of adding a version (`CreatePromptVersionResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatePromptVersionResponse {
    /// The version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Whether the content equals an existing version's (no new version was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
}

/// The result of deleting a prompt (`DeletePromptResponse`).
pub type DeletePromptResponse = Map<String, Value>;

/// Filters and pagination of [`Prompts::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptListQuery {
    /// The page size.
    pub page_size: Option<u32>,
    /// The token of the page (from [`PromptList::next_page_token`]).
    pub page_token: Option<String>,
    /// Only prompts with a version under this alias.
    pub alias: Option<String>,
    /// The fields to return.
    pub fields: Option<Vec<String>>,
    /// The sort field.
    pub sort_field: Option<PromptSortField>,
    /// The sort direction.
    pub sort_direction: Option<SortDirection>,
}

impl PromptListQuery {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        page_size: u32,
        page_token: impl String,
        alias: impl String,
        fields: Vec<String>,
        sort_field: PromptSortField,
        sort_direction: SortDirection,
    }

    fn to_path(&self) -> String {
        let mut q = Query::new();
        q.opt("pageSize", self.page_size)
            .opt("pageToken", self.page_token.as_deref())
            .opt("alias", self.alias.as_deref())
            .list("fields", self.fields.as_deref())
            .opt("sort.field", self.sort_field.as_ref())
            .opt("sort.direction", self.sort_direction.as_ref());
        q.to_path("/v2/prompts")
    }
}

/// Which version [`Prompts::get`] and [`Prompts::render`] read: the latest by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptVersionRef {
    /// A version number.
    Number(u32),
    /// An alias.
    Alias(String),
}

impl From<u32> for PromptVersionRef {
    fn from(v: u32) -> Self {
        PromptVersionRef::Number(v)
    }
}

impl From<&str> for PromptVersionRef {
    fn from(v: &str) -> Self {
        PromptVersionRef::Alias(v.to_owned())
    }
}

impl Client {
    /// Prompts (beta, `/v2/prompts`).
    pub fn prompts(&self) -> Prompts<'_> {
        Prompts {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Prompts (beta, `/v2/prompts`).
#[derive(Debug, Clone)]
pub struct Prompts<'a> {
    client: &'a Client,
    options: RequestOptions,
}

fn prompt_path(id: &str, tail: &str) -> String {
    format!("/v2/prompts/{}{tail}", path_segment(id))
}

impl Prompts<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates a prompt with its first version (`POST /v2/prompts`).
    pub async fn create(&self, req: CreatePromptRequest) -> Result<ApiResponse<Prompt>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::POST,
            "/v2/prompts",
            &req,
        )
        .await
    }

    /// Lists prompts (`GET /v2/prompts`), one page; the next one is read with
    /// [`PromptList::next_page_token`] as `page_token`.
    pub async fn list(&self, query: PromptListQuery) -> Result<ApiResponse<PromptList>, Error> {
        crate::beta::get(self.client, &self.options, &query.to_path()).await
    }

    /// Retrieves a prompt (`GET /v2/prompts/{id}`), at its latest version or the one
    /// given.
    pub async fn get(
        &self,
        prompt_id: &str,
        version: Option<PromptVersionRef>,
    ) -> Result<ApiResponse<Prompt>, Error> {
        let mut q = Query::new();
        match &version {
            Some(PromptVersionRef::Number(n)) => q.push("version", n),
            Some(PromptVersionRef::Alias(a)) => q.push("alias", a),
            None => &mut q,
        };
        crate::beta::get(
            self.client,
            &self.options,
            &q.to_path(&prompt_path(prompt_id, "")),
        )
        .await
    }

    /// Updates a prompt's title, description or sharing (`PATCH /v2/prompts/{id}`).
    pub async fn update(
        &self,
        prompt_id: &str,
        req: UpdatePromptRequest,
    ) -> Result<ApiResponse<Prompt>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::PATCH,
            &prompt_path(prompt_id, ""),
            &req,
        )
        .await
    }

    /// Deletes a prompt and its versions (`DELETE /v2/prompts/{id}`).
    pub async fn delete(
        &self,
        prompt_id: &str,
    ) -> Result<ApiResponse<DeletePromptResponse>, Error> {
        crate::beta::delete(self.client, &self.options, &prompt_path(prompt_id, "")).await
    }

    /// Lists a prompt's versions (`GET /v2/prompts/{id}/versions`).
    pub async fn versions(&self, prompt_id: &str) -> Result<ApiResponse<PromptVersionList>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &prompt_path(prompt_id, "/versions"),
        )
        .await
    }

    /// Adds a version (`POST /v2/prompts/{id}/versions`).
    pub async fn create_version(
        &self,
        prompt_id: &str,
        req: CreatePromptVersionRequest,
    ) -> Result<ApiResponse<CreatePromptVersionResponse>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::POST,
            &prompt_path(prompt_id, "/versions"),
            &req,
        )
        .await
    }

    /// Retrieves one version (`GET /v2/prompts/{id}/versions/{version}`).
    pub async fn get_version(
        &self,
        prompt_id: &str,
        version: u32,
    ) -> Result<ApiResponse<Prompt>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &prompt_path(prompt_id, &format!("/versions/{version}")),
        )
        .await
    }

    /// Updates a version's notes and aliases
    /// (`PATCH /v2/prompts/{id}/versions/{version}`).
    pub async fn update_version(
        &self,
        prompt_id: &str,
        version: u32,
        req: UpdatePromptVersionRequest,
    ) -> Result<ApiResponse<Prompt>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::PATCH,
            &prompt_path(prompt_id, &format!("/versions/{version}")),
            &req,
        )
        .await
    }

    /// Fetches a prompt (latest version, or the one given) and renders it with
    /// `vars` into chat messages (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get). Missing variables are an error displayed as
    /// ``could not build the request: missing prompt variables: `a`, `b` ``, whose
    /// [`source`](std::error::Error::source) is the [`MissingVariables`] naming
    /// each one.
    pub async fn render<I, K, V>(
        &self,
        prompt_id: &str,
        version: Option<PromptVersionRef>,
        vars: I,
    ) -> Result<Vec<ChatMessage>, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let prompt = self.get(prompt_id, version).await?;
        prompt.definition.render(vars).map_err(Error::request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_names_every_missing_variable() {
        let d = PromptDefinition::new("Hi {{name}}, {{ greeting }}! {{name}} {{}} {{a b}}");
        assert_eq!(
            d.render_text([("name", "Ada"), ("greeting", "bonjour")])
                .unwrap(),
            "Hi Ada, bonjour! Ada {{}} {{a b}}"
        );
        let e = d
            .clone()
            .variables(["name", "extra"])
            .render_text([("x", "y")])
            .unwrap_err();
        assert_eq!(e.names, ["name", "greeting", "extra"]);
        assert_eq!(
            e.to_string(),
            "missing prompt variables: `name`, `greeting`, `extra`"
        );
        let d = PromptDefinition::new(
            r#"[{"role":"system","content":"You speak {{lang}}."},{"role":"user","content":"{{q}}"}]"#,
        );
        let m = d.render([("lang", "French"), ("q", "Hello?")]).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], ChatMessage::system("You speak French."));
        assert_eq!(m[1], ChatMessage::user("Hello?"));
        assert_eq!(
            PromptDefinition::new("{{unclosed").render_text(Vec::<(String, String)>::new()),
            Ok("{{unclosed".to_owned())
        );
    }

    #[test]
    fn query_and_bodies_use_the_wire_names() {
        let q = PromptListQuery::new()
            .page_size(10)
            .page_token("t")
            .sort_field(PromptSortField::Name)
            .sort_direction(SortDirection::Asc);
        assert_eq!(
            q.to_path(),
            "/v2/prompts?pageSize=10&pageToken=t&sort.field=list_sort_field_name\
             &sort.direction=list_sort_direction_asc"
        );
        let v = serde_json::to_value(
            CreatePromptRequest::new("n", PromptDefinition::new("c"))
                .sharing_scope(SharingScope::Private),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "n", "definition": {"content": "c"}, "sharingScope": "private"})
        );
    }
}
