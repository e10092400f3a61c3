//! Agents management (beta, `/v1/agents`): create, list (by page number or page
//! token), get, update, delete, versions and version aliases. Talking to an agent
//! goes through [`conversations`](crate::conversations) (or the older
//! [`agents`](crate::agents) completions).
//!
//! # Example
//!
//! ```no_run
//! use mistral_tower::Client;
//! use mistral_tower::agents_api::{CreateAgentRequest, UpdateAgentRequest};
//! use mistral_tower::conversations::ConversationRequest;
//!
//! # async fn run(client: Client) -> Result<(), mistral_tower::Error> {
//! let agent = client
//!     .agents_api()
//!     .create(CreateAgentRequest::new("mistral-medium-latest", "librarian").instructions("Be precise."))
//!     .await?;
//! client
//!     .agents_api()
//!     .update(&agent.id, UpdateAgentRequest::new().description("Finds books."))
//!     .await?;
//! client.agents_api().set_alias(&agent.id, "prod", 2).await?;
//! let res = client
//!     .conversations()
//!     .start(ConversationRequest::agent(&agent.id, "A book on tides?").agent_version("prod"))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! None of these operations is cached.

use std::sync::Arc;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::ApiResponse;
use crate::common::{GuardrailConfig, Tool, null_default, setters, string_enum};
pub use crate::conversations::{AgentVersion, CompletionArgs, Deleted};
use crate::pagination::{BoxFuture, Fetch, Page, Query, path_segment};
use crate::{Client, Error, RequestOptions};

string_enum! {
    /// Where an agent was made (`RequestSource`).
    AgentSource {
        /// The API.
        Api = "api",
        /// The playground.
        Playground = "playground",
        /// The first agent builder.
        AgentBuilderV1 = "agent_builder_v1",
    }
}

/// An agent (`Agent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent id.
    pub id: String,
    /// The object type, `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The model.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// The name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Instructions the model follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Guardrails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// Agents this one can hand off to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoffs: Option<Vec<String>>,
    /// Custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The current version.
    #[serde(default, deserialize_with = "null_default")]
    pub version: u64,
    /// Every version.
    #[serde(default, deserialize_with = "null_default")]
    pub versions: Vec<u64>,
    /// Creation time (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Last update (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub updated_at: String,
    /// Whether the agent is deployed to Le Chat.
    #[serde(default, deserialize_with = "null_default")]
    pub deployment_chat: bool,
    /// Where it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AgentSource>,
    /// The message of this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_message: Option<String>,
}

/// Creates an agent (`CreateAgentRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateAgentRequest {
    /// The model.
    pub model: String,
    /// The name.
    pub name: String,
    /// Instructions the model follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Guardrails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Agents this one can hand off to (at least one when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoffs: Option<Vec<String>>,
    /// Custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The message of the first version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_message: Option<String>,
}

impl CreateAgentRequest {
    /// An agent with a model and a name.
    pub fn new(model: impl Into<String>, name: impl Into<String>) -> Self {
        CreateAgentRequest {
            model: model.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    setters! {
        instructions: impl String,
        tools: Vec<Tool>,
        completion_args: CompletionArgs,
        guardrails: Vec<GuardrailConfig>,
        description: impl String,
        handoffs: Vec<String>,
        metadata: Map<String, Value>,
        version_message: impl String,
    }
}

/// Updates an agent, making a new version (`UpdateAgentRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateAgentRequest {
    /// Instructions the model follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Completion arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_args: Option<CompletionArgs>,
    /// Guardrails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<GuardrailConfig>>,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Agents this one can hand off to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoffs: Option<Vec<String>>,
    /// Whether the agent is deployed to Le Chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_chat: Option<bool>,
    /// Custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The message of the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_message: Option<String>,
}

impl UpdateAgentRequest {
    /// Nothing changed.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        instructions: impl String,
        tools: Vec<Tool>,
        completion_args: CompletionArgs,
        guardrails: Vec<GuardrailConfig>,
        model: impl String,
        name: impl String,
        description: impl String,
        handoffs: Vec<String>,
        deployment_chat: bool,
        metadata: Map<String, Value>,
        version_message: impl String,
    }
}

/// A page of agents read by token (`AgentListPage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentListPage {
    /// The object type, `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The agents.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<Agent>,
    /// The token of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A version alias (`AgentAliasResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentAlias {
    /// The alias.
    #[serde(default, deserialize_with = "null_default")]
    pub alias: String,
    /// The version it points to.
    #[serde(default, deserialize_with = "null_default")]
    pub version: u64,
    /// Creation time (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub created_at: String,
    /// Last update (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub updated_at: String,
}

/// Filters and pagination of [`AgentsApi::list`] and [`AgentsApi::list_pages`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentListQuery {
    /// The page, from 0 ([`AgentsApi::list`] only).
    pub page: Option<u64>,
    /// The page size (the API's default is 20).
    pub page_size: Option<u64>,
    /// The page token ([`AgentsApi::list_pages`] only).
    pub page_token: Option<String>,
    /// Only agents deployed (or not) to Le Chat.
    pub deployment_chat: Option<bool>,
    /// Only agents from these sources.
    pub sources: Option<Vec<AgentSource>>,
    /// Only agents with this name.
    pub name: Option<String>,
    /// A search string.
    pub search: Option<String>,
    /// Only the agent with this id.
    pub id: Option<String>,
}

impl AgentListQuery {
    /// No filter.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        page: u64,
        page_size: u64,
        page_token: impl String,
        deployment_chat: bool,
        sources: Vec<AgentSource>,
        name: impl String,
        search: impl String,
        id: impl String,
    }

    fn filters(&self, q: &mut Query) {
        q.opt("page_size", self.page_size)
            .opt("deployment_chat", self.deployment_chat)
            .list("sources", self.sources.as_deref())
            .opt("name", self.name.as_deref())
            .opt("search", self.search.as_deref())
            .opt("id", self.id.as_deref());
    }
}

impl Client {
    /// Agents management (beta, `/v1/agents`).
    pub fn agents_api(&self) -> AgentsApi<'_> {
        AgentsApi {
            client: self,
            options: RequestOptions::default(),
        }
    }
}

/// Agents management (beta, `/v1/agents`).
#[derive(Debug, Clone)]
pub struct AgentsApi<'a> {
    client: &'a Client,
    options: RequestOptions,
}

fn agent_path(id: &str, tail: &str) -> String {
    format!("/v1/agents/{}{tail}", path_segment(id))
}

impl AgentsApi<'_> {
    /// Sends every call of this handle with these options (replacing any set before).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates an agent (`POST /v1/agents`).
    pub async fn create(&self, req: CreateAgentRequest) -> Result<ApiResponse<Agent>, Error> {
        crate::beta::json(self.client, &self.options, Method::POST, "/v1/agents", &req).await
    }

    /// Lists agents by page number (`GET /v1/agents`): one page, whose
    /// [`into_stream`](Page::into_stream) walks the following ones.
    pub async fn list(&self, query: AgentListQuery) -> Result<ApiResponse<Page<Agent>>, Error> {
        list_page(self.client.clone(), self.options.clone(), query).await
    }

    /// Lists agents by page token (`GET /v1/agents/pages`).
    pub async fn list_pages(
        &self,
        query: AgentListQuery,
    ) -> Result<ApiResponse<AgentListPage>, Error> {
        let mut q = Query::new();
        query.filters(&mut q);
        q.opt("page_token", query.page_token.as_deref());
        crate::beta::get(self.client, &self.options, &q.to_path("/v1/agents/pages")).await
    }

    /// Retrieves an agent (`GET /v1/agents/{id}`), at its current version or the one
    /// given (a number or an alias).
    pub async fn get(
        &self,
        agent_id: &str,
        version: Option<AgentVersion>,
    ) -> Result<ApiResponse<Agent>, Error> {
        let mut q = Query::new();
        q.opt("agent_version", version);
        crate::beta::get(
            self.client,
            &self.options,
            &q.to_path(&agent_path(agent_id, "")),
        )
        .await
    }

    /// Updates an agent, making a new version (`PATCH /v1/agents/{id}`).
    pub async fn update(
        &self,
        agent_id: &str,
        req: UpdateAgentRequest,
    ) -> Result<ApiResponse<Agent>, Error> {
        crate::beta::json(
            self.client,
            &self.options,
            Method::PATCH,
            &agent_path(agent_id, ""),
            &req,
        )
        .await
    }

    /// Deletes an agent (`DELETE /v1/agents/{id}`).
    pub async fn delete(&self, agent_id: &str) -> Result<ApiResponse<Deleted>, Error> {
        crate::beta::delete(self.client, &self.options, &agent_path(agent_id, "")).await
    }

    /// Makes `version` the agent's current version
    /// (`PATCH /v1/agents/{id}/version?version=`).
    pub async fn update_version(
        &self,
        agent_id: &str,
        version: u64,
    ) -> Result<ApiResponse<Agent>, Error> {
        let mut q = Query::new();
        q.push("version", version);
        crate::beta::empty(
            self.client,
            &self.options,
            Method::PATCH,
            &q.to_path(&agent_path(agent_id, "/version")),
        )
        .await
    }

    /// Lists an agent's versions (`GET /v1/agents/{id}/versions`): one page, whose
    /// [`into_stream`](Page::into_stream) walks the following ones.
    pub async fn versions(
        &self,
        agent_id: &str,
        page: Option<u64>,
        page_size: Option<u64>,
    ) -> Result<ApiResponse<Page<Agent>>, Error> {
        versions_page(
            self.client.clone(),
            self.options.clone(),
            agent_id.to_owned(),
            page.unwrap_or(0),
            page_size,
        )
        .await
    }

    /// Retrieves one version (`GET /v1/agents/{id}/versions/{version}`).
    pub async fn get_version(
        &self,
        agent_id: &str,
        version: impl Into<AgentVersion>,
    ) -> Result<ApiResponse<Agent>, Error> {
        let v = path_segment(&version.into().to_string());
        crate::beta::get(
            self.client,
            &self.options,
            &agent_path(agent_id, &format!("/versions/{v}")),
        )
        .await
    }

    /// Creates or moves an alias to a version (`PUT /v1/agents/{id}/aliases`).
    pub async fn set_alias(
        &self,
        agent_id: &str,
        alias: &str,
        version: u64,
    ) -> Result<ApiResponse<AgentAlias>, Error> {
        let mut q = Query::new();
        q.push("alias", alias).push("version", version);
        crate::beta::empty(
            self.client,
            &self.options,
            Method::PUT,
            &q.to_path(&agent_path(agent_id, "/aliases")),
        )
        .await
    }

    /// Lists an agent's aliases (`GET /v1/agents/{id}/aliases`).
    pub async fn aliases(&self, agent_id: &str) -> Result<ApiResponse<Vec<AgentAlias>>, Error> {
        crate::beta::get(
            self.client,
            &self.options,
            &agent_path(agent_id, "/aliases"),
        )
        .await
    }

    /// Deletes an alias (`DELETE /v1/agents/{id}/aliases?alias=`).
    pub async fn delete_alias(
        &self,
        agent_id: &str,
        alias: &str,
    ) -> Result<ApiResponse<Deleted>, Error> {
        let mut q = Query::new();
        q.push("alias", alias);
        crate::beta::delete(
            self.client,
            &self.options,
            &q.to_path(&agent_path(agent_id, "/aliases")),
        )
        .await
    }
}

fn list_page(
    client: Client,
    options: RequestOptions,
    query: AgentListQuery,
) -> BoxFuture<Result<ApiResponse<Page<Agent>>, Error>> {
    Box::pin(async move {
        let mut q = Query::new();
        q.opt("page", query.page);
        query.filters(&mut q);
        let res: ApiResponse<Vec<Agent>> =
            crate::beta::get(&client, &options, &q.to_path("/v1/agents")).await?;
        let page = query.page.unwrap_or(0);
        let page_size = query.page_size.unwrap_or(20);
        let fetch: Fetch<Agent> = Arc::new(move |n| {
            let client = client.clone();
            let options = options.clone();
            let query = query.clone().page(n);
            Box::pin(async move { Ok(list_page(client, options, query).await?.into_data()) })
        });
        Ok(res.map(|l| Page::new(l, None, page, page_size).with_fetch(fetch)))
    })
}

fn versions_page(
    client: Client,
    options: RequestOptions,
    agent_id: String,
    page: u64,
    page_size: Option<u64>,
) -> BoxFuture<Result<ApiResponse<Page<Agent>>, Error>> {
    Box::pin(async move {
        let mut q = Query::new();
        q.push("page", page).opt("page_size", page_size);
        let res: ApiResponse<Vec<Agent>> = crate::beta::get(
            &client,
            &options,
            &q.to_path(&agent_path(&agent_id, "/versions")),
        )
        .await?;
        let fetch: Fetch<Agent> = Arc::new(move |n| {
            let client = client.clone();
            let options = options.clone();
            let agent_id = agent_id.clone();
            Box::pin(async move {
                Ok(versions_page(client, options, agent_id, n, page_size)
                    .await?
                    .into_data())
            })
        });
        Ok(res.map(|l| Page::new(l, None, page, page_size.unwrap_or(20)).with_fetch(fetch)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_reads_tolerantly_and_requests_write_exactly() {
        let a: Agent = serde_json::from_str(
            r#"{"id":"ag_1","model":"m","name":"n","version":2,"versions":[1,2],
                "created_at":"t","updated_at":"t","deployment_chat":false,"source":"new_source",
                "handoffs":null,"future":1}"#,
        )
        .unwrap();
        assert_eq!(a.source, Some(AgentSource::Other("new_source".into())));
        assert_eq!(a.versions, [1, 2]);
        let v = serde_json::to_value(CreateAgentRequest::new("m", "n")).unwrap();
        assert_eq!(v, serde_json::json!({"model": "m", "name": "n"}));
    }
}
