//! The LLM gateway's HTTP side: `POST /v1/chat/completions`, `/v1/responses` and
//! `/v1/messages` for agents holding a Lockgate credential. Each call: verify the
//! credential (and that it is not revoked), check model and task class against its
//! scope, reserve the worst-case cost on every budget line, call the upstream with the
//! provider key, pass the answer through (streams chunk by chunk), settle with the
//! usage the answer reports — or with the whole reservation when it reports none.
//!
//! Refusals come in the shape of the API called (OpenAI `{"error":{…}}`, Anthropic
//! `{"type":"error","error":{…}}`), so agents' SDKs surface them as they are.

pub mod anomaly;
pub mod blocks;
pub mod cache;
pub mod calllog;
pub mod config;
pub mod lease;
pub mod spend;

use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use blocks::CallBlock;
use config::{Loaded, Upstream, UpstreamKind};
use futures_util::StreamExt;
use lockgate_gateway::api::{Api, RequestFacts, StreamUsage, usage_from_response};
use lockgate_gateway::credential::{Credential, Scope, name_matches};
use lockgate_gateway::price::{Micros, Usage, format_usd};
use lockgate_store::{BudgetLine, NewReservation};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// The largest non-streaming answer read from an upstream.
const MAX_ANSWER: usize = 32 << 20;
/// The most upstreams one call tries (the route and its fallbacks).
const MAX_ATTEMPTS: usize = 3;
/// The header naming the task class of a call.
pub const TASK_CLASS_HEADER: &str = "x-lockgate-task-class";

/// The gateway as the server runs it.
pub struct Gateway {
    pub loaded: Arc<Loaded>,
    client: reqwest::Client,
    /// `None` when `[gateway.cache] enabled = false`.
    pub cache: Option<cache::ResponseCache>,
    /// Revocations and freezes, in memory.
    pub blocks: blocks::Blocks,
    /// This replica's budget slices.
    pub leases: lease::Leases,
    /// The writer of calls made under leases (started with the server; without it,
    /// every call is reserved on its own).
    pub call_log: std::sync::OnceLock<calllog::CallLog>,
}

impl Gateway {
    pub fn new(loaded: Arc<Loaded>) -> Gateway {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default TLS roots");
        let cache = loaded.cache.as_ref().map(cache::ResponseCache::new);
        let blocks = blocks::Blocks::new(loaded.block_refresh);
        let leases = lease::Leases::new(loaded.lease);
        Gateway {
            loaded,
            client,
            cache,
            blocks,
            leases,
            call_log: std::sync::OnceLock::new(),
        }
    }
}

pub async fn chat_completions(
    state: State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    proxy(state, Api::ChatCompletions, headers, body).await
}

pub async fn responses(state: State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(state, Api::Responses, headers, body).await
}

pub async fn messages(state: State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(state, Api::Messages, headers, body).await
}

/// The call's task class: the request's header, or the credential's only class.
fn task_class(scope: &Scope, headers: &HeaderMap) -> Option<String> {
    if let Some(c) = headers.get(TASK_CLASS_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(c.trim().to_string());
    }
    match scope.task_classes.as_deref() {
        Some([only]) if !only.ends_with('*') => Some(only.clone()),
        _ => None,
    }
}

/// The request to `upstream`: the body as the agent sent it, the provider's key, and
/// for Anthropic the API version and beta flags the agent asked for.
fn upstream_request(
    gateway: &Gateway,
    upstream: &Upstream,
    api: Api,
    headers: &HeaderMap,
    body: Bytes,
    stream: bool,
) -> reqwest::RequestBuilder {
    let mut request = gateway
        .client
        .post(format!("{}{}", upstream.base_url, api.path()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    request = match (upstream.kind, &upstream.key) {
        (UpstreamKind::Openai, Some(key)) => request.bearer_auth(key),
        (UpstreamKind::Anthropic, Some(key)) => request.header("x-api-key", key),
        (_, None) => request,
    };
    if upstream.kind == UpstreamKind::Anthropic {
        for name in ["anthropic-version", "anthropic-beta"] {
            if let Some(v) = headers.get(name) {
                request = request.header(name, v.clone());
            }
        }
        if headers.get("anthropic-version").is_none() {
            request = request.header("anthropic-version", "2023-06-01");
        }
    }
    if !stream {
        request = request.timeout(Duration::from_secs(600));
    }
    request
}

/// A refusal, in the shape of the API that was called.
struct Refusal {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind,
            message: message.into(),
        }
    }

    fn into_response(self, api: Api) -> Response {
        let body = match api {
            Api::Messages => serde_json::json!({
                "type": "error",
                "error": {"type": anthropic_type(self.status), "message": self.message},
            }),
            _ => serde_json::json!({
                "error": {"message": self.message, "type": self.kind, "code": self.kind, "param": null},
            }),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

async fn proxy(
    State(state): State<Arc<AppState>>,
    api: Api,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit_and_call(&state, api, &headers, body).await {
        Ok(response) => response,
        Err(refusal) => {
            state
                .metrics
                .gateway_refusals
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            refusal.into_response(api)
        }
    }
}

async fn admit_and_call(
    state: &Arc<AppState>,
    api: Api,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let Some(gateway) = &state.gateway else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the LLM gateway is not configured on this server",
        ));
    };
    let g = &gateway.loaded;
    let scope = authenticate(gateway, headers)?;
    let mut facts = RequestFacts::parse(api, &body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            e.to_string(),
        )
    })?;
    let class = task_class(&scope, headers);
    if scope.task_classes.is_some() && !class.as_deref().is_some_and(|c| scope.allows_task_class(c))
    {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "task_class_not_allowed",
            format!(
                "this credential allows task classes {:?}; send one in the {TASK_CLASS_HEADER} header",
                scope.task_classes.as_deref().unwrap_or_default()
            ),
        ));
    }
    // A task-class route sends the call to its tier's model: the one change the
    // gateway makes to a request body.
    let mut body = body;
    let mut requested_model = None;
    if let Some(route) = class
        .as_deref()
        .and_then(|c| g.routes.iter().find(|r| r.task_class == c))
        .filter(|r| r.model != facts.model)
    {
        let mut doc: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "the request body is not JSON",
            )
        })?;
        doc["model"] = route.model.clone().into();
        body = Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serializes"));
        requested_model = Some(std::mem::replace(&mut facts.model, route.model.clone()));
    }
    if !scope.allows_model(&facts.model) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "model_not_allowed",
            format!("this credential does not allow model {:?}", facts.model),
        ));
    }
    let family = match api {
        Api::Messages => UpstreamKind::Anthropic,
        _ => UpstreamKind::Openai,
    };
    // Every upstream of the API's family that serves the model, in config order: the
    // first is the route, the next ones the fallbacks.
    let candidates: Vec<&Upstream> = g
        .upstreams
        .iter()
        .filter(|u| u.kind == family && u.models.iter().any(|p| name_matches(p, &facts.model)))
        .take(MAX_ATTEMPTS)
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("no upstream serves model {:?} on this API", facts.model),
        ));
    }
    // A deterministic request may be answered from the cache: no upstream, no spend.
    let cached = match &gateway.cache {
        Some(c) if facts.deterministic && !cache::bypassed(headers) => {
            lockgate_gateway::cache::cache_key(api, &scope.project, &body).map(|key| (c, key))
        }
        _ => None,
    };
    let mut leader = None;
    if let Some((c, key)) = &cached {
        if let Some(answer) = c.get(key).await {
            state.metrics.gateway_cache_hits.fetch_add(1, Relaxed);
            return Ok(cache::replay(&answer));
        }
        // An identical call in flight: wait for it, and take its answer if it kept one.
        match c.turn(key) {
            cache::Turn::Lead(l) => leader = Some(l),
            cache::Turn::Follow(running) => {
                drop(running.read().await);
                if let Some(answer) = c.get(key).await {
                    state.metrics.gateway_cache_hits.fetch_add(1, Relaxed);
                    state.metrics.gateway_collapsed.fetch_add(1, Relaxed);
                    return Ok(cache::replay(&answer));
                }
            }
        }
        state.metrics.gateway_cache_misses.fetch_add(1, Relaxed);
    }
    let keep = cached.map(|(_, key)| Keep {
        state: state.clone(),
        key,
        _leader: leader,
    });
    let worst = g
        .prices
        .worst_case(&facts.model, body.len() as u64, facts.max_output_tokens)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "model_not_priced", e.to_string()))?;
    let reserved_ms = crate::now_ms();
    let hold = reserve(state, gateway, &scope, &facts.model, worst).await?;
    let mut settle = Settlement {
        state: state.clone(),
        hold,
        credential: scope.id.clone(),
        reserved_ms,
        worst,
        agent: scope.agent.clone(),
        project: scope.project.clone(),
        model: facts.model.clone(),
        route: None,
    };

    // Fall back to the next upstream when this one surely did not run the call — it
    // could not be reached, or it answered 5xx (providers do not bill those) — or when
    // its answer did not begin within its timeout. A call that timed out may still run
    // and bill, so it is charged its whole reservation and the next attempt reserves
    // its own worst case: a fallback never spends money the budget did not hold.
    let mut failures = Vec::new();
    let mut answered = None;
    for (i, upstream) in candidates.iter().enumerate() {
        let last = i + 1 == candidates.len();
        let request = upstream_request(gateway, upstream, api, headers, body.clone(), facts.stream);
        match tokio::time::timeout(upstream.timeout, request.send()).await {
            Ok(Ok(answer)) if answer.status().is_server_error() && !last => {
                failures.push(format!(
                    "{} answered {}",
                    upstream.name,
                    answer.status().as_u16()
                ));
            }
            Ok(Ok(answer)) => {
                answered = Some((*upstream, answer));
                break;
            }
            Ok(Err(e)) if e.is_connect() => {
                failures.push(format!("{} could not be reached", upstream.name));
            }
            Ok(Err(_)) => {
                settle.finish(worst).await;
                return Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    format!(
                        "upstream {} did not finish answering; the call is charged its reservation",
                        upstream.name
                    ),
                ));
            }
            Err(_elapsed) => {
                let timed_out = format!(
                    "{} did not answer within {}",
                    upstream.name,
                    humantime::format_duration(upstream.timeout)
                );
                if last {
                    settle.route = Some((upstream.name.clone(), requested_model));
                    settle.finish(worst).await;
                    return Err(Refusal::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                        format!(
                            "{}; the call is charged its reservation",
                            failures
                                .iter()
                                .chain([&timed_out])
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ));
                }
                match reserve(state, gateway, &scope, &facts.model, worst).await {
                    Ok(hold) => {
                        let mut attempt = settle.swap_hold(hold);
                        attempt.route = Some((upstream.name.clone(), requested_model.clone()));
                        attempt.finish(worst).await;
                        failures.push(timed_out);
                    }
                    Err(mut refusal) => {
                        settle.route = Some((upstream.name.clone(), requested_model));
                        settle.finish(worst).await;
                        refusal.message = format!(
                            "{timed_out} (charged its reservation), and no retry elsewhere: {}",
                            refusal.message
                        );
                        return Err(refusal);
                    }
                }
            }
        }
    }
    let Some((upstream, answer)) = answered else {
        settle.finish(0).await;
        return Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("no upstream answered: {}", failures.join("; ")),
        ));
    };
    settle.route = Some((upstream.name.clone(), requested_model));
    if !failures.is_empty() {
        tracing::warn!(upstream = %upstream.name, failed = %failures.join("; "), "model call fell back");
        state
            .metrics
            .gateway_fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let streaming = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let cache_state = if keep.is_some() {
        Some(HeaderValue::from_static("miss"))
    } else {
        bypass_state(headers, gateway, facts.deterministic)
    };
    // Only a complete 200 answer is kept.
    let keep = keep.filter(|_| status == StatusCode::OK);
    if streaming {
        let mut response = stream_through(api, status, content_type, answer, settle, keep);
        if let Some(v) = cache_state {
            response.headers_mut().insert(cache::CACHE_HEADER, v);
        }
        return Ok(response);
    }
    let mut bytes = Vec::new();
    let mut stream = answer.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            settle.finish(worst).await;
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the upstream's answer broke off",
            ));
        };
        if bytes.len() + chunk.len() > MAX_ANSWER {
            settle.finish(worst).await;
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the upstream's answer is too large",
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let usage = usage_from_response(api, &bytes);
    // Providers do not bill refused requests.
    let cost = if usage.is_none() && !status.is_success() {
        0
    } else {
        settle.cost_of(usage)
    };
    settle.finish(cost).await;
    let bytes = Bytes::from(bytes);
    if let Some(keep) = keep {
        keep.put(content_type.clone(), bytes.clone(), false).await;
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Some(v) = cache_state {
        response.headers_mut().insert(cache::CACHE_HEADER, v);
    }
    Ok(response)
}

/// `bypass` for a cacheable request that asked to skip the cache.
fn bypass_state(
    headers: &HeaderMap,
    gateway: &Gateway,
    deterministic: bool,
) -> Option<HeaderValue> {
    (gateway.cache.is_some() && deterministic && cache::bypassed(headers))
        .then(|| HeaderValue::from_static("bypass"))
}

fn unavailable() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the ledger is unavailable",
    )
}

/// Passes an event stream through chunk by chunk, reading its usage; settles when the
/// stream ends or the agent goes away (with the usage seen, or the worst case). A stream
/// that ends cleanly is kept in the cache when its request may be.
fn stream_through(
    api: Api,
    status: StatusCode,
    content_type: Option<HeaderValue>,
    answer: reqwest::Response,
    settle: Settlement,
    keep: Option<Keep>,
) -> Response {
    struct Follow {
        usage: StreamUsage,
        settle: Option<Settlement>,
        /// The answer so far, while it may still be cached.
        kept: Option<(Keep, Vec<u8>)>,
        content_type: Option<HeaderValue>,
    }
    impl Drop for Follow {
        fn drop(&mut self) {
            if let Some(settle) = self.settle.take() {
                let cost = settle.cost_of(self.usage.usage());
                tokio::spawn(settle.finish(cost));
            }
        }
    }
    let follow = Follow {
        usage: StreamUsage::new(api),
        settle: Some(settle),
        kept: keep.map(|k| (k, Vec::new())),
        content_type: content_type.clone(),
    };
    let upstream = Box::pin(answer.bytes_stream());
    let stream = futures_util::stream::unfold(
        (upstream, follow),
        |(mut upstream, mut follow)| async move {
            match upstream.next().await {
                Some(Ok(bytes)) => {
                    follow.usage.feed(&bytes);
                    if let Some((keep, so_far)) = &mut follow.kept {
                        let limit = keep.cache().map_or(0, |c| c.max_entry_bytes());
                        if so_far.len() + bytes.len() > limit {
                            follow.kept = None;
                        } else {
                            so_far.extend_from_slice(&bytes);
                        }
                    }
                    Some((Ok(bytes), (upstream, follow)))
                }
                Some(Err(e)) => {
                    follow.kept = None;
                    Some((Err(std::io::Error::other(e)), (upstream, follow)))
                }
                None => {
                    if let Some((keep, whole)) = follow.kept.take() {
                        keep.put(follow.content_type.clone(), Bytes::from(whole), true)
                            .await;
                    }
                    None
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Where an answer goes once it is complete, when its request may be cached.
struct Keep {
    state: Arc<AppState>,
    key: lockgate_gateway::cache::CacheKey,
    /// Set when identical calls may be waiting for this one: they go when it drops.
    _leader: Option<cache::Leader>,
}

impl Keep {
    fn cache(&self) -> Option<&cache::ResponseCache> {
        self.state.gateway.as_ref()?.cache.as_ref()
    }

    async fn put(self, content_type: Option<HeaderValue>, body: Bytes, streamed: bool) {
        if let Some(cache) = self.cache() {
            let answer = cache::Cached {
                content_type,
                body,
                streamed,
            };
            cache.put(self.key, answer).await;
        }
    }
}

/// What a call's worst case is reserved in.
enum Hold {
    /// A reservation of its own in the ledger.
    Own(String),
    /// A share of this replica's budget slice.
    Lease(lease::Draw),
}

/// A reservation to settle once the call's cost is known.
struct Settlement {
    state: Arc<AppState>,
    hold: Hold,
    credential: String,
    reserved_ms: i64,
    worst: Micros,
    agent: String,
    project: String,
    model: String,
    /// The upstream that answered, and the model asked for when a route changed it:
    /// recorded with the settlement (no extra write per call).
    route: Option<(String, Option<String>)>,
}

impl Settlement {
    /// Puts the call's next attempt under `hold` and returns the previous attempt's
    /// settlement (same call, its own hold) to finish on its own.
    fn swap_hold(&mut self, hold: Hold) -> Settlement {
        let previous = std::mem::replace(&mut self.hold, hold);
        let reserved_ms = std::mem::replace(&mut self.reserved_ms, crate::now_ms());
        Settlement {
            state: self.state.clone(),
            hold: previous,
            credential: self.credential.clone(),
            reserved_ms,
            worst: self.worst,
            agent: self.agent.clone(),
            project: self.project.clone(),
            model: self.model.clone(),
            route: None,
        }
    }

    /// What the reported usage costs; the whole reservation when there is none (or
    /// the model cannot be priced).
    fn cost_of(&self, usage: Option<Usage>) -> Micros {
        usage
            .and_then(|u| {
                let gateway = self.state.gateway.as_ref()?;
                gateway.loaded.prices.cost(&self.model, u).ok()
            })
            .unwrap_or(self.worst)
    }

    async fn finish(self, cost: Micros) {
        let Settlement {
            state,
            hold,
            credential,
            reserved_ms,
            worst,
            agent,
            project,
            model,
            route,
        } = self;
        let (upstream, requested_model) = route.unzip();
        let requested_model = requested_model.flatten();
        match hold {
            Hold::Own(reservation) => {
                let route = upstream.as_deref().map(|u| (u, requested_model.as_deref()));
                if let Err(e) = state.store.settle_routed(&reservation, cost, route).await {
                    // The reservation stays open and is charged in full by the abandoned-call sweep.
                    tracing::warn!(error = %e, reservation = %reservation, "settling a model call");
                }
            }
            Hold::Lease(draw) => {
                let gateway = state.gateway.as_ref().expect("a lease implies the gateway");
                let lease_id = draw.lease.clone();
                if let Some(retired) = gateway.leases.settle(draw, cost) {
                    let failed = lease::settle_in_ledger(&state.store, vec![retired]).await;
                    gateway.leases.retry_later(failed);
                }
                if let Some(log) = gateway.call_log.get() {
                    log.push(lockgate_store::FinishedCall {
                        id: lockgate_store::new_id(),
                        agent: agent.clone(),
                        project: project.clone(),
                        credential,
                        model: model.clone(),
                        requested_model,
                        upstream,
                        reserved_micros: worst,
                        cost_micros: cost.max(0),
                        created_ms: reserved_ms,
                        settled_ms: crate::now_ms(),
                        lease: lease_id,
                    })
                    .await;
                }
            }
        }
        let cost = cost.max(0) as u64;
        state
            .metrics
            .gateway_spend_micros
            .fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
        state
            .metrics
            .gateway_spend
            .record(&agent, &project, &model, cost);
    }
}

fn authenticate(gateway: &Gateway, headers: &HeaderMap) -> Result<Scope, Refusal> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let unauthorized = |m: String| Refusal::new(StatusCode::UNAUTHORIZED, "invalid_api_key", m);
    let wire = bearer
        .or(api_key)
        .ok_or_else(|| unauthorized("send a Lockgate credential (lgc_…) as the API key".into()))?;
    let credential = Credential::decode(wire).map_err(|e| unauthorized(e.to_string()))?;
    let scope = credential
        .verify(&gateway.loaded.key, crate::now_ms())
        .map_err(|e| unauthorized(e.to_string()))?;
    match gateway
        .blocks
        .check(&scope.id, &scope.agent)
        .map_err(|_| unavailable())?
    {
        None => Ok(scope),
        Some(CallBlock::Revoked) => {
            Err(unauthorized(format!("credential {} was revoked", scope.id)))
        }
        Some(CallBlock::Frozen(hold)) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "agent_frozen",
            format!(
                "agent {} is frozen: {} (hold {}, placed by {}). A person releases it in the web UI or with POST /api/v1/holds/release.",
                scope.agent, hold.reason, hold.id, hold.placed_by
            ),
        )),
    }
}

/// Reserves `amount` on the agent's and project's day and month and on each spending
/// cap of the credential.
async fn reserve(
    state: &AppState,
    gateway: &Gateway,
    scope: &Scope,
    model: &str,
    amount: Micros,
) -> Result<Hold, Refusal> {
    let g = &gateway.loaded;
    let now = crate::now_ms();
    let (day, month) = periods(now);
    let line = |scope: String, period: String, limit_micros: Micros| BudgetLine {
        scope,
        period,
        limit_micros,
    };
    let (agent, project) = (
        format!("agent:{}", scope.agent),
        format!("project:{}", scope.project),
    );
    let (agent_daily, agent_monthly) = g.budgets.agent(&scope.agent);
    let (project_daily, project_monthly) = g.budgets.project(&scope.project);
    let mut lines = vec![
        line(agent.clone(), format!("day:{day}"), agent_daily),
        line(agent, format!("month:{month}"), agent_monthly),
        line(project.clone(), format!("day:{day}"), project_daily),
        line(project, format!("month:{month}"), project_monthly),
    ];
    for cap in &scope.spend_caps {
        lines.push(line(cap.key.clone(), "ever".into(), cap.micros));
    }
    let reservation = NewReservation {
        agent: scope.agent.clone(),
        project: scope.project.clone(),
        credential: scope.id.clone(),
        model: model.to_string(),
        amount_micros: amount,
        lines,
        lease: false,
    };
    if gateway.call_log.get().is_some() {
        match gateway.leases.draw(&state.store, &reservation).await {
            Ok(Some(draw)) => return Ok(Hold::Lease(draw)),
            Ok(None) => {}
            Err(_) => return Err(unavailable()),
        }
    }
    match state.store.reserve(&reservation).await {
        Ok(Ok(id)) => Ok(Hold::Own(id)),
        Ok(Err(exhausted)) => {
            let resets = match exhausted.period.split_once(':') {
                Some(("day", _)) => "at 00:00 UTC tomorrow".to_string(),
                Some(("month", _)) => "at 00:00 UTC on the first of next month".to_string(),
                _ => "never (a credential's cap)".to_string(),
            };
            Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exceeded",
                format!(
                    "budget {} for {} exhausted: limit {}, spent {}, reserved by calls in flight {}; this call may cost up to {}. It resets {resets}.",
                    exhausted.scope,
                    exhausted.period,
                    format_usd(exhausted.limit_micros),
                    format_usd(exhausted.spent_micros),
                    format_usd(exhausted.reserved_micros),
                    format_usd(exhausted.needed_micros),
                ),
            ))
        }
        Err(_) => Err(unavailable()),
    }
}

/// Charges calls whose outcome was lost (open longer than `abandon_after`) their whole
/// reservation, every half of that period (at most every minute), until the server stops.
pub async fn sweep_abandoned(state: Arc<AppState>) {
    let Some(gateway) = &state.gateway else {
        return;
    };
    let after = gateway.loaded.abandon_after;
    let every = (after / 2).min(Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        match state.store.settle_abandoned(after.as_millis() as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                calls = n,
                "charged abandoned model calls their whole reservation"
            ),
            Err(e) => tracing::warn!(error = %e, "sweeping abandoned model calls"),
        }
    }
}

/// Settles this replica's idle, old and retired budget slices until the server stops.
pub async fn sweep_leases(state: Arc<AppState>) {
    let Some(gateway) = &state.gateway else {
        return;
    };
    let every = (gateway.loaded.lease.idle / 2).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let due = gateway.leases.due(false);
        let failed = lease::settle_in_ledger(&state.store, due).await;
        gateway.leases.retry_later(failed);
    }
}

/// At shutdown (no call in flight): settles every slice and writes every queued call.
pub async fn wind_down(state: &AppState) {
    let Some(gateway) = &state.gateway else {
        return;
    };
    let failed = lease::settle_in_ledger(&state.store, gateway.leases.due(true)).await;
    if !failed.is_empty() {
        tracing::warn!(
            leases = failed.len(),
            "budget leases left open; the abandoned-call sweep charges them in full"
        );
    }
    if let Some(log) = gateway.call_log.get() {
        log.flush().await;
    }
}

/// Applies a change to holds or revocations made through this replica to its calls at
/// once (other replicas see it at their next refresh).
pub async fn blocks_changed(state: &AppState) {
    if let Some(gateway) = &state.gateway
        && let Err(e) = gateway.blocks.refresh(&state.store).await
    {
        tracing::warn!(error = %e, "refreshing revocations and freezes");
    }
}

/// `YYYY-MM-DD` and `YYYY-MM` (UTC) of `ms` since the epoch.
fn periods(ms: i64) -> (String, String) {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    (
        t.format("%Y-%m-%d").to_string(),
        t.format("%Y-%m").to_string(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn periods_are_utc_calendar_days_and_months() {
        assert_eq!(super::periods(0), ("1970-01-01".into(), "1970-01".into()));
        // 2026-11-28T23:59:59.999Z and the next millisecond.
        assert_eq!(super::periods(1_795_910_399_999).0, "2026-11-28");
        assert_eq!(super::periods(1_795_910_400_000).0, "2026-11-29");
        // A leap day.
        assert_eq!(
            super::periods(951_782_400_000),
            ("2000-02-29".into(), "2000-02".into())
        );
    }
}
