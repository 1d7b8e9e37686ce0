//! Terraform plans as JSON (`terraform show -json plan.tfplan`, format 0.1–1.x):
//! resources created, updated, replaced, destroyed, by type; destructive changes to
//! stateful resources; and changes to access-granting resources (the `auth` category).
//!
//! Only `resource_changes[].{address, mode, type, change.actions}` are read; the planned
//! values (`before`, `after`, often most of the file) are skipped as they stream by.
//! Output of wrappers (`setup-terraform` prints the command line first, and more after)
//! around the JSON object is skipped.

use crate::{Bounded, EvidenceError, MAX_ITEMS, MAX_REPORT_BYTES};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Read};

const FORMAT: &str = "Terraform plan";
/// Addresses listed per flag (the counts cover all).
const MAX_LISTED: usize = 200;

/// The built-in resource type lists (`defaults/terraform.toml`).
pub const DEFAULT_RULES_TOML: &str = include_str!("../defaults/terraform.toml");

/// What one resource change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// Delete and create (either order).
    Replace,
    Delete,
    /// Removed from state without destroying (`removed { lifecycle { destroy = false } }`).
    Forget,
    Read,
    NoOp,
}

impl Action {
    fn from_actions(actions: &[String]) -> Option<Action> {
        let a: Vec<&str> = actions.iter().map(String::as_str).collect();
        Some(match a.as_slice() {
            ["create"] => Action::Create,
            ["update"] => Action::Update,
            ["delete", "create"] | ["create", "delete"] => Action::Replace,
            ["delete"] => Action::Delete,
            ["forget"] => Action::Forget,
            ["read"] => Action::Read,
            ["no-op"] | [] => Action::NoOp,
            _ => return None,
        })
    }

    /// Destroys the existing object.
    pub fn destroys(self) -> bool {
        matches!(self, Action::Replace | Action::Delete)
    }
}

/// Resource type lists, compiled.
#[derive(Debug, Clone)]
pub struct TerraformRules {
    stateful: GlobSet,
    access: GlobSet,
}

/// The type lists as written in TOML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerraformRuleLists {
    #[serde(default)]
    pub stateful: Vec<String>,
    #[serde(default)]
    pub access: Vec<String>,
}

impl TerraformRules {
    /// Compiles type lists.
    pub fn new(lists: &TerraformRuleLists) -> Result<TerraformRules, String> {
        let build = |patterns: &[String]| -> Result<GlobSet, String> {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                b.add(Glob::new(p).map_err(|e| format!("resource type pattern {p:?}: {e}"))?);
            }
            b.build().map_err(|e| e.to_string())
        };
        Ok(TerraformRules {
            stateful: build(&lists.stateful)?,
            access: build(&lists.access)?,
        })
    }

    /// The built-in lists.
    pub fn default_lists() -> TerraformRuleLists {
        toml::from_str(DEFAULT_RULES_TOML).expect("the built-in terraform rules parse")
    }
}

impl Default for TerraformRules {
    fn default() -> Self {
        TerraformRules::new(&TerraformRules::default_lists())
            .expect("the built-in terraform rules compile")
    }
}

/// What a plan does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    pub terraform_version: Option<String>,
    /// Managed resources per action (no-ops included).
    pub actions: BTreeMap<Action, u64>,
    /// Per resource type, per action (no-ops and reads left out).
    pub by_type: BTreeMap<String, BTreeMap<Action, u64>>,
    /// Stateful resources destroyed or replaced (addresses; first 200).
    pub destructive: Vec<String>,
    pub destructive_count: u64,
    /// Access-granting resources changed in any way (addresses; first 200).
    pub access: Vec<String>,
    pub access_count: u64,
}

impl PlanReport {
    /// Resources with this action.
    pub fn count(&self, action: Action) -> u64 {
        self.actions.get(&action).copied().unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct Plan {
    format_version: Option<String>,
    terraform_version: Option<String>,
    #[serde(default)]
    resource_changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    address: String,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type", default)]
    type_: String,
    change: Option<ChangeBody>,
}

#[derive(Deserialize)]
struct ChangeBody {
    #[serde(default)]
    actions: Vec<String>,
}

/// Parses a plan.
pub fn parse(reader: impl Read, rules: &TerraformRules) -> Result<PlanReport, EvidenceError> {
    let mut reader = std::io::BufReader::new(Bounded::new(reader, MAX_REPORT_BYTES));
    skip_to_json(&mut reader)?;
    // One JSON value; wrappers may print more after it.
    let mut de = serde_json::Deserializer::from_reader(reader);
    let plan = Plan::deserialize(&mut de).map_err(|e| {
        EvidenceError::malformed(FORMAT, format!("not `terraform show -json` output: {e}"))
    })?;
    if plan.format_version.is_none() {
        return Err(EvidenceError::malformed(
            FORMAT,
            "no \"format_version\": this is not `terraform show -json` output",
        ));
    }
    if plan.resource_changes.len() > MAX_ITEMS {
        return Err(EvidenceError::TooLarge {
            format: FORMAT,
            what: "the number of resource changes",
            limit: MAX_ITEMS as u64,
        });
    }
    let mut report = PlanReport {
        terraform_version: plan.terraform_version,
        ..PlanReport::default()
    };
    for change in plan.resource_changes {
        if change.mode == "data" {
            continue;
        }
        let actions = change.change.map(|c| c.actions).unwrap_or_default();
        let action = Action::from_actions(&actions).ok_or_else(|| {
            EvidenceError::malformed(
                FORMAT,
                format!("{}: unknown actions {actions:?}", change.address),
            )
        })?;
        *report.actions.entry(action).or_default() += 1;
        if matches!(action, Action::NoOp | Action::Read) {
            continue;
        }
        *report
            .by_type
            .entry(change.type_.clone())
            .or_default()
            .entry(action)
            .or_default() += 1;
        if action.destroys() && rules.stateful.is_match(&change.type_) {
            report.destructive_count += 1;
            if report.destructive.len() < MAX_LISTED {
                report.destructive.push(change.address.clone());
            }
        }
        if rules.access.is_match(&change.type_) {
            report.access_count += 1;
            if report.access.len() < MAX_LISTED {
                report.access.push(change.address);
            }
        }
    }
    Ok(report)
}

/// Skips anything before the first `{` (a wrapper's command line).
fn skip_to_json(reader: &mut impl BufRead) -> Result<(), EvidenceError> {
    let mut skipped = 0usize;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Err(EvidenceError::malformed(
                FORMAT,
                "no JSON object in the file",
            ));
        }
        if let Some(i) = buf.iter().position(|b| *b == b'{') {
            reader.consume(i);
            return Ok(());
        }
        let n = buf.len();
        skipped += n;
        reader.consume(n);
        if skipped > 64 * 1024 {
            return Err(EvidenceError::malformed(
                FORMAT,
                "no JSON object in the first 64 KiB",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_types_and_flags() {
        let plan = r#"noise from a wrapper
{"format_version":"1.2","terraform_version":"1.9.0","resource_changes":[
 {"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","change":{"actions":["delete","create"],"before":{"big":[1,2,3]}}},
 {"address":"aws_s3_bucket.logs","mode":"managed","type":"aws_s3_bucket","change":{"actions":["delete"]}},
 {"address":"aws_s3_bucket.new","mode":"managed","type":"aws_s3_bucket","change":{"actions":["create"]}},
 {"address":"aws_iam_role.ci","mode":"managed","type":"aws_iam_role","change":{"actions":["update"]}},
 {"address":"aws_instance.web","mode":"managed","type":"aws_instance","change":{"actions":["create","delete"]}},
 {"address":"aws_instance.same","mode":"managed","type":"aws_instance","change":{"actions":["no-op"]}},
 {"address":"data.aws_ami.x","mode":"data","type":"aws_ami","change":{"actions":["read"]}}
]}"#;
        let r = parse(plan.as_bytes(), &TerraformRules::default()).unwrap();
        assert_eq!(r.count(Action::Replace), 2);
        assert_eq!(r.count(Action::Delete), 1);
        assert_eq!(r.count(Action::Create), 1);
        assert_eq!(r.count(Action::Update), 1);
        assert_eq!(r.count(Action::NoOp), 1);
        assert_eq!(r.count(Action::Read), 0);
        assert_eq!(
            r.destructive,
            ["aws_db_instance.main", "aws_s3_bucket.logs"]
        );
        assert_eq!(r.access, ["aws_iam_role.ci"]);
        assert_eq!(r.by_type["aws_instance"][&Action::Replace], 1);
        assert!(!r.by_type.contains_key("aws_ami"));
        assert!(parse("{\"x\":1}".as_bytes(), &TerraformRules::default()).is_err());
        assert!(parse("no json here".as_bytes(), &TerraformRules::default()).is_err());
        let weird = r#"{"format_version":"1.0","resource_changes":[{"address":"a","mode":"managed","type":"t","change":{"actions":["explode"]}}]}"#;
        let e = parse(weird.as_bytes(), &TerraformRules::default()).unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
    }
}
