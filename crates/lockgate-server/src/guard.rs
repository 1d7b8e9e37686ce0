//! Request accounting: Prometheus counters, and a limiter that stops guessing tokens
//! (after `MAX_FAILURES` failed authentications from one address within a minute, that
//! address gets 429 until the minute is over).

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use lockgate_store::Counts;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set by the server from the connection (any value a client sends is replaced).
pub(crate) const PEER_HEADER: &str = "x-lockgate-peer";
/// Failed authentications allowed per address per window.
pub const MAX_FAILURES: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (oldest windows are dropped beyond this).
const MAX_TRACKED: usize = 10_000;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub decisions: AtomicU64,
    pub approvals: AtomicU64,
    pub approvals_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub approvals_logged: AtomicU64,
    pub log_failures: AtomicU64,
    pub escalations: AtomicU64,
    pub escalation_notice_failures: AtomicU64,
    pub chat_failures: AtomicU64,
    pub forge_failures: AtomicU64,
    pub gateway_refusals: AtomicU64,
    pub gateway_spend_micros: AtomicU64,
    pub gateway_fallbacks: AtomicU64,
    pub gateway_freezes: AtomicU64,
    pub gateway_cache_hits: AtomicU64,
    pub gateway_cache_misses: AtomicU64,
    pub gateway_collapsed: AtomicU64,
    /// Changes the merge queue landed, and entries it ejected.
    pub merges: AtomicU64,
    pub ejections: AtomicU64,
    /// Calls and money settled by this replica per agent, project and model.
    pub gateway_spend: SpendSeries,
}

/// The most label sets [`SpendSeries`] tracks; calls beyond them count under `other`.
pub const MAX_SPEND_SERIES: usize = 1000;

/// Agent, project and model.
type SpendLabels = (String, String, String);

/// Per-agent, per-project, per-model counters of settled calls (calls, micro-dollars),
/// bounded in size.
#[derive(Default)]
pub struct SpendSeries {
    series: Mutex<std::collections::BTreeMap<SpendLabels, (u64, u64)>>,
}

impl SpendSeries {
    /// Counts one settled call costing `micros`.
    pub fn record(&self, agent: &str, project: &str, model: &str, micros: u64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (agent.to_string(), project.to_string(), model.to_string());
        if !series.contains_key(&key) && series.len() >= MAX_SPEND_SERIES {
            key = ("other".into(), "other".into(), "other".into());
        }
        let entry = series.entry(key).or_default();
        entry.0 += 1;
        entry.1 += micros;
    }

    fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help, pick) in [
            (
                "lockgate_gateway_calls_total",
                "Model calls settled by this replica, per agent, project and model.",
                0,
            ),
            (
                "lockgate_gateway_cost_micros_total",
                "Money settled for model calls by this replica, micro-dollars, per agent, project and model.",
                1,
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for ((agent, project, model), (calls, micros)) in series.iter() {
                let value = if pick == 0 { calls } else { micros };
                out.push_str(&format!(
                    "{name}{{agent=\"{}\",project=\"{}\",model=\"{}\"}} {value}\n",
                    label(agent),
                    label(project),
                    label(model)
                ));
            }
        }
    }
}

/// A Prometheus label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self, counts: Option<Counts>, pending: Option<u64>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "lockgate_http_requests_total",
            "HTTP requests served.",
            get(&self.requests),
        );
        counter(
            "lockgate_decisions_recorded_total",
            "Decisions posted.",
            get(&self.decisions),
        );
        counter(
            "lockgate_approvals_recorded_total",
            "Approvals and change requests recorded.",
            get(&self.approvals),
        );
        counter(
            "lockgate_approvals_refused_total",
            "Approvals refused (agent, author, not an owner, stale head).",
            get(&self.approvals_refused),
        );
        counter(
            "lockgate_auth_failures_total",
            "Failed authentications.",
            get(&self.auth_failures),
        );
        counter(
            "lockgate_gateway_refusals_total",
            "Model calls the gateway refused (credential, scope, budget, price).",
            get(&self.gateway_refusals),
        );
        counter(
            "lockgate_gateway_spend_micros_total",
            "Money settled for model calls by this replica, micro-dollars.",
            get(&self.gateway_spend_micros),
        );
        counter(
            "lockgate_gateway_fallbacks_total",
            "Model calls answered by a fallback upstream after the route failed.",
            get(&self.gateway_fallbacks),
        );
        counter(
            "lockgate_gateway_freezes_total",
            "Agents frozen by this replica's anomaly watch (a spend spike).",
            get(&self.gateway_freezes),
        );
        counter(
            "lockgate_approvals_logged_total",
            "Approvals appended to the transparency log by this replica.",
            get(&self.approvals_logged),
        );
        counter(
            "lockgate_escalations_total",
            "Changes escalated by this replica (no approval in time).",
            get(&self.escalations),
        );
        counter(
            "lockgate_escalation_notice_failures_total",
            "On-call notices that failed (retried).",
            get(&self.escalation_notice_failures),
        );
        counter(
            "lockgate_chat_failures_total",
            "Chat messages (Slack) that could not be posted.",
            get(&self.chat_failures),
        );
        counter(
            "lockgate_forge_failures_total",
            "Forge (GitHub) API calls that failed.",
            get(&self.forge_failures),
        );
        counter(
            "lockgate_log_failures_total",
            "Failed appends to the transparency log (retried).",
            get(&self.log_failures),
        );
        counter(
            "lockgate_gateway_cache_hits_total",
            "Deterministic model calls answered from this replica's response cache.",
            get(&self.gateway_cache_hits),
        );
        counter(
            "lockgate_gateway_cache_misses_total",
            "Deterministic model calls the response cache could not answer.",
            get(&self.gateway_cache_misses),
        );
        counter(
            "lockgate_gateway_collapsed_total",
            "Calls answered by an identical call in flight instead of their own (also counted as hits).",
            get(&self.gateway_collapsed),
        );
        counter(
            "lockgate_queue_merges_total",
            "Changes the merge queue landed on their target branch.",
            get(&self.merges),
        );
        counter(
            "lockgate_queue_ejections_total",
            "Merge queue entries ejected (with a reason; the author is told).",
            get(&self.ejections),
        );
        let (hits, misses) = (
            get(&self.gateway_cache_hits),
            get(&self.gateway_cache_misses),
        );
        let ratio = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        out.push_str(&format!(
            "# HELP lockgate_gateway_cache_hit_ratio Hits over lookups of this replica's response cache.\n# TYPE lockgate_gateway_cache_hit_ratio gauge\nlockgate_gateway_cache_hit_ratio {ratio}\n"
        ));
        self.gateway_spend.render(&mut out);
        if let Some(c) = counts {
            out.push_str("# HELP lockgate_ledger_rows Rows in the ledger.\n# TYPE lockgate_ledger_rows gauge\n");
            for (table, n) in [
                ("decisions", c.decisions),
                ("approvals", c.approvals),
                ("outcomes", c.outcomes),
                ("holds", c.holds),
                ("attestations", c.attestations),
            ] {
                out.push_str(&format!("lockgate_ledger_rows{{table=\"{table}\"}} {n}\n"));
            }
        }
        if let Some(p) = pending {
            out.push_str(&format!(
                "# HELP lockgate_pending_changes Changes waiting for approval.\n# TYPE lockgate_pending_changes gauge\nlockgate_pending_changes {p}\n"
            ));
        }
        out
    }
}

/// Failed authentications per address, per window.
#[derive(Default)]
pub struct AuthFailures {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl AuthFailures {
    /// Counts a failure from `peer`.
    pub fn record(&self, peer: &str) {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if w.len() >= MAX_TRACKED {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry(peer.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Whether `peer` is over the limit in its current window.
    pub fn blocked(&self, peer: &str) -> bool {
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.get(peer)
            .is_some_and(|(start, n)| *n >= MAX_FAILURES && start.elapsed() < WINDOW)
    }
}

/// Counts the request and stamps the peer address from the connection.
pub(crate) async fn count_requests(
    State(state): State<std::sync::Arc<crate::AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    request.headers_mut().remove(PEER_HEADER);
    if let Ok(v) = HeaderValue::from_str(&peer) {
        request.headers_mut().insert(PEER_HEADER, v);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_per_address() {
        let f = AuthFailures::default();
        for _ in 0..MAX_FAILURES - 1 {
            f.record("10.0.0.1");
        }
        assert!(!f.blocked("10.0.0.1"));
        f.record("10.0.0.1");
        assert!(f.blocked("10.0.0.1"));
        assert!(!f.blocked("10.0.0.2"));
    }

    #[test]
    fn spend_series_are_labelled_escaped_and_bounded() {
        let m = Metrics::default();
        m.gateway_spend.record("claude-code", "acme/api", "m1", 200);
        m.gateway_spend.record("claude-code", "acme/api", "m1", 100);
        m.gateway_spend.record("a\"b", "p\\q", "line\nbreak", 1);
        for i in 0..MAX_SPEND_SERIES + 5 {
            m.gateway_spend.record(&format!("bot-{i}"), "p", "m", 1);
        }
        let text = m.render(None, None);
        assert!(text.contains(
            "lockgate_gateway_cost_micros_total{agent=\"claude-code\",project=\"acme/api\",model=\"m1\"} 300\n"
        ));
        assert!(text.contains(
            "lockgate_gateway_calls_total{agent=\"claude-code\",project=\"acme/api\",model=\"m1\"} 2\n"
        ));
        assert!(text.contains(r#"{agent="a\"b",project="p\\q",model="line\nbreak"} 1"#));
        // 1,000 series in all, the rest counted under "other".
        assert!(text.contains(
            "lockgate_gateway_calls_total{agent=\"other\",project=\"other\",model=\"other\"} 7\n"
        ));
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::default();
        m.requests.fetch_add(3, Ordering::Relaxed);
        let text = m.render(Some(Counts::default()), Some(2));
        assert!(text.contains("lockgate_http_requests_total 3\n"));
        assert!(text.contains("lockgate_ledger_rows{table=\"approvals\"} 0\n"));
        assert!(text.contains("lockgate_pending_changes 2\n"));
    }
}
