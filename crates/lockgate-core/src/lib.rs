//! Lockgate's pure assessment logic.
//!
//! Accepts the facts of a change (a [`change::ChangeSet`] read from git by
//! `lockgate-git`) and a [`config::Config`], and produces the policy input document
//! ([`input::PolicyInput`]); folds a policy outcome into a [`decision::Decision`].
//! Nothing in this crate does IO, knows about git, Rego, exit codes or output formats.
//!
//! The stages, in pipeline order:
//! - [`agents`]: who wrote each commit (agent, bot, human) and the evidence.
//! - [`secrets`]: secret detection on added lines; findings never carry the secret.
//! - [`classify`]: categories per file from path and content rules.
//! - [`codeowners`] (with [`pattern`]): GitHub CODEOWNERS resolution.
//! - [`assess`]: everything above, assembled into the policy input.
//! - [`evidence`], [`ledger`] and [`trust`]: evidence facts (parsed by
//!   `lockgate-evidence`), agents' track records, and the 0–100 trust score that
//!   routes the change.
//! - [`decision`]: policy outcome → verdict, reasons, required approvals.
//!
//! ```
//! use lockgate_core::{assess::Assessor, change::*, config::Config};
//! let mut change = ChangeSet::default();
//! change.files.push(FileChange::new("docs/intro.md", FileStatus::Modified));
//! let assessor = Assessor::new(&Config::default()).unwrap();
//! let findings = assessor.scan_secrets(&mut change);
//! let input = assessor.assess(&change, &findings, None);
//! assert_eq!(input.files[0].categories, [lockgate_core::category::Category::Docs]);
//! ```

pub mod agents;
pub mod approvals;
pub mod assess;
pub mod category;
pub mod change;
pub mod classify;
pub mod codeowners;
pub mod config;
pub mod decision;
pub mod evidence;
pub mod input;
pub mod ledger;
pub mod parallel;
pub mod pattern;
pub mod provenance;
pub mod secrets;
pub mod trust;
