//! `[gateway]` in the server config: the credential key, the upstreams with their
//! provider keys, the default budgets and price overrides. Secrets load at start
//! ([`GatewayConfig::load`]) from files or variables and are never logged.

use crate::config::ConfigError;
use lockgate_gateway::anomaly::SpikeRule;
use lockgate_gateway::price::{Micros, ModelPrice, PriceTable, parse_usd};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
const TEN_MS: Duration = Duration::from_millis(10);
/// The longest duration any gateway setting takes (a year).
const MAX_WAIT: Duration = Duration::from_secs(366 * 86_400);

/// Reads a duration setting (`"30s"`, `"1h 30m"`) within `range`; the error names the
/// setting and shows an example.
fn duration(
    field: &str,
    text: &str,
    example: &str,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| range.contains(d))
        .ok_or_else(|| {
            format!(
                "{field} {text:?}: write e.g. \"{example}\" ({} to {})",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            )
        })
}

/// `[gateway]`. Without `key_file`/`key_env` the gateway is off (its routes answer 404).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The key credentials are signed with (`lockgate token issue --key-file`): a file
    /// of at least 32 random bytes, or a variable holding them as hex.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default)]
    pub budget: BudgetConfig,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default, rename = "price")]
    pub prices: Vec<ModelPrice>,
    /// Task classes sent to a model tier whatever model the agent asked for.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// A call still open after this long (its outcome lost to a crash or a dropped
    /// connection) is charged its whole reservation.
    #[serde(default = "default_abandon_after")]
    pub abandon_after: String,
    /// The spend-spike watch that freezes an agent.
    #[serde(default)]
    pub anomaly: AnomalyConfig,
    /// The response cache for deterministic requests.
    #[serde(default)]
    pub cache: CacheConfig,
    /// How often each replica re-reads revocations and freezes made elsewhere.
    #[serde(default = "default_block_refresh")]
    pub block_refresh: String,
    /// Budget slices each replica reserves and draws calls from in memory.
    #[serde(default)]
    pub lease: LeaseConfig,
}

/// `[gateway.lease]`: a slice holds `calls` calls' worst case (at most an eighth of a
/// line's limit); `calls = 0` reserves every call on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    #[serde(default = "default_lease_calls")]
    pub calls: u32,
    /// A slice unused this long is settled.
    #[serde(default = "default_lease_idle")]
    pub idle: String,
    /// A slice older than this takes no more calls (at most half of `abandon_after`).
    #[serde(default = "default_lease_max_age")]
    pub max_age: String,
}

fn default_lease_calls() -> u32 {
    64
}
fn default_lease_idle() -> String {
    "2s".into()
}
fn default_lease_max_age() -> String {
    "60s".into()
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            calls: default_lease_calls(),
            idle: default_lease_idle(),
            max_age: default_lease_max_age(),
        }
    }
}

fn default_block_refresh() -> String {
    "500ms".into()
}

fn default_abandon_after() -> String {
    "30m".into()
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            key_file: None,
            key_env: None,
            budget: BudgetConfig::default(),
            upstreams: Vec::new(),
            prices: Vec::new(),
            routes: Vec::new(),
            abandon_after: default_abandon_after(),
            anomaly: AnomalyConfig::default(),
            cache: CacheConfig::default(),
            block_refresh: default_block_refresh(),
            lease: LeaseConfig::default(),
        }
    }
}

/// `[gateway.cache]`: answers to deterministic requests (temperature 0), kept in memory
/// per replica, per project.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long an answer is served from the cache.
    #[serde(default = "default_cache_ttl")]
    pub ttl: String,
    /// The cache's size bound, in MiB of answer bytes.
    #[serde(default = "default_cache_mib")]
    pub max_mib: u64,
    /// Answers larger than this (KiB) are not kept.
    #[serde(default = "default_cache_entry_kib")]
    pub max_entry_kib: u64,
}

fn default_cache_ttl() -> String {
    "1h".into()
}
fn default_cache_mib() -> u64 {
    64
}
fn default_cache_entry_kib() -> u64 {
    1024
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            ttl: default_cache_ttl(),
            max_mib: default_cache_mib(),
            max_entry_kib: default_cache_entry_kib(),
        }
    }
}

/// The response cache as loaded.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub ttl: std::time::Duration,
    pub max_bytes: u64,
    pub max_entry_bytes: usize,
}

impl CacheConfig {
    fn load(&self) -> Result<Option<CacheSettings>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let ttl = duration("cache.ttl", &self.ttl, "1h", SECOND..=MAX_WAIT)?;
        if !(1..=65_536).contains(&self.max_mib) {
            return Err(format!(
                "cache.max_mib {}: between 1 and 65536",
                self.max_mib
            ));
        }
        if !(1..=(64 << 10)).contains(&self.max_entry_kib)
            || self.max_entry_kib > self.max_mib << 10
        {
            return Err(format!(
                "cache.max_entry_kib {}: between 1 and 65536, and within max_mib",
                self.max_entry_kib
            ));
        }
        Ok(Some(CacheSettings {
            ttl,
            max_bytes: self.max_mib << 20,
            max_entry_bytes: (self.max_entry_kib << 10) as usize,
        }))
    }
}

/// `[gateway.anomaly]`: an agent whose spend over `window` exceeds `factor` times its
/// usual rate (its average over `baseline` before the window), and more than `floor`
/// dollars, is frozen (an agent hold) until a person releases it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_window")]
    pub window: String,
    #[serde(default = "default_baseline")]
    pub baseline: String,
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// US dollars per window.
    #[serde(default = "default_floor")]
    pub floor: String,
    /// How often the watch looks.
    #[serde(default = "default_watch_interval")]
    pub interval: String,
}

fn default_true() -> bool {
    true
}
fn default_window() -> String {
    "10m".into()
}
fn default_baseline() -> String {
    "24h".into()
}
fn default_factor() -> f64 {
    10.0
}
fn default_floor() -> String {
    "2".into()
}
fn default_watch_interval() -> String {
    "30s".into()
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            window: default_window(),
            baseline: default_baseline(),
            factor: default_factor(),
            floor: default_floor(),
            interval: default_watch_interval(),
        }
    }
}

/// The anomaly watch as loaded.
#[derive(Debug, Clone, Copy)]
pub struct Anomaly {
    pub rule: SpikeRule,
    pub interval: std::time::Duration,
}

impl AnomalyConfig {
    fn load(&self) -> Result<Option<Anomaly>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let window = duration("anomaly.window", &self.window, "10m", SECOND..=MAX_WAIT)?;
        let baseline = duration("anomaly.baseline", &self.baseline, "24h", SECOND..=MAX_WAIT)?;
        let interval = duration("anomaly.interval", &self.interval, "30s", SECOND..=MAX_WAIT)?;
        if baseline < window {
            return Err("anomaly.baseline must be at least as long as anomaly.window".into());
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(format!(
                "anomaly.factor {}: must be at least 1",
                self.factor
            ));
        }
        let floor = parse_usd(&self.floor).map_err(|e| format!("anomaly.floor: {e}"))?;
        Ok(Some(Anomaly {
            rule: SpikeRule {
                window,
                baseline,
                factor: self.factor,
                floor,
            },
            interval,
        }))
    }
}

/// Default budgets per agent and per project, in US dollars (`"20"`, `"0.50"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    #[serde(default = "default_agent_daily")]
    pub agent_daily: String,
    #[serde(default = "default_agent_monthly")]
    pub agent_monthly: String,
    #[serde(default = "default_project_daily")]
    pub project_daily: String,
    #[serde(default = "default_project_monthly")]
    pub project_monthly: String,
    /// Budgets of particular agents (`[[gateway.budget.agent]]`), instead of the defaults.
    #[serde(default, rename = "agent")]
    pub agents: Vec<BudgetOverride>,
    /// Budgets of particular projects (`[[gateway.budget.project]]`).
    #[serde(default, rename = "project")]
    pub projects: Vec<BudgetOverride>,
}

/// One agent's or project's own budget; an unset period keeps the default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetOverride {
    /// The agent's id or the project's name, as credentials carry it.
    pub name: String,
    #[serde(default)]
    pub daily: Option<String>,
    #[serde(default)]
    pub monthly: Option<String>,
}

fn default_agent_daily() -> String {
    "20".into()
}
fn default_agent_monthly() -> String {
    "200".into()
}
fn default_project_daily() -> String {
    "100".into()
}
fn default_project_monthly() -> String {
    "1000".into()
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            agent_daily: default_agent_daily(),
            agent_monthly: default_agent_monthly(),
            project_daily: default_project_daily(),
            project_monthly: default_project_monthly(),
            agents: Vec::new(),
            projects: Vec::new(),
        }
    }
}

/// `[[gateway.route]]`: calls of a task class go to this model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub task_class: String,
    pub model: String,
}

/// Which family of APIs an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// Chat Completions and Responses (OpenAI, and any compatible server: vLLM,
    /// llama.cpp, Ollama).
    Openai,
    /// Messages.
    Anthropic,
}

/// `[[gateway.upstream]]`: where calls for some models go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    pub api: UpstreamKind,
    /// `https://api.openai.com`, `https://api.anthropic.com`, `http://127.0.0.1:8080`.
    pub base_url: String,
    /// The provider key: a file or a variable (a local server may need none).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub key_env: Option<String>,
    /// Models served here (exact names or `prefix*`); the first upstream that matches
    /// takes the call.
    pub models: Vec<String>,
    /// How long to wait for the answer to begin (its status and headers) before
    /// trying the next upstream; a non-streaming answer begins only once generated.
    #[serde(default = "default_upstream_timeout")]
    pub timeout: String,
}

fn default_upstream_timeout() -> String {
    "600s".into()
}

/// The gateway as loaded at start.
pub struct Loaded {
    pub key: Vec<u8>,
    pub prices: PriceTable,
    pub budgets: Budgets,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<RouteConfig>,
    pub abandon_after: std::time::Duration,
    /// `None` when `[gateway.anomaly] enabled = false`.
    pub anomaly: Option<Anomaly>,
    /// `None` when `[gateway.cache] enabled = false`.
    pub cache: Option<CacheSettings>,
    pub block_refresh: std::time::Duration,
    pub lease: super::lease::LeasePolicy,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("key", &"<redacted>")
            .field("budgets", &self.budgets)
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

/// Limits, micro-dollars: the defaults and the agents and projects with their own.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    pub agent_daily: Micros,
    pub agent_monthly: Micros,
    pub project_daily: Micros,
    pub project_monthly: Micros,
    /// Per agent id: (daily, monthly).
    pub agents: std::collections::HashMap<String, (Micros, Micros)>,
    /// Per project name: (daily, monthly).
    pub projects: std::collections::HashMap<String, (Micros, Micros)>,
}

impl Budgets {
    /// An agent's (daily, monthly) limits.
    pub fn agent(&self, agent: &str) -> (Micros, Micros) {
        self.agents
            .get(agent)
            .copied()
            .unwrap_or((self.agent_daily, self.agent_monthly))
    }

    /// A project's (daily, monthly) limits.
    pub fn project(&self, project: &str) -> (Micros, Micros) {
        self.projects
            .get(project)
            .copied()
            .unwrap_or((self.project_daily, self.project_monthly))
    }
}

/// An upstream with its key loaded.
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    pub base_url: String,
    pub key: Option<String>,
    pub models: Vec<String>,
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("models", &self.models)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl GatewayConfig {
    /// Loads keys and checks the settings; `Ok(None)` when the gateway is not configured.
    pub fn load(&self) -> Result<Option<Loaded>, ConfigError> {
        let err = |m: String| ConfigError(format!("[gateway] {m}"));
        let key = match (&self.key_file, &self.key_env) {
            (None, None) => {
                if !self.upstreams.is_empty() {
                    return Err(err("upstreams are set but no key_file or key_env".into()));
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => return Err(err("set key_file or key_env, not both".into())),
            (Some(path), None) => {
                std::fs::read(path).map_err(|e| err(format!("key_file {}: {e}", path.display())))?
            }
            (None, Some(var)) => {
                let text = std::env::var(var).map_err(|_| err(format!("${var} is not set")))?;
                hex::decode(text.trim()).map_err(|_| err(format!("${var} is not hex")))?
            }
        };
        if key.len() < 32 {
            return Err(err(format!(
                "the key holds {} bytes; use at least 32 random bytes",
                key.len()
            )));
        }
        let usd =
            |field: &str, v: &str| parse_usd(v).map_err(|e| err(format!("budget.{field}: {e}")));
        let mut budgets = Budgets {
            agent_daily: usd("agent_daily", &self.budget.agent_daily)?,
            agent_monthly: usd("agent_monthly", &self.budget.agent_monthly)?,
            project_daily: usd("project_daily", &self.budget.project_daily)?,
            project_monthly: usd("project_monthly", &self.budget.project_monthly)?,
            ..Budgets::default()
        };
        for (kind, overrides, defaults) in [
            (
                "agent",
                &self.budget.agents,
                (budgets.agent_daily, budgets.agent_monthly),
            ),
            (
                "project",
                &self.budget.projects,
                (budgets.project_daily, budgets.project_monthly),
            ),
        ] {
            for o in overrides {
                let field = |period: &str| format!("{kind}.{:?}.{period}", o.name);
                let limit = |period: &str, v: &Option<String>, default: Micros| match v {
                    Some(v) => usd(&field(period), v),
                    None => Ok(default),
                };
                let limits = (
                    limit("daily", &o.daily, defaults.0)?,
                    limit("monthly", &o.monthly, defaults.1)?,
                );
                let table = if kind == "agent" {
                    &mut budgets.agents
                } else {
                    &mut budgets.projects
                };
                if o.name.is_empty() || table.insert(o.name.clone(), limits).is_some() {
                    return Err(err(format!(
                        "budget.{kind}: {:?} is empty or listed twice",
                        o.name
                    )));
                }
            }
        }
        let prices = PriceTable::with_overrides(&self.prices).map_err(err)?;
        let abandon_after = duration(
            "abandon_after",
            &self.abandon_after,
            "30m",
            SECOND..=MAX_WAIT,
        )
        .map_err(err)?;
        for route in &self.routes {
            if route.task_class.is_empty() {
                return Err(err("a route needs a task_class".into()));
            }
            prices
                .lookup(&route.model)
                .map_err(|e| err(format!("route for {:?}: {e}", route.task_class)))?;
        }
        let anomaly = self.anomaly.load().map_err(err)?;
        let cache = self.cache.load().map_err(err)?;
        let block_refresh = duration(
            "block_refresh",
            &self.block_refresh,
            "500ms",
            Duration::from_millis(50)..=Duration::from_secs(60),
        )
        .map_err(err)?;
        let lease_duration =
            |field: &str, text: &str| duration(field, text, "2s", TEN_MS..=MAX_WAIT).map_err(err);
        if self.lease.calls > 100_000 {
            return Err(err(format!(
                "lease.calls {}: at most 100000",
                self.lease.calls
            )));
        }
        let lease = super::lease::LeasePolicy {
            calls_per_lease: self.lease.calls,
            idle: lease_duration("lease.idle", &self.lease.idle)?,
            // A slice must settle long before the sweep would take it for abandoned.
            max_age: lease_duration("lease.max_age", &self.lease.max_age)?.min(abandon_after / 2),
        };
        let mut upstreams = Vec::new();
        for u in &self.upstreams {
            if !(u.base_url.starts_with("https://") || u.base_url.starts_with("http://")) {
                return Err(err(format!(
                    "upstream {}: base_url must be http(s)://",
                    u.name
                )));
            }
            if u.models.is_empty() {
                return Err(err(format!(
                    "upstream {}: list the models it serves",
                    u.name
                )));
            }
            let key = match (&u.key_file, &u.key_env) {
                (Some(_), Some(_)) => {
                    return Err(err(format!(
                        "upstream {}: key_file or key_env, not both",
                        u.name
                    )));
                }
                (Some(path), None) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| {
                            err(format!(
                                "upstream {} key_file {}: {e}",
                                u.name,
                                path.display()
                            ))
                        })?
                        .trim()
                        .to_string(),
                ),
                (None, Some(var)) => Some(
                    std::env::var(var)
                        .map_err(|_| err(format!("upstream {}: ${var} is not set", u.name)))?,
                ),
                (None, None) => None,
            };
            upstreams.push(Upstream {
                name: u.name.clone(),
                kind: u.api,
                base_url: u.base_url.trim_end_matches('/').to_string(),
                key,
                models: u.models.clone(),
                timeout: duration(
                    &format!("upstream {}: timeout", u.name),
                    &u.timeout,
                    "60s",
                    TEN_MS..=MAX_WAIT,
                )
                .map_err(err)?,
            });
        }
        Ok(Some(Loaded {
            key,
            prices,
            budgets,
            upstreams,
            routes: self.routes.clone(),
            abandon_after,
            anomaly,
            cache,
            block_refresh,
            lease,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayConfig;

    /// The error `[gateway]` with `extra` fails with (a key file is given).
    fn load_error(extra: &str) -> String {
        let key = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key.path(), [7u8; 32]).unwrap();
        let text = format!("key_file = {:?}\n{extra}", key.path());
        let config: GatewayConfig = toml::from_str(&text).unwrap();
        config.load().unwrap_err().0
    }

    #[test]
    fn the_defaults_load_with_the_anomaly_watch_on() {
        let key = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key.path(), [7u8; 32]).unwrap();
        let config: GatewayConfig =
            toml::from_str(&format!("key_file = {:?}", key.path())).unwrap();
        let loaded = config.load().unwrap().unwrap();
        let anomaly = loaded.anomaly.unwrap();
        assert_eq!(anomaly.rule.window.as_secs(), 600);
        assert_eq!(anomaly.rule.floor, 2_000_000);
        let off: GatewayConfig = toml::from_str(&format!(
            "key_file = {:?}\n[anomaly]\nenabled = false",
            key.path()
        ))
        .unwrap();
        assert!(off.load().unwrap().unwrap().anomaly.is_none());
    }

    #[test]
    fn agents_and_projects_may_have_their_own_budgets() {
        let key = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key.path(), [7u8; 32]).unwrap();
        let config: GatewayConfig = toml::from_str(&format!(
            "key_file = {:?}\n[budget]\nagent_daily = \"20\"\n[[budget.agent]]\nname = \"devin\"\ndaily = \"5\"\n[[budget.project]]\nname = \"acme/api\"\nmonthly = \"5000\"",
            key.path()
        ))
        .unwrap();
        let b = config.load().unwrap().unwrap().budgets;
        assert_eq!(b.agent("devin"), (5_000_000, 200_000_000));
        assert_eq!(b.agent("codex"), (20_000_000, 200_000_000));
        assert_eq!(b.project("acme/api"), (100_000_000, 5_000_000_000));
        assert_eq!(b.project("acme/web"), (100_000_000, 1_000_000_000));
    }

    #[test]
    fn bad_settings_are_refused_at_start_with_their_name() {
        for (extra, expected) in [
            ("[anomaly]\nwindow = \"soon\"", "anomaly.window"),
            (
                "[anomaly]\nwindow = \"2h\"\nbaseline = \"1h\"",
                "anomaly.baseline",
            ),
            ("[anomaly]\nfactor = 0.5", "anomaly.factor"),
            ("[anomaly]\nfloor = \"-1\"", "anomaly.floor"),
            ("[anomaly]\ninterval = \"0s\"", "anomaly.interval"),
            ("[cache]\nttl = \"forever\"", "cache.ttl"),
            ("[cache]\nmax_mib = 0", "cache.max_mib"),
            (
                "[cache]\nmax_mib = 1\nmax_entry_kib = 2048",
                "cache.max_entry_kib",
            ),
            ("abandon_after = \"0s\"", "abandon_after"),
            ("block_refresh = \"10ms\"", "block_refresh"),
            ("[lease]\nidle = \"0s\"", "lease.idle"),
            ("[lease]\ncalls = 1000000", "lease.calls"),
            ("[budget]\nagent_daily = \"lots\"", "budget.agent_daily"),
            (
                "[[budget.agent]]\nname = \"devin\"\ndaily = \"x\"",
                "budget.agent.\"devin\".daily",
            ),
            (
                "[[budget.project]]\nname = \"a\"\n[[budget.project]]\nname = \"a\"",
                "listed twice",
            ),
        ] {
            let error = load_error(extra);
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }
}
