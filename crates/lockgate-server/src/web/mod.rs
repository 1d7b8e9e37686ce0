//! The web UI under `/ui`: the pending queue and holds, a change page (verdict,
//! reasons, trust, files, owners, provenance, evidence, history) with Approve and
//! Request changes, and a transcript viewer.
//!
//! Sign-in takes a person's API token and keeps it in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` when `public_url` is https); every form carries a CSRF token (an
//! HMAC of the session under a fixed label) checked on post. Pages are plain HTML with a
//! strict Content-Security-Policy (no scripts at all). Approving goes through the same
//! rules as the API ([`crate::apply_approval`]).

mod pages;

use crate::{ApiError, AppState, Approve, approver, check_token, latest_of, require};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, extract::Request};
use hmac::{Hmac, Mac};
use lockgate_core::approvals;
use lockgate_store::{ApprovalState, HoldRecord, HoldScope, Role, SpendBy, TokenRecord};
use maud::Markup;
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;

pub(crate) use pages::urlencode;

/// The absolute link to a change's page, when `public_url` is configured (for chat,
/// forge and on-call messages).
pub(crate) fn change_link(state: &AppState, repo: &str, change: &str) -> Option<String> {
    let base = state.config.public_url.as_deref()?;
    Some(format!(
        "{}{}",
        base.trim_end_matches('/'),
        pages::change_href(repo, change)
    ))
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lockgate_session";

/// The UI's routes (merged into the API router by [`crate::router`]).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(queue))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/change", get(change))
        .route("/ui/transcript", get(transcript))
        .route("/ui/approve", post(approve))
        .route("/ui/holds/release", post(release_hold))
        .route("/ui/spend", get(spend))
        .route("/ui/merges", get(merges))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Headers on every UI response: no scripts, no framing, no sniffing, no referrer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A signed-in viewer: their token record and the raw session token.
struct Session {
    token: TokenRecord,
    raw: String,
}

impl Session {
    fn csrf(&self) -> String {
        csrf_token(&self.raw)
    }

    fn viewer<'a>(&'a self, csrf: &'a str) -> pages::Viewer<'a> {
        pages::Viewer {
            subject: &self.token.subject,
            csrf,
            is_person: matches!(self.token.role, Role::Person | Role::Admin),
        }
    }

    /// Checks a form's CSRF token (constant time); the refusal page when it is wrong.
    fn csrf_refusal(&self, given: &str) -> Option<Response> {
        let valid =
            hex::decode(given).is_ok_and(|given| csrf_mac(&self.raw).verify_slice(&given).is_ok());
        (!valid).then(|| {
            page_error(
                None,
                StatusCode::FORBIDDEN,
                "bad CSRF token; reload the page and try again",
            )
        })
    }
}

fn csrf_mac(session: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(session.as_bytes()).expect("HMAC takes any key");
    mac.update(b"lockgate-ui-csrf-v1");
    mac
}

fn csrf_token(session: &str) -> String {
    hex::encode(csrf_mac(session).finalize().into_bytes())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in session, or a redirect to the sign-in page.
async fn session(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(raw) = cookie(headers, SESSION_COOKIE).filter(|v| !v.is_empty()) else {
        return Err(Redirect::to("/ui/login").into_response());
    };
    match check_token(state, headers, Some(raw)).await {
        Ok(token) => Ok(Session {
            token,
            raw: raw.to_string(),
        }),
        Err(ApiError(StatusCode::UNAUTHORIZED, _)) => Err((
            [(header::SET_COOKIE, clear_cookie())],
            Redirect::to("/ui/login"),
        )
            .into_response()),
        Err(e) => Err(api_error_page(None, e)),
    }
}

/// The session behind a form post whose CSRF token matches it.
async fn form_session(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Response> {
    let s = session(state, headers).await?;
    match s.csrf_refusal(csrf) {
        Some(refusal) => Err(refusal),
        None => Ok(s),
    }
}

fn page(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn page_error(viewer: Option<&pages::Viewer>, status: StatusCode, message: &str) -> Response {
    let mut r = page(pages::error(viewer, status.as_u16(), message));
    *r.status_mut() = status;
    r
}

fn api_error_page(viewer: Option<&pages::Viewer>, e: ApiError) -> Response {
    page_error(viewer, e.0, &e.1)
}

fn set_cookie(state: &AppState, token: &str) -> String {
    let secure = if state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{secure}")
}

fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLE,
    )
        .into_response()
}

async fn login_form() -> Response {
    page(pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    match check_token(&state, &headers, Some(token)).await {
        Ok(t) if matches!(t.role, Role::Person | Role::Admin) => (
            [(header::SET_COOKIE, set_cookie(&state, token))],
            Redirect::to("/ui"),
        )
            .into_response(),
        Ok(_) => {
            let mut r = page(pages::login(Some(
                "CI tokens cannot sign in; use a person's token.",
            )));
            *r.status_mut() = StatusCode::FORBIDDEN;
            r
        }
        Err(e) => {
            let mut r = page(pages::login(Some(&e.1)));
            *r.status_mut() = e.0;
            r
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Ok(s) = session(&state, &headers).await
        && let Some(r) = s.csrf_refusal(&form.csrf)
    {
        return r;
    }
    (
        [(header::SET_COOKIE, clear_cookie())],
        Redirect::to("/ui/login"),
    )
        .into_response()
}

async fn queue(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    let loaded = async {
        let pending = state.store.pending(None, 200).await?;
        let holds = state.store.active_holds().await?;
        Ok::<_, ApiError>((pending, holds))
    };
    match loaded.await {
        Ok((pending, holds)) => page(pages::queue(&viewer, &pending, &holds)),
        Err(e) => api_error_page(Some(&viewer), e),
    }
}

/// Model spend per agent, project and model over a period, and the agents frozen now.
async fn spend(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<crate::gateway::spend::SpendQuery>,
) -> Response {
    use crate::gateway::spend;
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    let loaded = async {
        let (_, period) = spend::parse(&q)?;
        let mut views = Vec::new();
        for by in [SpendBy::Agent, SpendBy::Project, SpendBy::Model] {
            views.push(spend::load(&state, by, period).await?);
        }
        let frozen: Vec<HoldRecord> = state
            .store
            .active_holds()
            .await?
            .into_iter()
            .filter(|h| h.scope == HoldScope::Agent)
            .collect();
        Ok::<_, ApiError>((period, views, frozen))
    };
    match loaded.await {
        Ok((period, views, frozen)) => page(pages::spend(&viewer, period, &views, &frozen)),
        Err(e) => api_error_page(Some(&viewer), e),
    }
}

#[derive(Deserialize)]
struct MergesQuery {
    repo: Option<String>,
}

async fn merges(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<MergesQuery>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    match crate::queue::view(&state, q.repo.as_deref(), 50).await {
        Ok(answer) => page(pages::merges(&viewer, &answer)),
        Err(e) => api_error_page(Some(&viewer), e),
    }
}

#[derive(Deserialize)]
struct ChangeQuery {
    repo: String,
    change: String,
    notice: Option<String>,
}

/// Holds that stop this change: global, its repository, its agent, or the change itself.
fn holds_for(
    holds: Vec<HoldRecord>,
    repo: &str,
    change: &str,
    agent: Option<&str>,
) -> Vec<HoldRecord> {
    holds
        .into_iter()
        .filter(|h| h.stops(repo, change, agent))
        .collect()
}

async fn change(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ChangeQuery>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    match change_page(&state, &s, &viewer, &q).await {
        Ok(r) => r,
        Err(e) => api_error_page(Some(&viewer), e),
    }
}

async fn change_page(
    state: &AppState,
    s: &Session,
    viewer: &pages::Viewer<'_>,
    q: &ChangeQuery,
) -> Result<Response, ApiError> {
    let history = state.store.decision_history(&q.repo, &q.change).await?;
    let (record, decision) = latest_of(&history, &q.repo, &q.change)?;
    let given = state
        .store
        .approvals_for_head(&record.repo, &record.change_ref, &record.head_sha)
        .await?;
    let status = crate::approval_status(state, &decision, &given);
    let holds = holds_for(
        state.store.active_holds().await?,
        &record.repo,
        &record.change_ref,
        record.agent.as_deref(),
    );
    let refusal = match state.config.person(&s.token.subject) {
        None => Some(format!(
            "{} is not in the server's people directory",
            s.token.subject
        )),
        Some(person) => approvals::may_approve(person, &state.registry, &decision, &decision.head)
            .err()
            .map(|r| r.to_string()),
    };
    let mut stored = Vec::new();
    for c in &decision.provenance.commits {
        if let Some(t) = &c.transcript
            && !stored.contains(&t.digest)
            && state.store.has_transcript(&t.digest).await?
        {
            stored.push(t.digest.clone());
        }
    }
    Ok(page(pages::change(
        viewer,
        &pages::ChangePage {
            record: &record,
            decision: &decision,
            history: &history,
            approvals: &given,
            status: &status,
            holds: &holds,
            refusal,
            stored_transcripts: &stored,
            notice: q.notice.as_deref(),
        },
    )))
}

#[derive(Deserialize)]
struct TranscriptQuery {
    digest: String,
}

async fn transcript(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<TranscriptQuery>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    match state.store.transcript(&q.digest).await {
        Ok(Some(t)) => {
            let format = lockgate_attest::transcript::TranscriptFormat::parse(&t.format)
                .unwrap_or(lockgate_attest::transcript::TranscriptFormat::LockgateSteps);
            let steps = lockgate_attest::transcript_view::view(t.body.as_bytes(), format);
            page(pages::transcript(
                &viewer, &t.digest, &t.format, &steps, t.steps,
            ))
        }
        Ok(None) => page_error(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "no transcript with that digest was uploaded",
        ),
        Err(e) => api_error_page(Some(&viewer), e.into()),
    }
}

#[derive(Deserialize)]
struct ApproveForm {
    csrf: String,
    repo: String,
    change_ref: String,
    head_sha: String,
    state: ApprovalState,
    #[serde(default)]
    comment: String,
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<ApproveForm>,
) -> Response {
    let s = match form_session(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    let result = async {
        let person = approver(&state, &s.token)?;
        let body = Approve {
            repo: form.repo.clone(),
            change_ref: form.change_ref.clone(),
            head_sha: form.head_sha.clone(),
            state: form.state,
            comment: form.comment.clone(),
        };
        crate::apply_approval(&state, person, &body, "web").await
    };
    match result.await {
        Ok(_) => {
            let notice = match form.state {
                ApprovalState::Approved => "Your approval was recorded.",
                ApprovalState::ChangesRequested => "Your change request was recorded.",
            };
            Redirect::to(&format!(
                "{}&notice={}",
                pages::change_href(&form.repo, &form.change_ref),
                urlencode(notice)
            ))
            .into_response()
        }
        Err(e) => api_error_page(Some(&viewer), e),
    }
}

#[derive(Deserialize)]
struct ReleaseForm {
    csrf: String,
    id: String,
    #[serde(default)]
    back: String,
}

async fn release_hold(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<ReleaseForm>,
) -> Response {
    let s = match form_session(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let csrf = s.csrf();
    let viewer = s.viewer(&csrf);
    if let Err(e) = require(&s.token, &[Role::Person, Role::Admin]) {
        return api_error_page(Some(&viewer), e);
    }
    match state.store.release_hold(&form.id, &s.token.subject).await {
        Ok(hold) => {
            tracing::info!(hold = %hold.id, by = %s.token.subject, "hold released (web)");
            crate::gateway::blocks_changed(&state).await;
            state.queue_wakeup.notify_waiters();
            // Only back to a page of ours.
            let back = if form.back.starts_with("/ui") && !form.back.starts_with("//") {
                form.back
            } else {
                "/ui".into()
            };
            Redirect::to(&back).into_response()
        }
        Err(e) => api_error_page(Some(&viewer), e.into()),
    }
}
