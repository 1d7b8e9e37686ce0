//! `lockgate serve`: the ledger's HTTP API (crate `lockgate-server`), and
//! `lockgate serve token create|revoke` to manage its API tokens.

use anyhow::{Context, Result};
use lockgate_server::config::ServerConfig;
use lockgate_server::queue::Gate;
use lockgate_store::{Role, Store};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    #[command(flatten)]
    common: Common,
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long)]
    listen: Option<String>,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Server configuration (listen address, database, people directory).
    #[arg(long, env = "LOCKGATE_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// The ledger: sqlite://PATH (default sqlite://lockgate.db) or postgres://…
    #[arg(long, env = "LOCKGATE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(clap::Subcommand)]
enum ServeCommand {
    /// Manage API tokens (stored hashed; the token is printed once).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Make a token for a person (role person or admin) or a CI job (role ci).
    Create {
        /// The person's id in the people directory, or the CI job's name.
        #[arg(long)]
        subject: String,
        #[arg(long, value_parser = ["person", "admin", "ci"])]
        role: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a token at once, by its id (the part after `lgt_`, before the next `_`).
    Revoke {
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

fn load_config(common: &Common) -> Result<(ServerConfig, lockgate_core::agents::Registry)> {
    let registry = lockgate_core::agents::Registry::new(&Default::default())
        .context("compiling the built-in agent identities")?;
    let mut config = match &common.config {
        Some(path) => {
            let text = crate::sources::read_local(path, 1 << 20)?;
            ServerConfig::from_toml(&text, &registry)
                .with_context(|| format!("reading {}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(url) = &common.database_url {
        config.database_url = url.clone();
    }
    Ok((config, registry))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(args: ServeArgs) -> Result<u8> {
    match args.command {
        Some(ServeCommand::Token(TokenCommand::Create {
            subject,
            role,
            common,
        })) => {
            let (config, _) = load_config(&common)?;
            let role = Role::parse(&role).expect("clap checked the role");
            if role != Role::Ci && config.person(&subject).is_none() && common.config.is_some() {
                anyhow::bail!("{subject:?} is not in the people directory of the server config");
            }
            runtime()?.block_on(async {
                let store = Store::open(&config.database_url).await?;
                let (token, record) = store.create_token(&subject, role).await?;
                store.close().await;
                eprintln!(
                    "token {} for {} ({}); shown once — store it as a secret:",
                    record.id,
                    record.subject,
                    record.role.as_str()
                );
                println!("{token}");
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        Some(ServeCommand::Token(TokenCommand::Revoke { id, common })) => {
            let (config, _) = load_config(&common)?;
            runtime()?.block_on(async {
                let store = Store::open(&config.database_url).await?;
                let record = store.revoke_token(&id).await?;
                store.close().await;
                println!("revoked token {} of {}", record.id, record.subject);
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        None => {
            let (mut config, registry) = load_config(&args.common)?;
            config.load_integrations()?;
            if let Some(listen) = args.listen {
                config.listen = listen;
            }
            let gate: std::sync::Arc<dyn Gate> = std::sync::Arc::new(CheckGate);
            runtime()?.block_on(lockgate_server::serve(
                config,
                registry,
                Some(gate),
                shutdown(),
            ))?;
            Ok(0)
        }
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

/// The merge queue's gate: the whole `lockgate check` pipeline on the queue's result,
/// with the rules, CODEOWNERS, policies and trust root read at the target's tip.
struct CheckGate;

impl Gate for CheckGate {
    fn check(
        &self,
        repo: &std::path::Path,
        base: &str,
        head: &str,
    ) -> Result<lockgate_core::decision::Decision, String> {
        let request = crate::check::CheckRequest {
            repo: repo.to_path_buf(),
            base: base.to_string(),
            head: head.to_string(),
            config_file: None,
            policy_dir: None,
            rules_at: None,
            evidence: Default::default(),
            ledger: None,
        };
        crate::check::run(&request)
            .map(|r| r.decision)
            .map_err(|e| format!("{e:#}"))
    }
}
