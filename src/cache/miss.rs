//! A keyed request without a usable entry: single-flight (lead the upstream call, or
//! join an identical one in flight), and the leader's recording of a cacheable answer.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::config::{Config, Shared};
use super::control::{CacheMode, CacheStatus, RequestControl, X_CACHE, response_forbids_store};
use super::engine::CacheEngine;
use super::entry::EntryKind;
use super::fleet::{self, FleetRole, NoStore, Publisher};
use super::flight::{Head, LeaderGuard, Recorder, Role, TeeBody};
use super::head::{content_length, is_sse};
use super::lookup::{Key, bounded, lookup};
use super::metrics::Metrics;
use super::respond::{follower_response, fresh_hit, mark_key, replay_only_miss};
use super::store::StoreCtx;
use crate::BoxError;

/// The answer of the cache service: a response, or the inner service's error.
pub(crate) type Res<ResBody, Err> = Result<Response<ResponseBody<ResBody>>, Err>;

/// A buffered and keyed request.
pub(crate) struct Keyed {
    pub(crate) parts: Parts,
    pub(crate) ctl: RequestControl,
    pub(crate) bytes: Bytes,
    pub(crate) key: Key,
    /// The engine must still be asked (it does not answer synchronously); otherwise
    /// no usable entry was found.
    pub(crate) lookup: bool,
}

/// Calls the inner service and passes its answer through, marked with `status`.
pub(crate) async fn forward<S, B, ResBody>(
    mut inner: S,
    parts: Parts,
    body: RequestBody<B>,
    status: CacheStatus,
) -> Res<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
{
    let mut res = inner.call(Request::from_parts(parts, body)).await?;
    res.headers_mut().insert(X_CACHE, status.header_value());
    Ok(res.map(ResponseBody::pass))
}

/// Asks the engine (if `call` could not), then leads or joins the request's flight.
pub(crate) async fn run<S, E, B, ResBody>(
    inner: S,
    cfg: Arc<Config>,
    shared: Arc<Shared<E>>,
    req: Keyed,
) -> Res<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    E: CacheEngine,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let Keyed {
        parts,
        ctl,
        bytes,
        key,
        lookup: lookup_first,
    } = req;
    let m = &shared.metrics;
    let derived = key;
    let key = derived.as_str();
    let read = !ctl.no_cache && cfg.mode != CacheMode::WriteOnly;
    if lookup_first {
        if let Some(entry) = lookup(&shared, &cfg, key).await
            && let Some(res) = fresh_hit(&cfg, &ctl, m, key, entry)
        {
            let namespace = ctl.namespace.as_deref().unwrap_or(&cfg.namespace);
            derived.remember(&cfg, &parts, namespace, &bytes);
            return Ok(res);
        }
        if let Some(res) = replay_only_miss(&cfg, &ctl, m, key) {
            return Ok(res);
        }
    } else if !read && let Some(res) = replay_only_miss(&cfg, &ctl, m, key) {
        // Not read at all (no-cache / write-only) yet only-if-cached: still a 504.
        return Ok(res);
    }
    let mut status = if read {
        CacheStatus::Miss
    } else {
        CacheStatus::Refresh
    };
    if cfg.mode == CacheMode::ReadOnly {
        Metrics::inc(&m.misses);
        let mut res = forward(inner, parts, RequestBody::full(bytes), status).await?;
        mark_key(res.headers_mut(), key);
        return Ok(res);
    }

    let ttl = ctl.ttl.or(cfg.ttl);
    for _attempt in 0..3 {
        let role = match cfg.flight_wait {
            Some(_) => shared
                .flights
                .join_or_lead(key, status != CacheStatus::Refresh),
            None => Role::Leader(shared.flights.lead_alone(key)),
        };
        match role {
            Role::Leader(guard) => {
                Metrics::inc(if status == CacheStatus::Refresh {
                    &m.refreshes
                } else {
                    &m.misses
                });
                tracing::debug!(
                    key = &**guard.key(),
                    status = status.as_str(),
                    "cache miss; calling upstream"
                );
                let ctx = StoreCtx {
                    shared: shared.clone(),
                    config: cfg.clone(),
                    ttl,
                    namespace: ctl.namespace.clone(),
                    method: parts.method.clone(),
                    path: parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned(),
                };
                // Only a plain miss asks the fleet (a refresh leads by itself).
                let publisher = match status {
                    CacheStatus::Miss => match fleet::join(&shared, &cfg, key).await {
                        FleetRole::Alone => None,
                        FleetRole::Leader(p) => Some(p),
                        FleetRole::Follower(head, body) => {
                            return Ok(follow_fleet(guard, head, body, shared.clone(), &cfg));
                        }
                    },
                    _ => None,
                };
                let req = Request::from_parts(parts, RequestBody::full(bytes));
                return lead(inner, req, guard, ctx, status, publisher).await;
            }
            Role::Follower(joined) => {
                let wait = cfg.flight_wait.unwrap_or_default();
                let flight = joined.flight().clone();
                // Joining a flight that already completed (its entry is being written)
                // is a hit; waiting for a live one is coalescing.
                let complete = flight.is_complete();
                match bounded(flight.wait_head(), wait).await {
                    Some(Some(head)) => {
                        let st = if complete {
                            Metrics::inc(&m.hits);
                            CacheStatus::Hit
                        } else {
                            Metrics::inc(&m.coalesced);
                            CacheStatus::Coalesced
                        };
                        tracing::debug!(
                            key,
                            status = st.as_str(),
                            "answered by an in-flight request"
                        );
                        return Ok(follower_response(joined, head, st, key));
                    }
                    Some(None) => {
                        // The leader failed before its head: start over (one of the
                        // followers becomes the new leader).
                        tracing::debug!(key, "in-flight leader failed; retrying");
                        status = CacheStatus::Miss;
                        continue;
                    }
                    None => {
                        tracing::debug!(key, "waited too long for the in-flight request");
                        break;
                    }
                }
            }
        }
    }
    Metrics::inc(&m.misses);
    let mut res = forward(inner, parts, RequestBody::full(bytes), status).await?;
    mark_key(res.headers_mut(), key);
    Ok(res)
}

/// The leader: calls upstream and, if the answer is cacheable, shares and records it.
async fn lead<S, E, B, ResBody>(
    mut inner: S,
    req: Request<RequestBody<B>>,
    guard: LeaderGuard,
    ctx: StoreCtx<E>,
    status: CacheStatus,
    publisher: Option<Publisher>,
) -> Res<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    E: CacheEngine,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    // On error the guard fails the flight, and the dropped publisher the fleet's.
    let res = inner.call(req).await?;
    let (mut rparts, rbody) = res.into_parts();
    let limit = ctx.config.max_response_body;
    let declared = content_length(&rparts.headers);
    let cacheable = rparts.status.is_success()
        && !response_forbids_store(&rparts.headers)
        && declared.is_none_or(|n| n <= limit as u64);
    if !cacheable {
        tracing::debug!(key = %guard.key(), status = %rparts.status, "response not cacheable");
        rparts.headers.insert(X_CACHE, status.header_value());
        mark_key(&mut rparts.headers, guard.key());
        drop(guard);
        return Ok(Response::from_parts(rparts, ResponseBody::pass(rbody)));
    }
    let kind = if is_sse(&rparts.headers) {
        EntryKind::Sse
    } else {
        EntryKind::Json
    };
    let head = Head {
        status: rparts.status,
        headers: rparts.headers.clone(),
        kind,
    };
    let mut erased: TeeBody = Box::pin(http_body_util::BodyExt::map_err(rbody, Into::into));
    if let Some(p) = publisher {
        p.head(&head);
        erased = p.wrap(erased, limit);
    }
    guard.flight().set_head(head);
    rparts.headers.insert(X_CACHE, status.header_value());
    mark_key(&mut rparts.headers, guard.key());
    let flight = guard.flight().clone();
    let rec = Recorder::new(erased, guard, Arc::new(ctx), limit);
    Ok(Response::from_parts(rparts, ResponseBody::tee(flight, rec)))
}

/// Answers from a flight another process leads: its body takes the place of the upstream
/// body in this process's flight (so identical requests here join it), without storing.
fn follow_fleet<E, ResBody>(
    guard: LeaderGuard,
    head: Head,
    body: TeeBody,
    shared: Arc<Shared<E>>,
    cfg: &Config,
) -> Response<ResponseBody<ResBody>>
where
    E: CacheEngine,
{
    Metrics::inc(&shared.metrics.coalesced);
    tracing::debug!(
        key = &**guard.key(),
        "answered by a flight in another process"
    );
    let mut res = Response::new(());
    *res.status_mut() = head.status;
    *res.headers_mut() = head.headers.clone();
    res.headers_mut()
        .insert(X_CACHE, CacheStatus::Coalesced.header_value());
    let flight = guard.flight().clone();
    flight.set_head(head);
    let rec = Recorder::new(
        body,
        guard,
        Arc::new(NoStore { shared }),
        cfg.max_response_body,
    );
    res.map(|()| ResponseBody::tee(flight, rec))
}
