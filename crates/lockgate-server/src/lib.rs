//! `lockgate serve`: the HTTP API over the ledger.
//!
//! | method and path | who | does |
//! |---|---|---|
//! | `POST /api/v1/decisions` | CI, admin | records a `lockgate check` decision; answers with the approvals already given for that exact head and whether they satisfy it |
//! | `GET /api/v1/pending[?repo=]` | any token | changes whose latest decision needs approval |
//! | `POST /api/v1/approvals` | person, admin | approves or requests changes at a head, if the rules allow (`lockgate_core::approvals`) |
//! | `GET /api/v1/change?repo=&change=` | any token | decision history, approvals at the latest head, status |
//! | `GET /api/v1/commit?repo=&sha=` | any token | decisions and attestations for a head commit; the queue's merges that landed it or were made from it |
//! | `GET /api/v1/queue[?repo=]` | any token | the merge queues (`[merge]`): open entries, holds stopping them, recent merges and ejections |
//! | `GET /api/v1/holds`, `POST /api/v1/holds` | any / admin | active merge holds; place one (global, repo, agent, change) |
//! | `POST /api/v1/holds/release` | person, admin | a person releases a hold (an agent hold is also an incident freeze of its model calls) |
//! | `GET /api/v1/gateway/spend?by=&since=` | any token | model spend per agent, project or model over a period |
//! | `POST /v1/chat/completions`, `/v1/responses`, `/v1/messages` | agent credential | the LLM gateway (`gateway`) |
//! | `GET /api/v1/openapi.json` | anyone | this API as OpenAPI 3.1 |
//! | `GET /healthz`, `GET /readyz` | anyone | liveness; readiness (the database answers) |
//! | `GET /metrics` | anyone | Prometheus text: requests, decisions, approvals, refusals, auth failures, ledger rows, pending |
//!
//! Tokens (`Authorization: Bearer lgt_…`) are made with `lockgate serve token create`
//! and stored hashed. Every error is JSON `{"error": "…"}` with a fitting status.

pub mod config;
pub mod escalate;
pub mod gateway;
pub mod github;
mod guard;
mod outbound;
pub mod publish;
pub mod queue;
pub mod slack;
pub mod transcripts;
pub mod web;

pub use guard::{AuthFailures, Metrics};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use config::ServerConfig;
use lockgate_core::agents::Registry;
use lockgate_core::approvals::{self, ApprovalStatus, Person};
use lockgate_core::decision::Decision;
use lockgate_store::{
    ApprovalRecord, ApprovalState, DecisionRecord, NewApproval, NewDecision, Role, Store,
    StoreError, TokenRecord,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The OpenAPI description served at `/api/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub config: ServerConfig,
    pub registry: Registry,
    pub metrics: Metrics,
    pub auth_failures: AuthFailures,
    /// Wakes the log publisher when an approval is recorded.
    pub log_wakeup: tokio::sync::Notify,
    /// Serializes updates to the forge (see `github::sync_change`).
    pub forge_sync: tokio::sync::Mutex<()>,
    /// The LLM gateway, when `[gateway]` is configured.
    pub gateway: Option<gateway::Gateway>,
    /// Re-runs `lockgate check` for the merge queue (the CLI provides it).
    pub gate: Option<Arc<dyn queue::Gate>>,
    /// Wakes the merge queues when an entry arrives.
    pub queue_wakeup: tokio::sync::Notify,
    /// This replica's name on queue leases.
    pub queue_holder: String,
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig, registry: Registry) -> AppState {
        AppState {
            store,
            registry,
            metrics: Metrics::default(),
            auth_failures: AuthFailures::default(),
            log_wakeup: tokio::sync::Notify::new(),
            forge_sync: tokio::sync::Mutex::new(()),
            gateway: config.gateway_loaded.clone().map(gateway::Gateway::new),
            gate: None,
            queue_wakeup: tokio::sync::Notify::new(),
            queue_holder: lockgate_store::new_id(),
            config,
        }
    }
}

/// The API's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/decisions", post(record_decision))
        .route("/api/v1/pending", get(pending))
        .route("/api/v1/approvals", post(approve))
        .route("/api/v1/change", get(change))
        .route("/api/v1/commit", get(commit))
        .route("/api/v1/holds", get(list_holds).post(place_hold))
        .route("/api/v1/holds/release", post(release_hold))
        .route(
            "/api/v1/transcripts",
            post(transcripts::upload).layer(DefaultBodyLimit::max(lockgate_store::MAX_TRANSCRIPT)),
        )
        .route("/api/v1/slack/interactions", post(slack::interactions))
        .route("/api/v1/github/webhook", post(github::webhook))
        .route("/api/v1/gateway/spend", get(gateway::spend::api))
        .route("/api/v1/queue", get(queue::api))
        .route("/v1/chat/completions", post(gateway::chat_completions))
        .route("/v1/responses", post(gateway::responses))
        .route("/v1/messages", post(gateway::messages))
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::count_requests,
        ))
        .with_state(state)
}

/// An API error: status and message, rendered as JSON.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid { .. } => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            StoreError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            other => {
                tracing::error!(error = %other, "store");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the ledger is unavailable".into(),
                )
            }
        }
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Parses a JSON body (after authentication, so strangers learn nothing of the schema);
/// a bad body is a JSON 422 error.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("request body: {e}"),
        )
    })
}

/// The caller's bearer token, or 401 (429 after too many failures from its address).
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<TokenRecord, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    check_token(state, headers, bearer).await
}

/// Authenticates a token from any channel (bearer header, UI session cookie), counting
/// failures per address: 401, or 429 once an address has failed too often.
async fn check_token(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<TokenRecord, ApiError> {
    if let Some(refusal) = blocked(state, headers) {
        return Err(refusal);
    }
    let found = match token {
        Some(t) => state.store.authenticate(t.trim()).await?,
        None => None,
    };
    match found {
        Some(t) => Ok(t),
        None => {
            record_auth_failure(state, headers);
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or invalid token".into(),
            ))
        }
    }
}

fn peer(headers: &HeaderMap) -> &str {
    headers
        .get(guard::PEER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
}

/// 429 when the caller's address failed to authenticate too often this minute.
fn blocked(state: &AppState, headers: &HeaderMap) -> Option<ApiError> {
    state.auth_failures.blocked(peer(headers)).then(|| {
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications from this address; retry in a minute".into(),
        )
    })
}

/// [`blocked`] as a response.
fn blocked_peer(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    blocked(state, headers).map(IntoResponse::into_response)
}

/// Counts a failed authentication (bad token, bad webhook signature) against the
/// caller's address.
fn record_auth_failure(state: &AppState, headers: &HeaderMap) {
    let peer = peer(headers);
    tracing::warn!(peer = %peer, "authentication failed");
    state.auth_failures.record(peer);
    state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
}

fn require(token: &TokenRecord, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&token.role) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("a {} token may not do this", token.role.as_str()),
        ))
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.counts().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let counts = state.store.counts().await.ok();
    let pending = state.store.pending_count().await.ok();
    let mut text = state.metrics.render(counts, pending);
    if let Some(g) = &state.gateway {
        let (taken, open) = g.leases.counts();
        text.push_str(&format!(
            "# HELP lockgate_gateway_leases_taken_total Budget slices this replica reserved.\n# TYPE lockgate_gateway_leases_taken_total counter\nlockgate_gateway_leases_taken_total {taken}\n\
             # HELP lockgate_gateway_leases_open Budget slices this replica holds now.\n# TYPE lockgate_gateway_leases_open gauge\nlockgate_gateway_leases_open {open}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// `POST /api/v1/decisions` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDecision {
    pub repo: String,
    pub change_ref: String,
    pub decision: Decision,
}

/// The answer to recording a decision, and the view of a change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeState {
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    pub verdict: String,
    pub decision_id: String,
    /// Approvals and change requests given for exactly this head.
    pub approvals: Vec<ApprovalView>,
    /// Whether they satisfy the decision's required approvals.
    pub approved: bool,
    pub status: serde_json::Value,
}

/// An approval as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalView {
    pub approver: String,
    pub state: String,
    pub source: String,
    pub comment: String,
    pub created_ms: i64,
    /// Its index in the transparency log, once published.
    pub log_index: Option<i64>,
}

impl From<&ApprovalRecord> for ApprovalView {
    fn from(a: &ApprovalRecord) -> ApprovalView {
        ApprovalView {
            approver: a.approver.clone(),
            state: a.state.as_str().into(),
            source: a.source.clone(),
            comment: a.comment.clone(),
            created_ms: a.created_ms,
            log_index: a.log_index,
        }
    }
}

async fn record_decision(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ChangeState> {
    let token = caller(&state, &headers).await?;
    let body: RecordDecision = parse_json(&body)?;
    require(&token, &[Role::Ci, Role::Admin])?;
    let d = &body.decision;
    let document = serde_json::to_string(d)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let recorded = state
        .store
        .record_decision(&NewDecision {
            repo: body.repo.clone(),
            change_ref: body.change_ref.clone(),
            base_sha: d.base.clone(),
            head_sha: d.head.clone(),
            verdict: d.verdict.as_str().into(),
            input_digest: d.input_digest.clone(),
            author_kind: d.author.kind.as_str().into(),
            agent: d.author.agent.clone(),
            trust_score: d.trust.score,
            document,
        })
        .await?;
    tracing::info!(repo = %body.repo, change = %body.change_ref, verdict = d.verdict.as_str(), new = recorded.changed, "decision recorded");
    state.metrics.decisions.fetch_add(1, Ordering::Relaxed);
    if recorded.changed && d.verdict == lockgate_core::decision::Verdict::NeedsApproval {
        slack::announce(&state, &body.repo, &body.change_ref, d);
    }
    let change = change_state(&state, &recorded.record, d).await?;
    if recorded.changed {
        github::sync_change(&state, &change);
    }
    queue::enter_if_allowed(&state, &change, d).await;
    Ok(Json(change))
}

/// Approvals at the decision's head and whether they satisfy it.
async fn change_state(
    state: &AppState,
    record: &DecisionRecord,
    decision: &Decision,
) -> Result<ChangeState, ApiError> {
    let given = state
        .store
        .approvals_for_head(&record.repo, &record.change_ref, &record.head_sha)
        .await?;
    let status = approval_status(state, decision, &given);
    Ok(ChangeState {
        repo: record.repo.clone(),
        change_ref: record.change_ref.clone(),
        head_sha: record.head_sha.clone(),
        verdict: record.verdict.clone(),
        decision_id: record.id.clone(),
        approvals: given.iter().map(ApprovalView::from).collect(),
        approved: status.satisfied,
        status: serde_json::to_value(&status).unwrap_or_default(),
    })
}

fn approval_status(
    state: &AppState,
    decision: &Decision,
    given: &[ApprovalRecord],
) -> ApprovalStatus {
    let people: Vec<(Person, bool)> = given
        .iter()
        .filter_map(|a| {
            state
                .config
                .person(&a.approver)
                .map(|p| (p.clone(), a.state == ApprovalState::Approved))
        })
        .collect();
    approvals::status(decision, &people, &state.registry)
}

#[derive(Debug, Deserialize)]
struct PendingQuery {
    repo: Option<String>,
    limit: Option<u32>,
}

/// A change waiting for approval.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingItem {
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    pub agent: Option<String>,
    pub author_kind: String,
    pub trust_score: u8,
    pub created_ms: i64,
}

async fn pending(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<PendingQuery>,
) -> ApiResult<Vec<PendingItem>> {
    caller(&state, &headers).await?;
    let rows = state
        .store
        .pending(q.repo.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| PendingItem {
                repo: d.repo,
                change_ref: d.change_ref,
                head_sha: d.head_sha,
                agent: d.agent,
                author_kind: d.author_kind,
                trust_score: d.trust_score,
                created_ms: d.created_ms,
            })
            .collect(),
    ))
}

/// `POST /api/v1/approvals` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    pub repo: String,
    pub change_ref: String,
    /// The head commit the person reviewed.
    pub head_sha: String,
    pub state: ApprovalState,
    #[serde(default)]
    pub comment: String,
}

async fn latest(
    state: &AppState,
    repo: &str,
    change_ref: &str,
) -> Result<(DecisionRecord, Decision), ApiError> {
    let history = state.store.decision_history(repo, change_ref).await?;
    latest_of(&history, repo, change_ref)
}

/// The latest decision of a change's history, parsed.
fn latest_of(
    history: &[DecisionRecord],
    repo: &str,
    change_ref: &str,
) -> Result<(DecisionRecord, Decision), ApiError> {
    let record = history.last().cloned().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no decision recorded for {repo} {change_ref}"),
        )
    })?;
    let decision: Decision = serde_json::from_str(&record.document).map_err(|e| {
        tracing::error!(error = %e, "stored decision does not parse");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored decision is unreadable".into(),
        )
    })?;
    Ok((record, decision))
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ChangeState> {
    let token = caller(&state, &headers).await?;
    let body: Approve = parse_json(&body)?;
    let person = approver(&state, &token)?;
    Ok(Json(apply_approval(&state, person, &body, "api").await?))
}

/// The person behind a token that may approve: a person or admin token whose subject
/// is in the people directory.
pub(crate) fn approver<'a>(
    state: &'a AppState,
    token: &TokenRecord,
) -> Result<&'a Person, ApiError> {
    require(token, &[Role::Person, Role::Admin])?;
    state.config.person(&token.subject).ok_or_else(|| {
        ApiError(
            StatusCode::FORBIDDEN,
            format!("{} is not in the server's people directory", token.subject),
        )
    })
}

/// Records `person`'s approval or change request from any channel (API, web, chat,
/// forge) after the rules allow it: the same checks whichever way it arrives.
pub(crate) async fn apply_approval(
    state: &Arc<AppState>,
    person: &Person,
    body: &Approve,
    source: &str,
) -> Result<ChangeState, ApiError> {
    let (record, decision) = latest(state, &body.repo, &body.change_ref).await?;
    approvals::may_approve(person, &state.registry, &decision, &body.head_sha).map_err(|r| {
        let status = match r {
            approvals::Refusal::StaleHead { .. } => StatusCode::CONFLICT,
            _ => StatusCode::FORBIDDEN,
        };
        state
            .metrics
            .approvals_refused
            .fetch_add(1, Ordering::Relaxed);
        ApiError(status, r.to_string())
    })?;
    state
        .store
        .record_approval(&NewApproval {
            repo: body.repo.clone(),
            change_ref: body.change_ref.clone(),
            head_sha: body.head_sha.clone(),
            approver: person.id.clone(),
            state: body.state,
            source: source.into(),
            comment: body.comment.clone(),
        })
        .await?;
    tracing::info!(repo = %body.repo, change = %body.change_ref, approver = %person.id, state = body.state.as_str(), source, "approval recorded");
    state.metrics.approvals.fetch_add(1, Ordering::Relaxed);
    state.log_wakeup.notify_one();
    let change = change_state(state, &record, &decision).await?;
    github::sync_change(state, &change);
    queue::enter_if_allowed(state, &change, &decision).await;
    Ok(change)
}

#[derive(Debug, Deserialize)]
struct ChangeQuery {
    repo: String,
    change: String,
}

/// A change's history and its state at the latest head.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeView {
    pub state: ChangeState,
    pub history: Vec<HistoryItem>,
}

/// One decision in a change's history.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryItem {
    pub decision_id: String,
    pub head_sha: String,
    pub verdict: String,
    pub trust_score: u8,
    pub input_digest: String,
    pub created_ms: i64,
}

impl From<&DecisionRecord> for HistoryItem {
    fn from(d: &DecisionRecord) -> HistoryItem {
        HistoryItem {
            decision_id: d.id.clone(),
            head_sha: d.head_sha.clone(),
            verdict: d.verdict.clone(),
            trust_score: d.trust_score,
            input_digest: d.input_digest.clone(),
            created_ms: d.created_ms,
        }
    }
}

async fn change(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ChangeQuery>,
) -> ApiResult<ChangeView> {
    caller(&state, &headers).await?;
    let history = state.store.decision_history(&q.repo, &q.change).await?;
    let (record, decision) = latest_of(&history, &q.repo, &q.change)?;
    Ok(Json(ChangeView {
        state: change_state(&state, &record, &decision).await?,
        history: history.iter().map(HistoryItem::from).collect(),
    }))
}

#[derive(Debug, Deserialize)]
struct CommitQuery {
    repo: String,
    sha: String,
}

async fn commit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<CommitQuery>,
) -> ApiResult<serde_json::Value> {
    caller(&state, &headers).await?;
    let decisions = state.store.decisions_for_commit(&q.repo, &q.sha).await?;
    let attestations = state.store.attestations_for_commit(&q.repo, &q.sha).await?;
    // Provenance follows a merged commit: the merges that landed it (or were made from
    // it), with the change head whose decisions and attestations cover it.
    let merges = state.store.merges_for_commit(&q.repo, &q.sha).await?;
    Ok(Json(serde_json::json!({
        "merges": merges,
        "repo": q.repo,
        "sha": q.sha,
        "decisions": decisions.iter().map(|d| serde_json::json!({
            "change_ref": d.change_ref,
            "history": HistoryItem::from(d),
        })).collect::<Vec<_>>(),
        "attestations": attestations.iter().map(|a| serde_json::json!({
            "agent": a.agent, "model": a.model, "digest": a.digest, "created_ms": a.created_ms,
        })).collect::<Vec<_>>(),
    })))
}

async fn list_holds(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<Vec<lockgate_store::HoldRecord>> {
    caller(&state, &headers).await?;
    Ok(Json(state.store.active_holds().await?))
}

/// `POST /api/v1/holds` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceHold {
    pub scope: lockgate_store::HoldScope,
    #[serde(default)]
    pub target: String,
    pub reason: String,
}

async fn place_hold(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<lockgate_store::HoldRecord> {
    let token = caller(&state, &headers).await?;
    require(&token, &[Role::Admin])?;
    let body: PlaceHold = parse_json(&body)?;
    let hold = state
        .store
        .place_hold(&lockgate_store::NewHold {
            scope: body.scope,
            target: body.target,
            reason: body.reason,
            placed_by: token.subject.clone(),
        })
        .await?;
    tracing::info!(hold = %hold.id, scope = hold.scope.as_str(), target = %hold.target, by = %token.subject, "hold placed");
    gateway::blocks_changed(&state).await;
    Ok(Json(hold))
}

/// `POST /api/v1/holds/release` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseHold {
    pub id: String,
}

async fn release_hold(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<lockgate_store::HoldRecord> {
    let token = caller(&state, &headers).await?;
    // A person releases a hold: never a CI job (or the agent it runs).
    require(&token, &[Role::Person, Role::Admin])?;
    let body: ReleaseHold = parse_json(&body)?;
    let hold = state.store.release_hold(&body.id, &token.subject).await?;
    tracing::info!(hold = %hold.id, by = %token.subject, "hold released");
    gateway::blocks_changed(&state).await;
    state.queue_wakeup.notify_waiters();
    Ok(Json(hold))
}

/// Opens the store, binds, prints `listening on http://ADDR`, serves until `shutdown`
/// resolves, then closes the database cleanly.
pub async fn serve(
    config: ServerConfig,
    registry: Registry,
    gate: Option<Arc<dyn queue::Gate>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    publish::ensure_log(&config.log.dir, &config.log.origin)
        .map_err(|e| ServeError::Log(config.log.dir.display().to_string(), e))?;
    let store = Store::open(&config.database_url).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| ServeError::Bind(config.listen.clone(), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Bind(config.listen.clone(), e))?;
    let log_dir = config.log.dir.clone();
    let flush_dir = log_dir.clone();
    if !config.merge.repos.is_empty() && gate.is_none() {
        return Err(ServeError::NoGate);
    }
    let mut state = AppState::new(store.clone(), config, registry);
    state.gate = gate;
    let state = Arc::new(state);
    let queues = queue::start(state.clone()).await;
    let scheduler = tokio::spawn(escalate::run(state.clone()));
    let sweeper = tokio::spawn(gateway::sweep_abandoned(state.clone()));
    let watch = tokio::spawn(gateway::anomaly::watch(state.clone()));
    if let Some(g) = &state.gateway {
        g.blocks.refresh(&state.store).await?;
    }
    let blocks = tokio::spawn(gateway::blocks::keep_fresh(state.clone()));
    let leases = tokio::spawn(gateway::sweep_leases(state.clone()));
    if let Some(g) = &state.gateway {
        let _ = g
            .call_log
            .set(gateway::calllog::CallLog::start(state.store.clone()));
    }
    let publisher = tokio::spawn(publish::run(
        state.clone(),
        log_dir,
        std::time::Duration::from_secs(2),
    ));
    println!("listening on http://{addr} (ledger: {:?})", store.backend());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(
        listener,
        router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| ServeError::Bind(addr.to_string(), e))?;
    publisher.abort();
    scheduler.abort();
    sweeper.abort();
    watch.abort();
    blocks.abort();
    leases.abort();
    for q in &queues {
        q.abort();
    }
    queue::release(&state).await;
    gateway::wind_down(&state).await;
    let _ = publisher.await;
    publish::flush(&state, &flush_dir).await;
    store.close().await;
    Ok(())
}

/// The server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("ledger: {0}")]
    Store(#[from] StoreError),
    #[error("listening on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("approval log {0}: {1}")]
    Log(String, lockgate_log::log::LogError),
    #[error("[merge] queues need the gate (`lockgate serve` provides it)")]
    NoGate,
}
