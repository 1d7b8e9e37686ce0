//! `lockgate-bench`: measures `lockgate check` as a whole process against git on the
//! same range, in the same run, and prints medians and ratios.
//!
//! Usage: `cargo build --release && target/release/lockgate-bench [--runs N] [--large-files N]`
//!
//! Scenarios (repositories are built with the git CLI in a temporary directory):
//! 1. a typical pull request: 50 files changed by an agent in a 2,000-file repository
//!    with CODEOWNERS — target: median under 50 ms for the whole process;
//! 2. a 5,000-file change — target: within 3× of `git diff --numstat base head`,
//!    with bounded memory (peak RSS reported).
//!
//! Other groups (`--only attest|log|evidence|serve|gateway|queue`) live in their own modules.
//!
//! Timings are wall-clock medians of repeated runs; machines are noisy, so the ratio
//! measured side by side is the number to compare, not an absolute time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    runs: usize,
    large_files: usize,
    keep: Option<PathBuf>,
    /// Run only this group: check, attest or log.
    only: Option<String>,
    log_seconds: u64,
    serve_seconds: u64,
    serve_rate: u64,
    gateway_seconds: u64,
    gateway_rates: Vec<u64>,
    litellm_venv: Option<PathBuf>,
    queue_entries: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 21,
        large_files: 5000,
        keep: None,
        only: None,
        log_seconds: 6,
        serve_seconds: 10,
        serve_rate: 1000,
        gateway_seconds: 5,
        gateway_rates: vec![100, 1000, 5000],
        litellm_venv: None,
        queue_entries: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--large-files" => {
                args.large_files = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--large-files N")
            }
            "--keep" => args.keep = Some(it.next().expect("--keep DIR").into()),
            "--only" => {
                args.only = Some(
                    it.next()
                        .expect("--only check|attest|log|evidence|serve|gateway|queue"),
                )
            }
            "--log-seconds" => {
                args.log_seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--log-seconds N")
            }
            "--serve-seconds" => {
                args.serve_seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--serve-seconds N")
            }
            "--serve-rate" => {
                args.serve_rate = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--serve-rate N")
            }
            "--gateway-seconds" => {
                args.gateway_seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--gateway-seconds N")
            }
            "--gateway-rates" => {
                args.gateway_rates = it
                    .next()
                    .and_then(|v| v.split(',').map(|r| r.parse().ok()).collect())
                    .expect("--gateway-rates N,N")
            }
            "--queue-entries" => {
                args.queue_entries = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--queue-entries N")
            }
            "--litellm-venv" => {
                args.litellm_venv = Some(it.next().expect("--litellm-venv DIR").into())
            }
            "-h" | "--help" => {
                println!(
                    "usage: lockgate-bench [--runs N] [--large-files N] [--keep DIR] \
                     [--only check|attest|log|evidence|serve|gateway|queue] [--queue-entries N] [--log-seconds N] [--serve-seconds N] [--serve-rate N] \
                     [--gateway-seconds N] [--gateway-rates N,N] [--litellm-venv DIR]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--fake-upstream") {
        fake_upstream::serve_forever();
        return;
    }
    let args = parse_args();
    let lockgate = lockgate_binary();
    println!("lockgate binary: {}", lockgate.display());
    println!(
        "git: {}",
        run_stdout(Command::new("git").arg("--version")).trim()
    );
    println!();

    let temp = tempfile::tempdir().expect("tempdir");
    let root = args
        .keep
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let wants = |group: &str| args.only.as_deref().is_none_or(|o| o == group);
    if wants("check") {
        check_scenarios(&args, &lockgate, &root);
    }
    if wants("attest") {
        attest_bench::signatures();
        attest_bench::attest_process(&lockgate, &root.join("attest"), args.runs);
    }
    if wants("log") {
        log_bench::run(&root, args.log_seconds);
    }
    if wants("serve") {
        serve_bench::run(
            &lockgate,
            &root.join("serve"),
            args.serve_seconds,
            args.serve_rate,
        );
    }
    if wants("gateway") {
        // LiteLLM is installed once, beside the build (target/bench-litellm).
        let venv = args.litellm_venv.clone().unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("bench-litellm")
        });
        gateway_bench::run(
            &lockgate,
            &root.join("gateway"),
            args.gateway_seconds,
            &args.gateway_rates,
            &venv,
        );
    }
    if wants("queue") {
        queue_bench::run(&lockgate, &root.join("queue"), args.queue_entries);
    }
    if wants("evidence") {
        evidence_bench::run(&lockgate, &root.join("evidence"), args.runs);
    }
}

/// `lockgate check` on a typical pull request and on a very large change.
fn check_scenarios(args: &Args, lockgate: &Path, root: &Path) {
    // ── 1. typical PR ────────────────────────────────────────────────────────
    let repo = root.join("typical");
    build_repo(&repo, 2000, 50, 40, 10);
    let check = |repo: &Path| {
        let mut c = Command::new(lockgate);
        c.current_dir(repo).args([
            "check", "--base", "main", "--head", "pr", "--format", "json",
        ]);
        c
    };
    let git_numstat = |repo: &Path| {
        let mut c = Command::new("git");
        c.current_dir(repo)
            .args(["diff", "--numstat", "main", "pr"]);
        c
    };
    let typical = measure(|| check(&repo), args.runs);
    let typical_git = measure(|| git_numstat(&repo), args.runs);
    println!(
        "typical PR: 50 files changed in a 2,000-file repository, {} runs",
        args.runs
    );
    report("lockgate check (whole process)", &typical);
    report("git diff --numstat", &typical_git);
    println!(
        "  target: median < 50 ms → {} ({:.1} ms); ratio to git diff --numstat: {:.2}×",
        if typical.median < Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        },
        ms(typical.median),
        ratio(&typical, &typical_git)
    );
    println!();

    // ── 2. large change ──────────────────────────────────────────────────────
    let large = root.join("large");
    build_repo(&large, args.large_files, args.large_files, 40, 3);
    let runs = (args.runs / 2).max(9);
    let big = measure(|| check(&large), runs);
    let big_git = measure(|| git_numstat(&large), runs);
    println!(
        "large change: {} files modified, {runs} runs",
        args.large_files
    );
    report("lockgate check (whole process)", &big);
    report("git diff --numstat", &big_git);
    let r = ratio(&big, &big_git);
    println!(
        "  target: within 3× of git diff --numstat → {} ({r:.2}×); lockgate peak RSS {:.1} MiB (git {:.1} MiB)",
        if r <= 3.0 { "met" } else { "NOT met" },
        big.peak_rss_kib as f64 / 1024.0,
        big_git.peak_rss_kib as f64 / 1024.0
    );
    println!();
}

mod attest_bench;
mod evidence_bench;
mod fake_upstream;
mod gateway_bench;
mod loadgen;
mod log_bench;
mod queue_bench;
mod serve_bench;

struct Measurement {
    median: Duration,
    min: Duration,
    p90: Duration,
    peak_rss_kib: i64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: &Measurement, b: &Measurement) -> f64 {
    a.median.as_secs_f64() / b.median.as_secs_f64()
}

fn report(label: &str, m: &Measurement) {
    println!(
        "  {label:<32} median {:>8.2} ms   min {:>8.2} ms   p90 {:>8.2} ms   peak RSS {:>7.1} MiB",
        ms(m.median),
        ms(m.min),
        ms(m.p90),
        m.peak_rss_kib as f64 / 1024.0
    );
}

/// Runs the command `runs` times (after one warm-up) and records wall time and the
/// child's own peak RSS (from `wait4`, so other processes do not pollute it).
#[allow(clippy::zombie_processes)] // each child is reaped by `wait4`, which also yields its rusage
fn measure(make: impl Fn() -> Command, runs: usize) -> Measurement {
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    for i in 0..=runs {
        let mut cmd = make();
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let start = Instant::now();
        let child = cmd.spawn().expect("spawn");
        let (status, rss) = wait_with_rusage(child.id() as i32);
        let elapsed = start.elapsed();
        assert!(
            [0, 3, 4].contains(&status),
            "benchmark command failed with status {status}"
        );
        if i > 0 {
            times.push(elapsed);
            peak = peak.max(rss);
        }
    }
    times.sort();
    Measurement {
        median: times[times.len() / 2],
        min: times[0],
        p90: times[(times.len() * 9 / 10).min(times.len() - 1)],
        peak_rss_kib: peak,
    }
}

fn wait_with_rusage(pid: i32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: `rusage` is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}

/// The path of file `i` in a benchmark repository.
fn bench_file_name(i: usize) -> String {
    let dirs = [
        "src/api", "src/core", "src/auth", "tests", "docs", "web/src", "infra", "scripts",
    ];
    let d = dirs[i % dirs.len()];
    let ext = match d {
        "docs" => "md",
        "web/src" => "ts",
        "infra" => "tf",
        "scripts" => "sh",
        _ => "rs",
    };
    format!("{d}/m{:02}/file_{i:05}.{ext}", i % 37)
}

/// Builds a repository with `files` files of `lines` lines on `main`, and a branch
/// `pr` whose last commit (by Claude Code) changes `changed` of them by `edit` lines.
fn build_repo(path: &Path, files: usize, changed: usize, lines: usize, edit: usize) {
    std::fs::create_dir_all(path).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(path)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    let name = bench_file_name;
    for i in 0..files {
        let p = path.join(name(i));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body: String = (0..lines)
            .map(|l| format!("line {l} of file {i}: let value_{l} = compute({l}, {i});\n"))
            .collect();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(path.join(".github")).unwrap();
    std::fs::write(
        path.join(".github/CODEOWNERS"),
        "* @org/maintainers\n/src/auth/ @org/security\n/docs/ @org/docs\n/infra/ @org/platform\n*.ts @org/web\n",
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    git(&["checkout", "-q", "-b", "pr"]);
    let step = (files / changed.max(1)).max(1);
    for i in (0..files).step_by(step).take(changed) {
        let p = path.join(name(i));
        let mut body = std::fs::read_to_string(&p).unwrap();
        for e in 0..edit {
            body.push_str(&format!("// edit {e}: handle case {e} for file {i}\n"));
        }
        body = body.replacen("line 3 ", "line three ", 1);
        std::fs::write(p, body).unwrap();
    }
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=anthropic-code-agent[bot]",
        "-c",
        "user.email=242468646+Claude@users.noreply.github.com",
        "commit",
        "-q",
        "--author",
        "anthropic-code-agent[bot] <242468646+Claude@users.noreply.github.com>",
        "-m",
        "agent change",
    ]);
}

fn lockgate_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let sibling = exe.with_file_name("lockgate");
    if !sibling.exists() {
        eprintln!(
            "{} not found: build both binaries first, e.g. `cargo build --release && target/release/lockgate-bench`",
            sibling.display()
        );
        std::process::exit(1);
    }
    sibling
}

fn run_stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&cmd.output().expect("run").stdout).into_owned()
}
