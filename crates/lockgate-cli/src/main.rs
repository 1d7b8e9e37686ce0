//! The `lockgate` command.

mod attest_cmd;
mod check;
mod demo;
mod log_cmd;
mod policy_cmd;
mod provenance;
mod render;
mod replay_cmd;
mod serve_cmd;
mod server_client;
mod sources;
mod token_cmd;
mod verify_cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use render::{Format, exit};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  auto_merge      the change may merge on its own
  3  needs_approval  the change needs the listed approvals
  4  blocked         the change may not merge
  1  error           Lockgate could not decide (never 0: fail closed)
  2  usage           invalid command line";

/// Lockgate: gates for changes written by coding agents.
///
/// Reads a change from git, works out who wrote it (agent, bot or human), classifies
/// every file, finds leaked secrets, resolves CODEOWNERS and evaluates Rego policy to
/// decide: merge on its own, needs named approval, or blocked.
#[derive(Parser)]
#[command(name = "lockgate", version, propagate_version = true, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(
        long,
        global = true,
        default_value = "warn",
        env = "LOCKGATE_LOG_LEVEL"
    )]
    log_level: String,
}

#[derive(Subcommand)]
enum Command {
    /// Check a change (base..head) and print the decision.
    ///
    /// The diff is `merge-base(base, head)..head`, as a pull request shows it.
    /// Configuration (.lockgate.toml), CODEOWNERS and team policies
    /// (.lockgate/policies/*.rego) are read from the BASE revision, so a change cannot
    /// loosen its own gate; --config and --policy-dir override that for local trials.
    ///
    /// Examples:
    ///   lockgate check --base origin/main --head HEAD
    ///   lockgate check --base main --format markdown --output "$GITHUB_STEP_SUMMARY"
    ///   lockgate check --base main --format sarif --output lockgate.sarif
    ///   lockgate check --base main --junit junit.xml --coverage lcov.info --sarif semgrep.sarif
    ///
    /// The trust score (0–100, every factor shown) comes from the attested model, the
    /// provenance, and the evidence flags below; see docs/trust.md.
    #[command(after_help = EXIT_CODES, verbatim_doc_comment)]
    Check(CheckArgs),
    /// Build a throwaway repository with agent, bot and human changes and check each.
    ///
    /// Needs nothing but this binary: the repository is written with gix in a
    /// temporary directory and removed afterwards unless --keep is given.
    Demo {
        /// Keep the demo repository in this directory (must not exist yet).
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Print the full report for every scenario, not just the summary table.
        #[arg(long)]
        verbose: bool,
    },
    /// Generate a signing key pair for an agent (Ed25519 or ECDSA P-256).
    ///
    /// Writes PREFIX.key (PKCS#8 PEM, mode 0600; encrypted with --passphrase-env) and
    /// PREFIX.pub (SPKI PEM), and prints the trust-root entry to add.
    Keygen(attest_cmd::KeygenArgs),
    /// Sign an agent session: an in-toto statement (agent, model, prompt digest, base
    /// and proposed commit and tree, patch id, transcript digest and summary,
    /// dependency delta) in a DSSE envelope, as a Sigstore bundle.
    ///
    /// Stored as a git note under refs/notes/lockgate on the proposed commit and its
    /// tree (push it: git push origin 'refs/notes/lockgate'), and/or written to --out.
    ///
    /// Example:
    ///   lockgate attest --key agent.key --agent claude-code --model claude-sonnet-4-5 \
    ///       --prompt-file task.md --transcript session.jsonl --base origin/main --head HEAD
    #[command(verbatim_doc_comment)]
    Attest(Box<attest_cmd::AttestArgs>),
    /// Verify the provenance of a commit against a trust root, or (with --key) a
    /// `cosign sign-blob` signature or a DSSE envelope made by another tool.
    ///
    /// Exit code 0 when valid, 4 otherwise, 1 on error.
    ///
    /// Examples:
    ///   lockgate verify --head HEAD --trust-root .lockgate/trust.toml
    ///   lockgate verify --key cosign.pub --blob release.tar.gz --signature release.sig
    ///   lockgate verify --key signer.pub --envelope attestation.json
    #[command(verbatim_doc_comment)]
    Verify(verify_cmd::VerifyArgs),
    /// Print a JSON Schema: the policy input (lockgate.input/v1, the contract with
    /// Rego policies), the decision output (lockgate.decision/v1), or the agent-session
    /// attestation predicate.
    Schema {
        #[arg(value_enum, default_value = "input")]
        which: SchemaKind,
    },
    /// Work with Rego policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// A transparency log of attestations: append-only, tiled (C2SP tlog-tiles),
    /// with signed checkpoints and inclusion and consistency proofs anyone can check.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Read test, coverage, SARIF and Terraform reports against a change and print
    /// what they say about it, with the trust score and its factors — no policy run.
    ///
    /// The same reading `check` does with the same flags; use it to see why a change
    /// scored as it did, or to try reports before wiring them into CI.
    ///
    /// Examples:
    ///   lockgate evidence --base main --junit junit.xml --coverage coverage.xml
    ///   lockgate evidence --base main --sarif semgrep.sarif --json
    ///   lockgate evidence --base main --terraform-plan plan.json
    #[command(verbatim_doc_comment)]
    Evidence(EvidenceCmdArgs),
    /// Back-test a policy: re-check every change that landed on a branch since a date
    /// (first-parent history: merges, squashes, direct commits) with the rules it was
    /// checked against then and with a candidate, and show where verdicts would change.
    ///
    /// The candidate is the rules at the branch tip, or the files given with --config
    /// and --policy-dir — the way a team tunes its gates before turning them on.
    /// Rows marked ↓ would get through more easily, ↑ more strictly.
    ///
    /// Examples:
    ///   lockgate replay --since 30d
    ///   lockgate replay --since 2026-10-01 --policy-dir candidate/ --changed-only
    ///   lockgate replay --since 90d --config strict.toml --json > replay.json
    ///   lockgate replay --since 30d --policy-dir candidate/ --fail-if-looser
    #[command(verbatim_doc_comment)]
    Replay(replay_cmd::ReplayArgs),
    /// Run the ledger's HTTP API: decisions, approvals bound to the head, the pending
    /// queue, history. SQLite by default (no setup); --database-url postgres://… for
    /// teams and several replicas. `serve token create` makes API tokens.
    ///
    /// The server config adds the web UI's people, Slack, GitHub, escalation, the LLM
    /// gateway ([gateway], docs/gateway.md) and the merge queue ([merge]: changes land
    /// only after the gate and the tests ran on the exact commit, docs/merge-queue.md).
    ///
    /// Examples:
    ///   lockgate serve                                   # sqlite://lockgate.db, 127.0.0.1:8700
    ///   lockgate serve --config lockgate-server.toml --database-url postgres://lockgate@db/lockgate
    ///   lockgate serve token create --subject ci-main --role ci
    ///   lockgate serve token create --subject ada --role person --config lockgate-server.toml
    #[command(verbatim_doc_comment)]
    Serve(serve_cmd::ServeArgs),
    /// Agent credentials for the LLM gateway: short-lived, scoped (agent, project,
    /// models, task classes, spending cap), narrowed offline, revoked at once.
    ///
    /// Examples:
    ///   head -c 32 /dev/urandom > gateway.key
    ///   lockgate token issue --key-file gateway.key --agent claude-code --project acme/api --ttl 2h > cred
    ///   lockgate token attenuate --model 'claude-*' --max-spend 2 < cred > agent-cred
    ///   lockgate token inspect --key-file gateway.key < agent-cred
    ///   lockgate token revoke 3f2a… --by ada --database-url postgres://…
    #[command(subcommand, verbatim_doc_comment)]
    Token(token_cmd::TokenCommand),
    /// Print a built-in default rule file (agents, classify, models, terraform) as TOML.
    Defaults {
        #[arg(value_enum)]
        which: Defaults,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaKind {
    /// The policy input document.
    Input,
    /// The JSON output of `lockgate check --format json`.
    Decision,
    /// The agent-session attestation predicate (https://lockgate.dev/attestation/agent-session/v1).
    Predicate,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Defaults {
    /// Agent and bot identities.
    Agents,
    /// Path and content classification rules.
    Classify,
    /// The model registry: model id patterns → tiers (trust score).
    Models,
    /// Terraform resource types that are stateful or grant access.
    Terraform,
}

#[derive(clap::Args)]
struct EvidenceCmdArgs {
    /// Base revision (default as for `check`).
    #[arg(long)]
    base: Option<String>,
    /// Head revision.
    #[arg(long, default_value = "HEAD")]
    head: String,
    /// Repository directory.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Use this configuration file instead of .lockgate.toml at the base revision.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print JSON: {"trust": …, "evidence": …}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    evidence: EvidenceArgs,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Base revision (the target branch). Default: $GITHUB_BASE_REF or
    /// $CI_MERGE_REQUEST_TARGET_BRANCH_NAME on origin, else origin/HEAD, origin/main,
    /// origin/master, main, master — the first that exists.
    #[arg(long)]
    base: Option<String>,
    /// Head revision (the proposed change).
    #[arg(long, default_value = "HEAD")]
    head: String,
    /// Repository directory.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write the report to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Use this configuration file instead of .lockgate.toml at the base revision.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Use the *.rego files in this directory instead of .lockgate/policies at base.
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// Also write the policy input document to this file (the exact bytes policy saw:
    /// its SHA-256 is the decision's input_digest), for `lockgate policy eval`.
    #[arg(long)]
    input_out: Option<PathBuf>,
    #[command(flatten)]
    evidence: EvidenceArgs,
    #[command(flatten)]
    server: server_client::ServerArgs,
}

/// Reports about the head that feed the trust score.
#[derive(clap::Args)]
#[command(next_help_heading = "Evidence (feeds the trust score; see docs/trust.md)")]
struct EvidenceArgs {
    /// JUnit XML test results (repeat for several jobs; counts are summed).
    #[arg(long, value_name = "FILE")]
    junit: Vec<PathBuf>,
    /// Coverage of the head: lcov (.info) or Cobertura XML, detected from content.
    #[arg(long, value_name = "FILE")]
    coverage: Option<PathBuf>,
    /// Coverage of the base, for the overall coverage delta.
    #[arg(long, value_name = "FILE", requires = "coverage")]
    base_coverage: Option<PathBuf>,
    /// SARIF 2.1.0 from a static analyzer (repeat for several tools).
    #[arg(long, value_name = "FILE")]
    sarif: Vec<PathBuf>,
    /// Terraform plan as JSON (`terraform show -json plan.out`); repeat per root module.
    #[arg(long, value_name = "FILE")]
    terraform_plan: Vec<PathBuf>,
    /// Agents' earlier outcomes, JSON lines ({"agent","outcome":"merged|reverted|rejected"}),
    /// for the track-record factor. Kept by the operator, never read from the repository.
    #[arg(long, value_name = "FILE", env = "LOCKGATE_LEDGER")]
    ledger: Option<PathBuf>,
    /// Strip this prefix from absolute paths in reports (default: the checkout's path).
    #[arg(long, value_name = "DIR")]
    report_root: Option<String>,
}

impl EvidenceArgs {
    fn paths(&self) -> lockgate_evidence::facts::EvidencePaths {
        lockgate_evidence::facts::EvidencePaths {
            junit: self.junit.clone(),
            coverage: self.coverage.clone(),
            base_coverage: self.base_coverage.clone(),
            sarif: self.sarif.clone(),
            terraform: self.terraform_plan.clone(),
            root: self.report_root.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    init_tracing(&cli.log_level);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lockgate: error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Evidence(args) => run_evidence(args),
        Command::Replay(args) => replay_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Token(command) => token_cmd::run(command),
        Command::Demo { keep, verbose } => demo::run(keep, verbose),
        Command::Schema { which } => {
            print!(
                "{}",
                match which {
                    SchemaKind::Input => lockgate_core::input::input_schema_json(),
                    SchemaKind::Decision => lockgate_core::input::decision_schema_json(),
                    SchemaKind::Predicate => lockgate_attest::predicate::predicate_schema_json(),
                }
            );
            Ok(0)
        }
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::Log(cmd) => log_cmd::run(cmd),
        Command::Keygen(args) => attest_cmd::keygen(args),
        Command::Attest(args) => attest_cmd::attest(*args, now()),
        Command::Verify(args) => verify_cmd::run(args, now()),
        Command::Defaults { which } => {
            print!(
                "{}",
                match which {
                    Defaults::Agents => lockgate_core::agents::DEFAULT_IDENTITIES_TOML,
                    Defaults::Classify => lockgate_core::classify::DEFAULT_RULES_TOML,
                    Defaults::Models => lockgate_core::trust::DEFAULT_MODELS_TOML,
                    Defaults::Terraform => lockgate_evidence::terraform::DEFAULT_RULES_TOML,
                }
            );
            Ok(0)
        }
    }
}

/// The check of `base` (or the default base) ..`head` in `repo`, rules from the base
/// unless `config`/`policy_dir` override them, with the evidence flags.
fn check_request(
    repo: PathBuf,
    base: Option<String>,
    head: String,
    config: Option<PathBuf>,
    policy_dir: Option<PathBuf>,
    evidence: &EvidenceArgs,
) -> Result<check::CheckRequest> {
    let base = match base {
        Some(b) => b,
        None => default_base(&lockgate_git::Repo::discover(&repo)?)?,
    };
    Ok(check::CheckRequest {
        repo,
        base,
        head,
        config_file: config,
        policy_dir,
        rules_at: None,
        evidence: evidence.paths(),
        ledger: evidence.ledger.clone(),
    })
}

fn run_check(args: CheckArgs) -> Result<u8> {
    let request = check_request(
        args.repo,
        args.base,
        args.head,
        args.config,
        args.policy_dir,
        &args.evidence,
    )?;
    let result = check::run(&request)?;
    if let Some(path) = &args.input_out {
        // Exactly the bytes policy saw: `sha256sum` of the file is the input digest.
        std::fs::write(path, &result.input_json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut report = render::render(args.format, &result.decision, &result.provenance);
    let mut code = render::exit_code(result.decision.verdict);
    if let Some(url) = &args.server.server {
        let state = server_client::record(&args.server, url, &result.decision)?;
        let summary = server_client::summary(&state);
        if matches!(args.format, Format::Text | Format::Markdown) {
            report.push('\n');
            report.push_str(&summary);
        } else {
            eprint!("{summary}");
        }
        if state.approved && state.head_sha == result.decision.head {
            code = render::exit::AUTO_MERGE;
        }
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, report).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(report.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(code)
}

fn run_evidence(args: EvidenceCmdArgs) -> Result<u8> {
    let request = check_request(
        args.repo,
        args.base,
        args.head,
        args.config,
        None,
        &args.evidence,
    )?;
    let d = check::run(&request)?.decision;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({"trust": d.trust, "evidence": d.evidence});
        writeln!(stdout, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        stdout.write_all(render::trust::text_section(&d.trust, &d.evidence, true).as_bytes())?;
    }
    Ok(0)
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The first base candidate that resolves.
fn default_base(repo: &lockgate_git::Repo) -> Result<String> {
    let mut candidates = Vec::new();
    for var in ["GITHUB_BASE_REF", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            candidates.push(format!("origin/{v}"));
        }
    }
    candidates.extend(
        [
            "origin/HEAD",
            "origin/main",
            "origin/master",
            "main",
            "master",
        ]
        .map(String::from),
    );
    for c in &candidates {
        if repo.resolve_commit(c).is_ok() {
            return Ok(c.clone());
        }
    }
    anyhow::bail!(
        "no --base given and none of {} exists; pass --base <branch or commit>",
        candidates.join(", ")
    )
}
