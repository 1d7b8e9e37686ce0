//! Where the rules come from: `.lockgate.toml`, CODEOWNERS and `.lockgate/policies/`,
//! read from the base revision by default (a change cannot loosen its own gate), or
//! from local paths when the user says so explicitly.

use crate::check::CheckRequest;
use anyhow::{Context, Result, bail};
use lockgate_core::assess::OwnersFile;
use lockgate_core::codeowners::{self, CodeOwners};
use lockgate_core::config::Config;
use lockgate_git::Repo;
use lockgate_policy::{PolicyError, PolicySet};
use std::path::Path;

/// Configuration file name at the repository root.
pub const CONFIG_FILE: &str = ".lockgate.toml";
/// Team policy directory.
pub const POLICY_DIR: &str = ".lockgate/policies";

const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
const MAX_CODEOWNERS_BYTES: u64 = 3 * 1024 * 1024;
const MAX_POLICY_BYTES: u64 = 1024 * 1024;
const MAX_POLICY_FILES: usize = 200;

/// Everything the assessment and policy stages need besides the change.
pub struct Sources {
    pub config: Config,
    pub codeowners: Option<OwnersFile>,
    /// A policy that fails to load is not a tool error: it blocks the change.
    pub policies: Result<PolicySet, PolicyError>,
    /// Human-readable notes on where each source was read from.
    pub provenance: Vec<String>,
}

pub fn load(repo: &Repo, base: &str, request: &CheckRequest) -> Result<Sources> {
    // Rules come from the base unless the caller names another revision (replay).
    let (rules_rev, at) = match &request.rules_at {
        Some(rev) => (repo.resolve_commit(rev)?.to_string(), "revision"),
        None => (base.to_string(), "base"),
    };
    let base = rules_rev.as_str();
    let short = format!("{at} {}", lockgate_core::agents::short_sha(base));
    let mut provenance = Vec::new();

    let (config_text, config_name, config_where) = match &request.config_file {
        Some(path) => {
            provenance.push(format!(
                "config: {} (local file, not the base revision)",
                path.display()
            ));
            (
                Some(read_local(path, MAX_CONFIG_BYTES)?),
                path.display().to_string(),
                String::new(),
            )
        }
        None => {
            let text = repo
                .read_file_at(base, CONFIG_FILE, MAX_CONFIG_BYTES)?
                .map(|bytes| utf8(bytes, CONFIG_FILE))
                .transpose()?;
            provenance.push(match text {
                Some(_) => format!("config: {CONFIG_FILE} at {short}"),
                None => format!("config: built-in defaults (no {CONFIG_FILE} at {short})"),
            });
            (text, CONFIG_FILE.to_string(), format!(" (at {short})"))
        }
    };
    let config = match config_text {
        Some(text) => Config::from_toml(&text).map_err(|e| match (e.line, e.column) {
            (Some(l), Some(c)) => {
                anyhow::anyhow!(
                    "invalid config {config_name}:{l}:{c}{config_where}: {}",
                    e.message
                )
            }
            _ => anyhow::anyhow!("invalid config {config_name}{config_where}: {}", e.message),
        })?,
        None => Config::default(),
    };

    let mut codeowners = None;
    for location in codeowners::LOCATIONS {
        if let Some(bytes) = repo.read_file_at(base, location, MAX_CODEOWNERS_BYTES)? {
            let text = utf8(bytes, location)?;
            provenance.push(format!("owners: {location} at {short}"));
            codeowners = Some(OwnersFile {
                path: location.to_string(),
                owners: CodeOwners::parse(&text),
            });
            break;
        }
    }
    if codeowners.is_none() {
        provenance.push(format!("owners: no CODEOWNERS at {short}"));
    }

    let policy_files = match &request.policy_dir {
        Some(dir) => {
            provenance.push(format!("policies: {} (local directory)", dir.display()));
            local_policies(dir)?
        }
        None => {
            let mut files = Vec::new();
            for name in repo.list_files_at(base, POLICY_DIR)? {
                if !name.ends_with(".rego") {
                    continue;
                }
                let path = format!("{POLICY_DIR}/{name}");
                if let Some(bytes) = repo.read_file_at(base, &path, MAX_POLICY_BYTES)? {
                    files.push((path.clone(), utf8(bytes, &path)?));
                }
            }
            provenance.push(format!(
                "policies: built-in pack + {} file(s) from {POLICY_DIR} at {short}",
                files.len()
            ));
            files
        }
    };
    if policy_files.len() > MAX_POLICY_FILES {
        bail!("more than {MAX_POLICY_FILES} policy files");
    }
    let policies = build_policies(&policy_files);

    Ok(Sources {
        config,
        codeowners,
        policies,
        provenance,
    })
}

/// The built-in pack plus `files` (name, source).
pub fn build_policies(files: &[(String, String)]) -> Result<PolicySet, PolicyError> {
    let mut set = PolicySet::builtin()?;
    for (name, source) in files {
        set.add_file(name, source)?;
    }
    Ok(set)
}

/// `*.rego` files directly in `dir`, sorted by name.
pub fn local_policies(dir: &Path) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading policy directory {}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rego"))
        .collect();
    paths.sort();
    if paths.len() > MAX_POLICY_FILES {
        bail!(
            "more than {MAX_POLICY_FILES} policy files in {}",
            dir.display()
        );
    }
    paths
        .into_iter()
        .map(|p| Ok((p.display().to_string(), read_local(&p, MAX_POLICY_BYTES)?)))
        .collect()
}

/// Reads a local text file, bounded.
pub fn read_local(path: &Path, max: u64) -> Result<String> {
    utf8(read_local_bytes(path, max)?, &path.display().to_string())
}

/// Reads a local file, bounded.
pub fn read_local_bytes(path: &Path, max: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > max {
        bail!(
            "{} is {} bytes, more than the {max}-byte limit",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn utf8(bytes: Vec<u8>, name: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}
