//! `lockgate-server.toml`: where to listen, which database, and the people directory
//! (CODEOWNERS users and teams mapped to people who can approve).

use lockgate_core::agents::Registry;
use lockgate_core::approvals::Person;
use serde::Deserialize;

/// The server's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free one.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `sqlite://PATH` (default `sqlite://lockgate.db`) or `postgres://…`.
    #[serde(default = "default_database")]
    pub database_url: String,
    /// Largest request body, bytes.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// The address people reach this server at (`https://lockgate.example.com`): links in
    /// chat and forge messages; `https` makes the UI's session cookie `Secure`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The transparency log every approval is appended to.
    #[serde(default)]
    pub log: LogConfig,
    /// Time-boxed escalation: where on-call is notified.
    #[serde(default)]
    pub escalation: EscalationConfig,
    /// Chat-ops approvals in Slack.
    #[serde(default)]
    pub slack: SlackConfig,
    /// The GitHub integration.
    #[serde(default)]
    pub github: GithubConfig,
    /// People who may approve, with the identities CODEOWNERS and commits show.
    #[serde(default, rename = "person")]
    pub people: Vec<Person>,
    /// The LLM gateway for agents (docs/gateway.md).
    #[serde(default)]
    pub gateway: crate::gateway::config::GatewayConfig,
    /// The merge queue (docs/merge-queue.md).
    #[serde(default)]
    pub merge: crate::queue::config::MergeConfig,
    /// `gateway` with its keys, loaded at start.
    #[serde(skip)]
    pub gateway_loaded: Option<std::sync::Arc<crate::gateway::config::Loaded>>,
}

fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_database() -> String {
    "sqlite://lockgate.db".into()
}
fn default_body_limit() -> usize {
    8 << 20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            database_url: default_database(),
            max_body_bytes: default_body_limit(),
            public_url: None,
            log: LogConfig::default(),
            escalation: EscalationConfig::default(),
            slack: SlackConfig::default(),
            github: GithubConfig::default(),
            people: Vec::new(),
            gateway: Default::default(),
            merge: Default::default(),
            gateway_loaded: None,
        }
    }
}

/// `[log]`: where approvals are logged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A log directory (`lockgate log init`); created on first start when absent.
    #[serde(default = "default_log_dir")]
    pub dir: std::path::PathBuf,
    /// The origin line of a log created here.
    #[serde(default = "default_log_origin")]
    pub origin: String,
}

fn default_log_dir() -> std::path::PathBuf {
    "lockgate-log".into()
}
fn default_log_origin() -> String {
    "lockgate.local/approvals".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: default_log_dir(),
            origin: default_log_origin(),
        }
    }
}

/// `[escalation]`: how changes that wait too long for approval are escalated (the wait
/// itself is set by rules: `[review] escalate_after` in `.lockgate.toml`, or a policy's
/// `escalate_after`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// The on-call webhook (a secret: never logged). Without it, escalation only holds.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Or: the environment variable holding the webhook URL.
    #[serde(default)]
    pub webhook_env: Option<String>,
    /// A file with the key for the `X-Lockgate-Signature` HMAC over each notice.
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    /// How often the scheduler looks (`30s`).
    #[serde(default = "default_escalation_interval")]
    pub interval: String,
    /// Tries per notice before giving up (the hold stays either way).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_escalation_interval() -> String {
    "30s".into()
}
fn default_attempts() -> u32 {
    10
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            webhook: None,
            webhook_env: None,
            secret_file: None,
            interval: default_escalation_interval(),
            max_attempts: default_attempts(),
        }
    }
}

impl EscalationConfig {
    /// The scan interval (validated at start).
    pub fn interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.interval).unwrap_or(std::time::Duration::from_secs(30))
    }

    /// The signing key, if one is configured.
    pub fn secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        match &self.secret_file {
            None => Ok(None),
            Some(p) => std::fs::read(p)
                .map(|b| Some(b.trim_ascii().to_vec()))
                .map_err(|e| ConfigError(format!("escalation.secret_file {}: {e}", p.display()))),
        }
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let interval = humantime::parse_duration(&self.interval)
            .map_err(|e| ConfigError(format!("escalation.interval {:?}: {e}", self.interval)))?;
        if interval < std::time::Duration::from_millis(100) {
            return Err(ConfigError("escalation.interval below 100ms".into()));
        }
        if let Some(var) = &self.webhook_env {
            if self.webhook.is_some() {
                return Err(ConfigError(
                    "escalation: set webhook or webhook_env, not both".into(),
                ));
            }
            self.webhook =
                Some(std::env::var(var).map_err(|_| {
                    ConfigError(format!("escalation.webhook_env: ${var} is not set"))
                })?);
        }
        if let Some(url) = &self.webhook
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError(
                "escalation.webhook must be an http(s) URL".into(),
            ));
        }
        if let Some(secret) = self.secret()?
            && secret.len() < 16
        {
            return Err(ConfigError(
                "escalation.secret_file: use a key of at least 16 bytes".into(),
            ));
        }
        Ok(())
    }
}

/// `[slack]`: where summaries go and how Slack's callbacks are verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (a secret), or `webhook_env` naming a variable with it.
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub webhook_env: Option<String>,
    /// The app's signing secret: a file holding it, or a variable. Without it, the
    /// interaction endpoint answers 404.
    #[serde(default)]
    pub signing_secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// Where answers to a button press may be posted (the callback's `response_url`
    /// must start with one of these).
    #[serde(default = "default_response_prefixes")]
    pub response_url_prefixes: Vec<String>,
    /// Loaded from the file or variable at start.
    #[serde(skip)]
    pub signing_secret: Option<String>,
}

fn default_response_prefixes() -> Vec<String> {
    vec!["https://hooks.slack.com/".into()]
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            webhook: None,
            webhook_env: None,
            signing_secret_file: None,
            signing_secret_env: None,
            response_url_prefixes: default_response_prefixes(),
            signing_secret: None,
        }
    }
}

/// `[github]`: the API the client calls and the webhook secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// REST API base (`https://api.github.com`; GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// A token that may set statuses, labels and comments: a file or a variable.
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub token_env: Option<String>,
    /// The webhook secret: a file or a variable. Without it the receiver answers 404.
    #[serde(default)]
    pub webhook_secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
    #[serde(skip)]
    pub token: Option<String>,
    #[serde(skip)]
    pub webhook_secret: Option<String>,
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            api_url: default_github_api(),
            token_file: None,
            token_env: None,
            webhook_secret_file: None,
            webhook_secret_env: None,
            token: None,
            webhook_secret: None,
        }
    }
}

/// A secret from a file or an environment variable (not both).
fn secret_from(
    what: &str,
    file: &Option<std::path::PathBuf>,
    env: &Option<String>,
) -> Result<Option<String>, ConfigError> {
    let mut value = None;
    from_env(what, &mut value, env)?;
    if let Some(path) = file {
        if value.is_some() {
            return Err(ConfigError(format!(
                "{what}: set the file or the variable, not both"
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{what} file {}: {e}", path.display())))?;
        value = Some(text.trim().to_string());
    }
    if value.as_ref().is_some_and(|v| v.is_empty()) {
        return Err(ConfigError(format!("{what} is empty")));
    }
    Ok(value)
}

impl GithubConfig {
    fn validate(&mut self) -> Result<(), ConfigError> {
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(ConfigError("github.api_url must be an http(s) URL".into()));
        }
        self.token = secret_from("github.token", &self.token_file, &self.token_env)?;
        self.webhook_secret = secret_from(
            "github.webhook_secret",
            &self.webhook_secret_file,
            &self.webhook_secret_env,
        )?;
        if self.webhook_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError(
                "github webhook secret: shorter than 16 characters".into(),
            ));
        }
        Ok(())
    }
}

/// `value`, or the contents of environment variable `env` (not both).
fn from_env(
    what: &str,
    value: &mut Option<String>,
    env: &Option<String>,
) -> Result<(), ConfigError> {
    if let Some(var) = env {
        if value.is_some() {
            return Err(ConfigError(format!("{what}: set it or its _env, not both")));
        }
        *value = Some(
            std::env::var(var)
                .map_err(|_| ConfigError(format!("{what}_env: ${var} is not set")))?,
        );
    }
    Ok(())
}

impl SlackConfig {
    fn validate(&mut self) -> Result<(), ConfigError> {
        from_env("slack.webhook", &mut self.webhook, &self.webhook_env)?;
        if let Some(url) = &self.webhook
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError("slack.webhook must be an http(s) URL".into()));
        }
        let mut secret = None;
        from_env(
            "slack.signing_secret",
            &mut secret,
            &self.signing_secret_env,
        )?;
        if let Some(path) = &self.signing_secret_file {
            if secret.is_some() {
                return Err(ConfigError(
                    "slack: set signing_secret_file or signing_secret_env, not both".into(),
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("slack.signing_secret_file {}: {e}", path.display()))
            })?;
            secret = Some(text.trim().to_string());
        }
        if secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError(
                "slack signing secret: shorter than 16 characters".into(),
            ));
        }
        self.signing_secret = secret;
        Ok(())
    }
}

/// The configuration is unusable; says where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ServerConfig {
    /// Parses and validates (unique person ids; nobody in the directory is an agent or
    /// bot identity, since agents can never approve).
    pub fn from_toml(text: &str, registry: &Registry) -> Result<ServerConfig, ConfigError> {
        let config: ServerConfig =
            toml::from_str(text).map_err(|e| ConfigError(format!("server config: {e}")))?;
        config.validate(registry)?;
        Ok(config)
    }

    pub fn validate(&self, registry: &Registry) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.people {
            if p.id.trim().is_empty() || p.id.len() > 256 {
                return Err(ConfigError("person: `id` must be 1–256 characters".into()));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(ConfigError(format!("person {:?} appears twice", p.id)));
            }
            if p.is_agent(registry) {
                return Err(ConfigError(format!(
                    "person {:?} has an agent or bot identity; agents can never approve",
                    p.id
                )));
            }
            for t in &p.teams {
                if !(t.starts_with('@') && t.contains('/')) {
                    return Err(ConfigError(format!(
                        "person {:?}: team {t:?} should look like @org/team",
                        p.id
                    )));
                }
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes below 1024".into()));
        }
        Ok(())
    }

    /// Checks the integration settings and loads their secrets from files and the
    /// environment (done when the server starts, not when the file is merely read:
    /// `token create` needs no webhook secrets).
    pub fn load_integrations(&mut self) -> Result<(), ConfigError> {
        self.escalation.validate()?;
        self.slack.validate()?;
        self.github.validate()?;
        self.merge.validate()?;
        if self.github.token.is_none()
            && let Some(r) = self.merge.repos.iter().find(|r| r.github.is_some())
        {
            return Err(ConfigError(format!(
                "merge.repo {}: landing through GitHub needs [github] token_file or token_env",
                r.name
            )));
        }
        self.gateway_loaded = self.gateway.load()?.map(std::sync::Arc::new);
        Ok(())
    }

    /// A person by id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }
}
