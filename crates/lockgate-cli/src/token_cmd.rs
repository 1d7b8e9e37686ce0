//! `lockgate token issue|attenuate|inspect|revoke`: agent credentials for the LLM
//! gateway (crate `lockgate-gateway`, module `credential`).
//!
//! Credentials are read from stdin or a file, never from the command line (which other
//! users can see in the process list), and only ever printed on stdout.

use anyhow::{Context, Result, bail};
use lockgate_gateway::credential::{Caveat, Credential, Scope};
use lockgate_gateway::price::{format_usd, parse_usd};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest a credential may live.
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest useful server key.
const MIN_KEY_LEN: usize = 32;

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a credential for an agent, signed with the gateway's key.
    ///
    /// The credential is printed on stdout; a summary of what it allows on stderr.
    ///
    /// Examples:
    ///   lockgate token issue --key-file gateway.key --agent claude-code --project acme/api \
    ///       --ttl 2h --model 'claude-*' --task-class tests --max-spend 5
    #[command(verbatim_doc_comment)]
    Issue {
        /// The gateway's signing key (at least 32 random bytes, e.g.
        /// `head -c 32 /dev/urandom > gateway.key`).
        #[arg(long, env = "LOCKGATE_GATEWAY_KEY_FILE")]
        key_file: PathBuf,
        /// The agent identity the credential speaks for.
        #[arg(long)]
        agent: String,
        /// The project whose budget it spends.
        #[arg(long)]
        project: String,
        #[command(flatten)]
        narrowing: Narrowing,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Narrow a credential without the key: shorter life, fewer models or task classes,
    /// a spending cap. The result can never allow more than the original.
    ///
    /// Examples:
    ///   lockgate token attenuate --model claude-3-5-haiku --ttl 30m < cred > narrowed
    #[command(verbatim_doc_comment)]
    Attenuate {
        /// Read the credential from this file instead of stdin.
        #[arg(long)]
        credential_file: Option<PathBuf>,
        #[command(flatten)]
        narrowing: Narrowing,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Show what a credential allows; with --key-file, also verify it.
    Inspect {
        #[arg(long)]
        credential_file: Option<PathBuf>,
        #[arg(long, env = "LOCKGATE_GATEWAY_KEY_FILE")]
        key_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Revoke a credential at once, with every narrowing of it, by its id.
    Revoke {
        /// The credential's id (`lockgate token inspect` shows it).
        id: String,
        /// Who revokes it (recorded in the ledger).
        #[arg(long)]
        by: String,
        /// The ledger: sqlite://PATH (default sqlite://lockgate.db) or postgres://…
        #[arg(
            long,
            env = "LOCKGATE_DATABASE_URL",
            default_value = "sqlite://lockgate.db"
        )]
        database_url: String,
    },
}

#[derive(clap::Args)]
pub struct Narrowing {
    /// How long the credential lives (e.g. 30m, 2h; at most 7 days). `issue` defaults
    /// to 1h.
    #[arg(long)]
    ttl: Option<String>,
    /// Only this model (repeat for several; `prefix*` matches a family).
    #[arg(long = "model")]
    models: Vec<String>,
    /// Only this task class (repeat for several): tests, docs, scaffold, refactor, …
    #[arg(long = "task-class")]
    task_classes: Vec<String>,
    /// Spend at most this many US dollars through this credential.
    #[arg(long)]
    max_spend: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl Narrowing {
    fn caveats(&self, now_ms: i64, default_ttl: Option<Duration>) -> Result<Vec<Caveat>> {
        let mut caveats = Vec::new();
        let ttl = match &self.ttl {
            Some(text) => Some(
                humantime::parse_duration(text)
                    .with_context(|| format!("--ttl {text:?} (write e.g. 30m or 2h)"))?,
            ),
            None => default_ttl,
        };
        if let Some(ttl) = ttl {
            if ttl.is_zero() || ttl > MAX_TTL {
                bail!("--ttl must be between 1s and 7 days");
            }
            caveats.push(Caveat::ExpiresAt {
                ms: now_ms + ttl.as_millis() as i64,
            });
        }
        if !self.models.is_empty() {
            caveats.push(Caveat::Models {
                allow: self.models.clone(),
            });
        }
        if !self.task_classes.is_empty() {
            caveats.push(Caveat::TaskClasses {
                allow: self.task_classes.clone(),
            });
        }
        if let Some(usd) = &self.max_spend {
            caveats.push(Caveat::MaxSpend {
                micros: parse_usd(usd).map_err(anyhow::Error::msg)?,
            });
        }
        Ok(caveats)
    }
}

pub fn run(command: TokenCommand) -> Result<u8> {
    let now = crate::now() * 1000;
    match command {
        TokenCommand::Issue {
            key_file,
            agent,
            project,
            narrowing,
            format,
        } => {
            let key = read_key(&key_file)?;
            let caveats = narrowing.caveats(now, Some(Duration::from_secs(3600)))?;
            let credential = Credential::issue(&key, &agent, &project, now, caveats)?;
            let scope = credential.verify(&key, now)?;
            emit(&credential, &scope, format);
            Ok(0)
        }
        TokenCommand::Attenuate {
            credential_file,
            narrowing,
            format,
        } => {
            let mut credential = read_credential(credential_file.as_deref())?;
            let caveats = narrowing.caveats(now, None)?;
            if caveats.is_empty() {
                bail!("nothing to narrow: give --ttl, --model, --task-class or --max-spend");
            }
            for caveat in caveats {
                credential = credential.attenuate(caveat)?;
            }
            let scope = lockgate_gateway::credential::unverified_scope(&credential, now)?;
            emit(&credential, &scope, format);
            Ok(0)
        }
        TokenCommand::Inspect {
            credential_file,
            key_file,
            format,
        } => {
            let credential = read_credential(credential_file.as_deref())?;
            let (scope, verified) = match key_file {
                Some(path) => (credential.verify(&read_key(&path)?, now)?, true),
                None => (
                    lockgate_gateway::credential::unverified_scope(&credential, now)?,
                    false,
                ),
            };
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&scope_json(&scope, Some(verified)))?
                ),
                Format::Text => {
                    print!("{}", describe(&scope));
                    println!(
                        "signature: {}",
                        if verified {
                            "verified with the gateway key"
                        } else {
                            "not checked (give --key-file to verify)"
                        }
                    );
                }
            }
            Ok(0)
        }
        TokenCommand::Revoke {
            id,
            by,
            database_url,
        } => {
            if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{id:?} is not a credential id (32 hex digits; see lockgate token inspect)");
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let store = lockgate_store::Store::open(&database_url).await?;
                store.revoke_credential(&id, &by).await?;
                store.close().await;
                anyhow::Ok(())
            })?;
            println!("revoked credential {id} and every narrowing of it");
            Ok(0)
        }
    }
}

/// Prints the credential on stdout (text) or as JSON with its scope; the summary goes
/// to stderr in text mode so `> file` captures only the credential.
fn emit(credential: &Credential, scope: &Scope, format: Format) {
    match format {
        Format::Text => {
            eprint!("{}", describe(scope));
            println!("{}", credential.encode());
        }
        Format::Json => {
            let mut doc = scope_json(scope, None);
            doc["credential"] = credential.encode().into();
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("plain data")
            );
        }
    }
}

fn describe(scope: &Scope) -> String {
    let list = |l: &Option<Vec<String>>| match l {
        None => "any".to_string(),
        Some(v) if v.is_empty() => "none".to_string(),
        Some(v) => v.join(", "),
    };
    let caps: Vec<String> = scope
        .spend_caps
        .iter()
        .map(|c| format_usd(c.micros))
        .collect();
    format!(
        "credential {} for agent {} in project {}\n  expires: {} ms since epoch\n  models: {}\n  task classes: {}\n  spending caps: {}\n",
        scope.id,
        scope.agent,
        scope.project,
        scope.expires_ms,
        list(&scope.models),
        list(&scope.task_classes),
        if caps.is_empty() {
            "none (the agent and project budgets apply)".to_string()
        } else {
            caps.join(", ")
        }
    )
}

fn scope_json(scope: &Scope, verified: Option<bool>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "id": scope.id,
        "agent": scope.agent,
        "project": scope.project,
        "expires_ms": scope.expires_ms,
        "models": scope.models,
        "task_classes": scope.task_classes,
        "spend_caps_micros": scope.spend_caps.iter().map(|c| c.micros).collect::<Vec<_>>(),
    });
    if let Some(v) = verified {
        doc["verified"] = v.into();
    }
    doc
}

fn read_key(path: &Path) -> Result<Vec<u8>> {
    let key = crate::sources::read_local_bytes(path, 4096)
        .with_context(|| format!("reading the gateway key {}", path.display()))?;
    if key.len() < MIN_KEY_LEN {
        bail!(
            "the gateway key {} holds {} bytes; use at least {MIN_KEY_LEN} random bytes \
             (head -c 32 /dev/urandom > {})",
            path.display(),
            key.len(),
            path.display()
        );
    }
    Ok(key)
}

fn read_credential(file: Option<&Path>) -> Result<Credential> {
    let text = match file {
        Some(path) => crate::sources::read_local(
            path,
            lockgate_gateway::credential::MAX_WIRE_LEN as u64 + 16,
        )?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .take(lockgate_gateway::credential::MAX_WIRE_LEN as u64 + 16)
                .read_to_string(&mut text)
                .context("reading the credential from stdin")?;
            text
        }
    };
    Ok(Credential::decode(&text)?)
}
