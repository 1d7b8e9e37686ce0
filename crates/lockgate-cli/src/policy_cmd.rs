//! `lockgate policy test | eval | builtin`.

use crate::sources;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run the test_* rules in policy files, like `opa test`. Fails when a test
    /// fails or when no test ran.
    Test {
        /// Directory of *.rego files (policies and their tests).
        #[arg(default_value = sources::POLICY_DIR)]
        dir: PathBuf,
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate policies against an input document, for debugging.
    ///
    /// Get an input with `lockgate check --input-out input.json`. Without --query,
    /// prints the outcome Lockgate would use (deny, require_approval, warn, notes,
    /// allow_auto_merge, route).
    Eval {
        /// The input document (JSON).
        #[arg(long)]
        input: PathBuf,
        /// Directory of team *.rego files to load besides the built-in pack.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A Rego query, e.g. `data.lockgate.builtin.route`.
        #[arg(long)]
        query: Option<String>,
    },
    /// Print the built-in policy pack.
    Builtin,
}

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(cmd: PolicyCommand) -> Result<u8> {
    match cmd {
        PolicyCommand::Test { dir, json } => {
            let files = sources::local_policies(&dir)?;
            let set = sources::build_policies(&files)?;
            let report = set.run_tests(TIMEOUT);
            if json {
                println!("{}", serde_json::to_string_pretty(&report.results)?);
            } else {
                for r in &report.results {
                    match &r.error {
                        None => println!("PASS  {}.{} ({})", r.package, r.name, r.file),
                        Some(e) => println!("FAIL  {}.{} ({}): {e}", r.package, r.name, r.file),
                    }
                }
                println!(
                    "{} passed, {} failed, {} file(s)",
                    report.passed(),
                    report.failed(),
                    files.len()
                );
            }
            if report.results.is_empty() {
                bail!(
                    "no test_* rules found in {}: nothing was tested",
                    dir.display()
                );
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
        PolicyCommand::Eval { input, dir, query } => {
            let text = sources::read_local(&input, 64 * 1024 * 1024)?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", input.display()))?;
            let files = match dir {
                Some(d) => sources::local_policies(&d)?,
                None => Vec::new(),
            };
            let set = sources::build_policies(&files)?;
            let out = match query {
                Some(q) => serde_json::to_value(set.query(&text, &q, TIMEOUT)?)?,
                None => serde_json::to_value(set.evaluate(&text, TIMEOUT)?)?,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        PolicyCommand::Builtin => {
            print!("{}", lockgate_policy::BUILTIN_REGO);
            Ok(0)
        }
    }
}
