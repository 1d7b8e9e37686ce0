//! `.lockgate.toml`: the team's configuration, with documented defaults for every key.
//!
//! Parsing a string is not IO: the CLI reads the file (from the *base* revision, so a
//! change cannot loosen its own gate) and hands the text here. Unknown keys are errors,
//! reported with line and column.

use crate::agents::AgentSettings;
use crate::category::{Category, Impact, TrustBand};
use crate::change::Limits;
use crate::classify::ClassifySettings;
use crate::secrets::SecretSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a change goes in the risk matrix.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// May merge on its own (with monitoring).
    Automate,
    /// Needs approval from the owners of the files (or the fallback reviewers).
    Approve,
    /// Needs approval from the owners, `gate_approvals` of them, and never auto-merges.
    Gate,
    /// May not merge at all.
    Forbid,
}

impl Route {
    /// The lower-case name used in config, policy and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Automate => "automate",
            Route::Approve => "approve",
            Route::Gate => "gate",
            Route::Forbid => "forbid",
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub agents: AgentSettings,
    pub classify: ClassifySettings,
    pub secrets: SecretSettings,
    /// Impact per category, overriding the defaults.
    pub impact: BTreeMap<Category, Impact>,
    pub routing: RoutingSettings,
    pub review: ReviewSettings,
    pub policy: PolicySettings,
    pub limits: Limits,
    pub trust: crate::trust::TrustSettings,
    pub evidence: EvidenceSettings,
}

/// `[evidence]`: how reports are read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceSettings {
    pub terraform: TerraformSettings,
}

/// `[evidence.terraform]`: resource type globs added to the built-in lists
/// (`lockgate defaults terraform`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TerraformSettings {
    /// Use the built-in lists too.
    pub defaults: bool,
    /// Types whose destruction loses data.
    pub stateful: Vec<String>,
    /// Types that grant access (their changes are `auth`).
    pub access: Vec<String>,
}

impl Default for TerraformSettings {
    fn default() -> Self {
        TerraformSettings {
            defaults: true,
            stateful: Vec::new(),
            access: Vec::new(),
        }
    }
}

/// The risk matrix: impact × trust → route, and what is never automated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// `matrix.<impact>.<trust> = "<route>"`; missing cells take the default.
    pub matrix: BTreeMap<Impact, BTreeMap<TrustBand, Route>>,
    /// Categories that route at least to `gate` for gated authors.
    pub never_automate: Vec<Category>,
    /// File flags that route at least to `gate` (built-in flag: `production`).
    pub never_automate_flags: Vec<String>,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            matrix: default_matrix(),
            never_automate: vec![Category::Secrets, Category::Auth, Category::Governance],
            never_automate_flags: vec!["production".into()],
        }
    }
}

/// The default risk matrix (see docs/policy.md).
pub fn default_matrix() -> BTreeMap<Impact, BTreeMap<TrustBand, Route>> {
    use Route::*;
    let row = |high, medium, low| {
        BTreeMap::from([
            (TrustBand::High, high),
            (TrustBand::Medium, medium),
            (TrustBand::Low, low),
        ])
    };
    BTreeMap::from([
        (Impact::Low, row(Automate, Approve, Approve)),
        (Impact::Medium, row(Approve, Approve, Approve)),
        (Impact::High, row(Approve, Gate, Gate)),
        (Impact::Critical, row(Gate, Gate, Forbid)),
    ])
}

impl RoutingSettings {
    /// The matrix with every cell filled: the configured cells over the defaults.
    pub fn full_matrix(&self) -> BTreeMap<Impact, BTreeMap<TrustBand, Route>> {
        let mut full = default_matrix();
        for (impact, row) in &self.matrix {
            full.entry(*impact).or_default().extend(row.clone());
        }
        full
    }
}

/// Who reviews, and how many approvals each route needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewSettings {
    /// Approvals needed on the `approve` route.
    pub approvals: u32,
    /// Approvals needed on the `gate` route.
    pub gate_approvals: u32,
    /// Reviewers asked when no CODEOWNERS entry owns a file (e.g. `@org/maintainers`).
    pub fallback_reviewers: Vec<String>,
    /// Asked in addition to the owners when the trust score is in the senior band
    /// (empty: any maintainer).
    pub senior_reviewers: Vec<String>,
    /// Approvals needed from the senior reviewers.
    pub senior_approvals: u32,
    /// When no approval arrives within this long (`4h`), `lockgate serve` notifies
    /// on-call and places a hold on the change. Rules may set their own wait.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::decision::deserialize_wait"
    )]
    pub escalate_after: Option<String>,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            approvals: 1,
            gate_approvals: 2,
            fallback_reviewers: Vec::new(),
            senior_reviewers: Vec::new(),
            senior_approvals: 1,
            escalate_after: None,
        }
    }
}

/// How policy is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Apply the agent gates to human changes too.
    pub gate_humans: bool,
    /// Rule ids whose results are dropped. Fail-closed rules (`input.*`, `policy.*`,
    /// `secrets.*`) cannot be disabled.
    pub disabled_rules: Vec<String>,
    /// Evaluation time limit in milliseconds; exceeding it blocks (fail closed).
    pub timeout_ms: u64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            gate_humans: false,
            disabled_rules: Vec::new(),
            timeout_ms: 2000,
        }
    }
}

/// A configuration file could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl Config {
    /// Parses `.lockgate.toml` text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_col(text, span.start))
                .map(|(l, c)| (Some(l), Some(c)))
                .unwrap_or((None, None));
            ConfigError {
                line,
                column,
                message: e.message().to_string(),
            }
        })
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert!(c.agents.defaults && c.classify.defaults && c.secrets.defaults);
    }

    #[test]
    fn overrides_parse() {
        let c = Config::from_toml(
            r#"
[impact]
docs = "medium"

[routing.matrix.low]
low = "automate"

[review]
fallback_reviewers = ["@org/maintainers"]

[[classify.path]]
id = "payments"
categories = ["billing"]
paths = ["/services/ledger/"]

[agents.trust]
claude-code = "high"
"#,
        )
        .unwrap();
        assert_eq!(c.impact[&Category::Docs], Impact::Medium);
        let m = c.routing.full_matrix();
        assert_eq!(m[&Impact::Low][&TrustBand::Low], Route::Automate);
        assert_eq!(m[&Impact::Critical][&TrustBand::Low], Route::Forbid);
        assert_eq!(c.classify.path[0].categories, [Category::Billing]);
        assert_eq!(c.agents.trust["claude-code"], TrustBand::High);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Config::from_toml("[review]\napprovals = 1\nbogus = true\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `bogus`"), "{}", e.message);
        let e = Config::from_toml("[impact]\ndocs = \"huge\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
