//! Crate-private helpers shared by the beta resources (conversations, agents,
//! libraries, documents, prompts): bodiless GET / DELETE and JSON calls with any
//! method, decoded through [`crate::raw`] (an empty answer to anything but a `GET`
//! reads as `{}`), each sent
//! with its handle's [`RequestOptions`].

use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{ApiResponse, RequestOptions};
use crate::{Body, Client, Error, raw};

/// `GET path`, decoded.
pub(crate) async fn get<T: DeserializeOwned>(
    client: &Client,
    options: &RequestOptions,
    path: &str,
) -> Result<ApiResponse<T>, Error> {
    let req = raw::empty_request(Method::GET, path, "application/json")?;
    raw::call(client, req, options).await
}

/// `DELETE path`; a bodiless answer decodes as `{}`.
pub(crate) async fn delete<T: DeserializeOwned>(
    client: &Client,
    options: &RequestOptions,
    path: &str,
) -> Result<ApiResponse<T>, Error> {
    let req = raw::empty_request(Method::DELETE, path, "application/json")?;
    raw::call_allow_empty(client, req, options).await
}

/// A bodiless request with any method, decoded.
pub(crate) async fn empty<T: DeserializeOwned>(
    client: &Client,
    options: &RequestOptions,
    method: Method,
    path: &str,
) -> Result<ApiResponse<T>, Error> {
    let req = raw::empty_request(method, path, "application/json")?;
    raw::call_allow_empty(client, req, options).await
}

/// A JSON request with any method, decoded (a bodiless answer reads as `{}`).
pub(crate) async fn json<B: Serialize + ?Sized, T: DeserializeOwned>(
    client: &Client,
    options: &RequestOptions,
    method: Method,
    path: &str,
    body: &B,
) -> Result<ApiResponse<T>, Error> {
    let bytes = serde_json::to_vec(body).map_err(Error::request)?;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::full(bytes))
        .map_err(Error::request)?;
    raw::call_allow_empty(client, req, options).await
}

/// A bodiless request whose answer has no body to decode (a `204`).
pub(crate) async fn unit(
    client: &Client,
    options: &RequestOptions,
    method: Method,
    path: &str,
) -> Result<ApiResponse<()>, Error> {
    let req = raw::empty_request(method, path, "application/json")?;
    let res = raw::send_checked(client, req, options).await?;
    let (parts, _body) = res.into_parts();
    Ok(ApiResponse::new((), parts.status, parts.headers))
}
