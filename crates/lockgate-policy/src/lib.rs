//! Rego policy evaluation for Lockgate: the built-in pack plus the team's rules.
//!
//! This is the only crate that knows the policy engine (regorus, an embedded Rego
//! interpreter). It takes the input document as JSON and returns an engine-neutral
//! [`PolicyOutcome`]. Every failure is an error the caller turns into a blocking
//! decision: a policy that does not parse, fails at runtime, runs past its time limit,
//! returns results of the wrong shape, or (for a team file) defines no result rule.
//!
//! ```
//! use lockgate_policy::PolicySet;
//! let policies = PolicySet::builtin().unwrap();
//! let input = r#"{"author": {"kind": "human"}, "findings": [],
//!     "files": [], "owners": {"groups": [], "unowned": [], "errors": []},
//!     "change": {"truncated": false, "notes": []}, "categories": [], "impact": "low",
//!     "config": {"gate_humans": false}}"#;
//! let outcome = policies.evaluate(input, std::time::Duration::from_secs(2)).unwrap();
//! assert!(outcome.allow_auto_merge);
//! ```

mod outcome;
mod testing;

pub use lockgate_core::decision::PolicyOutcome;
pub use testing::{TestReport, TestResult};

use regorus::Engine;
use std::num::NonZeroU32;
use std::time::Duration;

/// Name under which the built-in pack is loaded.
pub const BUILTIN_NAME: &str = "builtin:lockgate/builtin.rego";
/// The built-in pack's package.
pub const BUILTIN_PACKAGE: &str = "data.lockgate.builtin";
/// The built-in pack's source.
pub const BUILTIN_REGO: &str = include_str!("../rego/builtin.rego");

/// Result rules collected from every package.
const RESULT_RULES: [&str; 4] = ["deny", "require_approval", "warn", "notes"];

/// Largest policy file accepted.
const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// Something went wrong loading or evaluating policy. Always fail closed on it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {message}")]
    Load { file: String, message: String },
    #[error(
        "policy {file} (package {package}) defines none of deny, require_approval, warn, notes or test_* rules, so it can never affect a decision"
    )]
    NoRules { file: String, package: String },
    #[error("policy {file} may not use package {package}: it is reserved for the built-in pack")]
    Reserved { file: String, package: String },
    #[error("policy evaluation of {rule} failed: {message}")]
    Eval { rule: String, message: String },
    #[error("policy rule {rule} returned an unexpected value: {message}")]
    Shape { rule: String, message: String },
    #[error("the policy input is not valid JSON: {0}")]
    Input(String),
}

/// A loaded team policy file.
#[derive(Debug, Clone)]
struct TeamFile {
    name: String,
    package: String,
    source: String,
}

/// The built-in pack and any team policies, parsed and ready to evaluate.
#[derive(Clone)]
pub struct PolicySet {
    engine: Engine,
    team: Vec<TeamFile>,
}

impl PolicySet {
    /// Only the built-in pack.
    pub fn builtin() -> Result<PolicySet, PolicyError> {
        let mut engine = Engine::new();
        engine
            .add_policy(BUILTIN_NAME.into(), BUILTIN_REGO.into())
            .map_err(|e| PolicyError::Load {
                file: BUILTIN_NAME.into(),
                message: compact_error(BUILTIN_NAME, &e.to_string()),
            })?;
        Ok(PolicySet {
            engine,
            team: Vec::new(),
        })
    }

    /// Adds one team policy file. `name` is how errors refer to it (a path).
    pub fn add_file(&mut self, name: &str, source: &str) -> Result<(), PolicyError> {
        if source.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::Load {
                file: name.into(),
                message: format!("{name}: larger than {MAX_POLICY_BYTES} bytes"),
            });
        }
        let package = self
            .engine
            .add_policy(name.into(), source.into())
            .map_err(|e| PolicyError::Load {
                file: name.into(),
                message: compact_error(name, &e.to_string()),
            })?;
        if package == BUILTIN_PACKAGE || package.starts_with(&format!("{BUILTIN_PACKAGE}.")) {
            return Err(PolicyError::Reserved {
                file: name.into(),
                package,
            });
        }
        let declares = |rule: &str| {
            self.engine
                .has_declared_rule_rooted_at(name, rule)
                .unwrap_or(false)
        };
        let has_results = RESULT_RULES.iter().any(|r| declares(r));
        let has_tests = !testing::test_rule_names(source).is_empty();
        if !has_results && !has_tests {
            return Err(PolicyError::NoRules {
                file: name.into(),
                package,
            });
        }
        self.team.push(TeamFile {
            name: name.into(),
            package,
            source: source.into(),
        });
        Ok(())
    }

    /// Names of the policy files that take part, built-in first.
    pub fn sources(&self) -> Vec<String> {
        std::iter::once(BUILTIN_NAME.to_string())
            .chain(self.team.iter().map(|t| t.name.clone()))
            .collect()
    }

    /// Evaluates every package's result rules against `input` (JSON text).
    pub fn evaluate(&self, input: &str, timeout: Duration) -> Result<PolicyOutcome, PolicyError> {
        let started = std::time::Instant::now();
        let mut engine = self.prepared_engine(Some(input), timeout)?;
        tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "engine ready");
        let mut outcome = PolicyOutcome {
            sources: self.sources(),
            ..PolicyOutcome::default()
        };
        // The built-in package is evaluated as one document, so the rules it shares
        // (the route, the never-automate set) are computed once.
        let started = std::time::Instant::now();
        let builtin = eval_query_value(&mut engine, BUILTIN_PACKAGE)?;
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "built-in pack evaluated"
        );
        for rule in RESULT_RULES {
            let value = builtin
                .get(rule)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            outcome::collect(
                &mut outcome,
                rule,
                &format!("{BUILTIN_PACKAGE}.{rule}"),
                value,
            )?;
        }
        outcome.allow_auto_merge =
            builtin.get("allow_auto_merge") == Some(&serde_json::Value::Bool(true));
        outcome.route = match builtin.get("route") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v.clone()).map_err(|e| PolicyError::Shape {
                    rule: format!("{BUILTIN_PACKAGE}.route"),
                    message: e.to_string(),
                })?,
            ),
        };

        // Team packages: only the result rules they declare (never their tests).
        let mut packages: Vec<&str> = Vec::new();
        for t in &self.team {
            if !packages.contains(&t.package.as_str()) {
                packages.push(&t.package);
            }
        }
        for package in packages {
            for rule in RESULT_RULES {
                let declared = self.team.iter().filter(|t| t.package == package).any(|t| {
                    engine
                        .has_declared_rule_rooted_at(&t.name, rule)
                        .unwrap_or(false)
                });
                if !declared {
                    continue;
                }
                let path = format!("{package}.{rule}");
                let value = eval_rule(&mut engine, &path)?;
                outcome::collect(&mut outcome, rule, &path, value)?;
            }
        }
        Ok(outcome)
    }

    /// Evaluates an arbitrary query (for `lockgate policy eval`). Returns the value of
    /// each result's first expression, as JSON.
    pub fn query(
        &self,
        input: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Vec<serde_json::Value>, PolicyError> {
        let mut engine = self.prepared_engine(Some(input), timeout)?;
        let results =
            engine
                .eval_query(query.to_string(), false)
                .map_err(|e| PolicyError::Eval {
                    rule: query.into(),
                    message: compact_error(query, &e.to_string()),
                })?;
        results
            .result
            .iter()
            .flat_map(|r| r.expressions.iter())
            .map(|e| to_json(&e.value, query))
            .collect()
    }

    /// Runs every `test_*` rule in the team files (like `opa test`).
    pub fn run_tests(&self, timeout: Duration) -> TestReport {
        testing::run(self, timeout)
    }

    /// A fresh engine with the time limit set and `input` (JSON text) loaded.
    fn prepared_engine(
        &self,
        input: Option<&str>,
        timeout: Duration,
    ) -> Result<Engine, PolicyError> {
        let started = std::time::Instant::now();
        let mut engine = self.engine.clone();
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: timeout,
            check_interval: NonZeroU32::new(64).expect("non-zero"),
        });
        if let Some(json) = input {
            let value = regorus::Value::from_json_str(json)
                .map_err(|e| PolicyError::Input(e.to_string()))?;
            engine.set_input(value);
        }
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "policy input prepared"
        );
        Ok(engine)
    }
}

/// Folds the interpreter's multi-line diagnostic (`--> file:line:col`, a source
/// excerpt, `error: message`) into one line: `file:line:col: message`.
fn compact_error(file: &str, text: &str) -> String {
    let location = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .map(str::to_string);
    let message = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string);
    match (location, message) {
        (Some(at), Some(msg)) => format!("{at}: {msg}"),
        _ => {
            let joined: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            format!("{file}: {}", joined.join("; "))
        }
    }
}

/// Evaluates a query whose single result is an object (e.g. a whole package).
fn eval_query_value(
    engine: &mut Engine,
    query: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, PolicyError> {
    let results = engine
        .eval_query(query.to_string(), false)
        .map_err(|e| PolicyError::Eval {
            rule: query.into(),
            message: compact_error(query, &e.to_string()),
        })?;
    let value = results
        .result
        .first()
        .and_then(|r| r.expressions.first())
        .map(|e| to_json(&e.value, query))
        .transpose()?;
    match value {
        Some(serde_json::Value::Object(map)) => Ok(map),
        other => Err(PolicyError::Shape {
            rule: query.into(),
            message: format!("expected the package document, got {other:?}"),
        }),
    }
}

/// Evaluates one rule path to JSON; undefined becomes `null`.
fn eval_rule(engine: &mut Engine, path: &str) -> Result<serde_json::Value, PolicyError> {
    let value = engine
        .eval_rule(path.to_string())
        .map_err(|e| PolicyError::Eval {
            rule: path.into(),
            message: compact_error(path, &e.to_string()),
        })?;
    to_json(&value, path)
}

fn to_json(value: &regorus::Value, rule: &str) -> Result<serde_json::Value, PolicyError> {
    if *value == regorus::Value::Undefined {
        return Ok(serde_json::Value::Null);
    }
    let text = value.to_json_str().map_err(|e| PolicyError::Shape {
        rule: rule.into(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| PolicyError::Shape {
        rule: rule.into(),
        message: e.to_string(),
    })
}
