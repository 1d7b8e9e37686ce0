//! The LLM gateway's overhead and budget safety, side by side in one run, against one
//! fake provider (its own process, `fake_upstream`):
//!
//! 1. **Added latency.** The same chat completion at a fixed rate (1,000 and 5,000
//!    requests/s, open loop, from this process over loopback): straight to the fake
//!    provider, through `lockgate serve`'s gateway (credential, revocation and freeze
//!    check, worst-case reservation and settlement in the SQLite ledger), and through
//!    LiteLLM's proxy (installed from PyPI into a virtualenv by this benchmark, with a
//!    provider budget — its budget feature that needs no database). Added latency = a
//!    proxy's quantile minus the direct quantile at the same rate. Targets: Lockgate's
//!    added p99 under 1 ms at 1,000 requests/s, and at least 10× lower than LiteLLM's.
//! 2. **Overspend race.** 300 requests at once against a budget with room for far fewer
//!    (each call costs 200 µ$; the budget is $0.01): what reached the provider, priced,
//!    against the limit — for Lockgate (an agent budget) and for LiteLLM (the same
//!    provider budget). Target: zero overspend for Lockgate; LiteLLM's is reported.
//!
//! LiteLLM is optional: without Python's venv (or PyPI) the LiteLLM columns say why.

use crate::loadgen::{Load, Process, Request, load, start_printing_url};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one call costs at the benchmark's prices: 100 input tokens at 1 µ$ and 50
/// output tokens at 2 µ$.
const CALL_MICROS: i64 = 200;
/// The race's budget, micro-dollars ($0.01: room for 50 calls at their real cost).
const RACE_BUDGET_MICROS: i64 = 10_000;
/// Requests fired at once in the race.
const RACE_REQUESTS: usize = 300;
/// The LiteLLM release the benchmark installs.
const LITELLM: &str = "litellm[proxy]==1.108.7";
/// The request every measured call makes.
/// (Its bytes bound its input tokens from above — 100 as the fake provider reports them —
/// as they do for real providers, so the worst-case reservation covers the real cost.)
const REQUEST: &str = r#"{"model":"cheap-1","max_tokens":50,"messages":[{"role":"user","content":"Answer with the single word ok, and nothing else: this call is part of a benchmark."}]}"#;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// A chat completion to `url` with `key` as the bearer; true on a 200 answer read whole.
fn completion(url: Arc<String>, key: Arc<String>) -> Request {
    Arc::new(move |agent, _| {
        agent
            .post(url.as_str())
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(REQUEST.as_bytes())
            .map(|mut r| r.status().as_u16() == 200 && r.body_mut().read_to_vec().is_ok())
            .unwrap_or(false)
    })
}

/// Calls the fake provider has answered so far.
fn upstream_calls(fake: &Process) -> i64 {
    agent()
        .get(&format!("{}/count", fake.url))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|t| t.trim().parse().ok())
        .expect("the fake provider's count")
}

/// `lockgate serve` with the gateway in front of the fake provider; the credential.
fn start_lockgate(
    lockgate: &Path,
    dir: &Path,
    fake: &Process,
    agent_daily: &str,
) -> (Process, String) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("gateway.key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        format!(
            r#"[log]
dir = "{log}"

[gateway]
key_file = "{key}"

[gateway.budget]
agent_daily = "{agent_daily}"
agent_monthly = "1000000"
project_daily = "1000000"
project_monthly = "1000000"

[gateway.anomaly]
enabled = false

[[gateway.upstream]]
name = "fake"
api = "openai"
base_url = "{upstream}"
models = ["cheap-1"]

[[gateway.price]]
model = "cheap-1"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 1000
"#,
            log = dir.join("log").display(),
            key = key.display(),
            upstream = fake.url,
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("ledger.db").display());
    let server = start_printing_url(
        Command::new(lockgate)
            .current_dir(dir)
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--database-url", &db, "--listen", "127.0.0.1:0"])
            .env("LOCKGATE_LOG_LEVEL", "error"),
    );
    let out = Command::new(lockgate)
        .current_dir(dir)
        .args(["token", "issue", "--key-file", key.to_str().unwrap()])
        .args(["--agent", "bench-agent", "--project", "bench/project"])
        .args(["--ttl", "2h", "--model", "cheap-1"])
        .output()
        .expect("lockgate token issue");
    let credential = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(credential.starts_with("lgc_"), "a credential");
    (server, credential)
}

/// The virtualenv with LiteLLM, made (and LiteLLM installed from PyPI) if missing.
fn litellm_venv(dir: &Path) -> Result<PathBuf, String> {
    let bin = dir.join("bin").join("litellm");
    if bin.exists() {
        return Ok(bin);
    }
    println!("  installing {LITELLM} into {} (once)…", dir.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.success() {
        return Err("python3 -m venv failed".into());
    }
    let pip = Command::new(dir.join("bin").join("pip"))
        .args(["install", "-q", LITELLM])
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.success() || !bin.exists() {
        return Err(format!("pip install {LITELLM} failed"));
    }
    Ok(bin)
}

/// LiteLLM's proxy in front of the fake provider, with a provider budget of `budget`
/// dollars a day and the benchmark's prices.
fn start_litellm(bin: &Path, dir: &Path, fake: &Process, budget: &str) -> Result<Process, String> {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            r#"model_list:
  - model_name: cheap-1
    litellm_params:
      model: openai/cheap-1
      api_base: {upstream}/v1
      api_key: sk-fake
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
router_settings:
  provider_budget_config:
    openai:
      budget_limit: {budget}
      time_period: 1d
general_settings:
  master_key: sk-bench-master
"#,
            upstream = fake.url
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(bin)
        .current_dir(dir)
        .args(["--config", config.to_str().unwrap()])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start litellm: {e}"))?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("litellm exited: {status}"));
        }
        let ready = agent()
            .get(&format!("{url}/health/liveliness"))
            .call()
            .is_ok_and(|r| r.status().as_u16() == 200);
        if ready {
            return Ok(Process { child, url });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    Err("litellm did not become ready within 120 s".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, l: &Load) {
    println!(
        "  {label:<22} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.2} ms  ({} requests, {:.0}/s, {} errors)",
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        l.sent,
        l.achieved,
        l.errors,
    );
}

/// A proxy's added latency over the direct call: (p50, p99), never below zero.
fn added(proxy: &Load, direct: &Load) -> (Duration, Duration) {
    (
        proxy.p50.saturating_sub(direct.p50),
        proxy.p99.saturating_sub(direct.p99),
    )
}

/// Fires `RACE_REQUESTS` requests at once; how many answered 200.
fn race(url: &str, key: &str) -> usize {
    let barrier = Arc::new(std::sync::Barrier::new(RACE_REQUESTS));
    let request = completion(Arc::new(url.to_string()), Arc::new(key.to_string()));
    let handles: Vec<_> = (0..RACE_REQUESTS)
        .map(|i| {
            let (barrier, request) = (barrier.clone(), request.clone());
            std::thread::spawn(move || {
                let agent = agent();
                barrier.wait();
                request(&agent, i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count()
}

fn report_race(name: &str, granted: usize, reached: i64) {
    let spent = reached * CALL_MICROS;
    let over = (spent - RACE_BUDGET_MICROS).max(0);
    println!(
        "  {name:<10} {granted:>3} of {RACE_REQUESTS} answered, {reached:>3} reached the provider: spent {spent} µ$ of {RACE_BUDGET_MICROS} µ$ → overspend {over} µ$ ({:.0}%)",
        over as f64 * 100.0 / RACE_BUDGET_MICROS as f64
    );
}

pub fn run(lockgate: &Path, root: &Path, seconds: u64, rates: &[u64], venv: &Path) {
    let bench = std::env::current_exe().expect("this benchmark");
    let fake = start_printing_url(Command::new(&bench).arg("--fake-upstream"));
    println!(
        "LLM gateway: added latency over a direct call to a fake provider, {seconds} s per rate, open loop, loopback, 2 cores"
    );
    let (lockgate_server, credential) =
        start_lockgate(lockgate, &root.join("lockgate"), &fake, "1000000");
    let litellm_bin = litellm_venv(venv);
    let litellm = litellm_bin
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|bin| start_litellm(bin, &root.join("litellm"), &fake, "1000000"));
    if let Err(e) = &litellm {
        println!("  LiteLLM not measured: {e}");
    }
    let direct_url = Arc::new(format!("{}/v1/chat/completions", fake.url));
    let lockgate_url = Arc::new(format!("{}/v1/chat/completions", lockgate_server.url));
    for &rate in rates {
        println!("{rate} requests/s:");
        // Warm connections and caches, then measure.
        let key = Arc::new(credential.clone());
        let _ = load(
            rate.min(500),
            1,
            completion(lockgate_url.clone(), key.clone()),
        );
        let direct = load(
            rate,
            seconds,
            completion(direct_url.clone(), Arc::new("sk-fake".into())),
        );
        report("direct", &direct);
        let through = load(rate, seconds, completion(lockgate_url.clone(), key));
        report("through Lockgate", &through);
        let (l50, l99) = added(&through, &direct);
        let mut line = format!(
            "  Lockgate adds p50 {:.3} ms, p99 {:.3} ms",
            ms(l50),
            ms(l99)
        );
        if let Ok(litellm) = &litellm {
            let url = Arc::new(format!("{}/v1/chat/completions", litellm.url));
            let master = Arc::new("sk-bench-master".to_string());
            let _ = load(rate.min(200), 1, completion(url.clone(), master.clone()));
            let via = load(rate, seconds, completion(url, master));
            report("through LiteLLM", &via);
            let (m50, m99) = added(&via, &direct);
            line.push_str(&format!(
                "; LiteLLM adds p50 {:.3} ms, p99 {:.3} ms → LiteLLM / Lockgate: p50 {:.1}×, p99 {:.1}×",
                ms(m50),
                ms(m99),
                m50.as_secs_f64() / l50.as_secs_f64().max(1e-6),
                m99.as_secs_f64() / l99.as_secs_f64().max(1e-6),
            ));
        }
        println!("{line}");
        if rate == 1000 {
            println!(
                "  target: Lockgate's added p99 < 1 ms at 1,000 requests/s → {}",
                if l99 < Duration::from_millis(1) && through.errors == 0 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    drop(lockgate_server);
    drop(litellm);

    println!(
        "overspend race: {RACE_REQUESTS} requests at once, budget {RACE_BUDGET_MICROS} µ$, each call {CALL_MICROS} µ$"
    );
    let before = upstream_calls(&fake);
    let (server, credential) = start_lockgate(lockgate, &root.join("lockgate-race"), &fake, "0.01");
    let granted = race(&format!("{}/v1/chat/completions", server.url), &credential);
    drop(server);
    let reached = upstream_calls(&fake) - before;
    report_race("Lockgate", granted, reached);
    println!(
        "  target: zero overspend → {}",
        if reached * CALL_MICROS <= RACE_BUDGET_MICROS {
            "met"
        } else {
            "NOT met"
        }
    );
    if let Ok(bin) = &litellm_bin {
        match start_litellm(bin, &root.join("litellm-race"), &fake, "0.01") {
            Ok(proxy) => {
                let before = upstream_calls(&fake);
                let granted = race(
                    &format!("{}/v1/chat/completions", proxy.url),
                    "sk-bench-master",
                );
                drop(proxy);
                report_race("LiteLLM", granted, upstream_calls(&fake) - before);
            }
            Err(e) => println!("  LiteLLM not measured: {e}"),
        }
    }
    println!();
}
