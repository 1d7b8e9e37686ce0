//! `lockgate serve` under load from this process, over loopback: the record-decision
//! and read-approvals endpoints at a fixed request rate (open loop: latency is measured
//! from each request's scheduled start, so a slow server cannot hide queueing), on
//! SQLite and — when `LOCKGATE_TEST_DATABASE_URL` names a server — PostgreSQL.
//! Target: p99 under 10 ms at 1,000 requests/s.
//!
//! On PostgreSQL the same run also measures the floor under the server: PostgreSQL's
//! own durable one-row INSERT (autocommit, the decision's document as the row) at the
//! same rate from the same clients, each with its own connection — what any server
//! that commits each decision before answering pays at least.

use super::build_repo;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::loadgen::{Load, Process, Request, WORKERS, load, start_printing_url};

fn lockgate_out(lockgate: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(lockgate)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run lockgate");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start(lockgate: &Path, dir: &Path, config: &Path, db: &str) -> Process {
    start_printing_url(
        Command::new(lockgate)
            .current_dir(dir)
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--database-url", db, "--listen", "127.0.0.1:0"])
            .env("LOCKGATE_LOG_LEVEL", "error"),
    )
}

fn report(label: &str, l: &Load) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {label:<34} p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  max {:>7.2} ms  ({} requests, {:.0}/s, {} errors) → target p99 < 10 ms {}",
        ms(l.p50),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        l.sent,
        l.achieved,
        l.errors,
        if l.p99 < Duration::from_millis(10) && l.errors == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// One durable INSERT per request into a table of its own, on a connection per client
/// thread (opened before the load starts, so setup is not timed).
fn postgres_insert(url: &str, document: Arc<String>) -> Request {
    use sqlx::Connection;
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let connect = || {
        runtime
            .block_on(sqlx::PgConnection::connect(url))
            .expect("connect to PostgreSQL")
    };
    runtime
        .block_on(
            sqlx::query("CREATE TABLE floor_rows (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
                .execute(&mut connect()),
        )
        .expect("floor table");
    let connections: Arc<Vec<_>> = Arc::new(
        (0..WORKERS)
            .map(|_| std::sync::Mutex::new(connect()))
            .collect(),
    );
    Arc::new(move |_, i| {
        // Request i is always made by client thread i % WORKERS (see `load`).
        let mut conn = connections[i % WORKERS].lock().unwrap();
        runtime
            .block_on(
                sqlx::query("INSERT INTO floor_rows (id, body) VALUES ($1, $2)")
                    .bind(i as i64)
                    .bind(document.as_str())
                    .execute(&mut *conn),
            )
            .is_ok()
    })
}

pub fn run(lockgate: &Path, root: &Path, seconds: u64, rate: u64) {
    let repo = root.join("serve-repo");
    build_repo(&repo, 200, 5, 20, 3);
    let decision = lockgate_out(
        lockgate,
        &repo,
        &[
            "check", "--base", "main", "--head", "pr", "--format", "json",
        ],
    );
    let decision: serde_json::Value = serde_json::from_str(&decision).expect("a decision");
    let config = root.join("server.toml");
    std::fs::write(
        &config,
        "[[person]]\nid = \"ada\"\nemails = [\"ada@example.org\"]\ngithub = \"ada\"\nteams = [\"@org/maintainers\"]\n",
    )
    .unwrap();

    let mut backends = vec![(
        "SQLite".to_string(),
        format!("sqlite://{}", root.join("ledger.db").display()),
        None,
    )];
    let rt = tokio::runtime::Runtime::new().unwrap();
    match std::env::var(lockgate_store::scratch::TEST_DATABASE_URL) {
        Ok(admin) if !admin.is_empty() => {
            let (url, name) = rt
                .block_on(lockgate_store::scratch::create_database(&admin))
                .expect("scratch PostgreSQL database");
            backends.push(("PostgreSQL".into(), url, Some((admin, name))));
        }
        _ => println!(
            "  (PostgreSQL skipped: set {} to measure it too)",
            lockgate_store::scratch::TEST_DATABASE_URL
        ),
    }

    println!(
        "lockgate serve under load: {rate} requests/s for {seconds} s per endpoint, {WORKERS} keep-alive clients, loopback"
    );
    for (name, db, scratch) in backends {
        let ci = lockgate_out(
            lockgate,
            &repo,
            &[
                "serve",
                "token",
                "create",
                "--subject",
                "ci",
                "--role",
                "ci",
                "--database-url",
                &db,
            ],
        );
        let ada = lockgate_out(
            lockgate,
            &repo,
            &[
                "serve",
                "token",
                "create",
                "--subject",
                "ada",
                "--role",
                "person",
                "--database-url",
                &db,
            ],
        );
        let server = start(lockgate, &repo, &config, &db);
        let url = Arc::new(server.url.clone());

        // One change to read; then record-decision and read-approvals at the rate.
        let seed =
            serde_json::json!({"repo": "acme/api", "change_ref": "pr/1", "decision": decision});
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let s = agent
            .post(&format!("{url}/api/v1/decisions"))
            .header("Authorization", &format!("Bearer {ci}"))
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&seed).unwrap().as_slice())
            .unwrap()
            .status();
        assert_eq!(s.as_u16(), 200, "seeding the ledger");

        let body_prefix = Arc::new(decision.clone());
        let (u, t) = (url.clone(), Arc::new(ci.clone()));
        let record: Request = Arc::new(move |agent, i| {
            let body = serde_json::json!({"repo": "acme/api", "change_ref": format!("bench/{i}"), "decision": &*body_prefix});
            agent
                .post(&format!("{u}/api/v1/decisions"))
                .header("Authorization", &format!("Bearer {t}"))
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(&body).unwrap().as_slice())
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false)
        });
        let (u, t) = (url.clone(), Arc::new(ada.clone()));
        let read: Request = Arc::new(move |agent, _| {
            agent
                .get(&format!("{u}/api/v1/change?repo=acme/api&change=pr/1"))
                .header("Authorization", &format!("Bearer {t}"))
                .call()
                .map(|mut r| r.status().as_u16() == 200 && r.body_mut().read_to_vec().is_ok())
                .unwrap_or(false)
        });
        println!("{name}:");
        let recorded = load(rate, seconds, record);
        report("POST /api/v1/decisions", &recorded);
        report("GET /api/v1/change (approvals)", &load(rate, seconds, read));
        if scratch.is_some() {
            let document = Arc::new(decision.to_string());
            let floor = load(rate, seconds, postgres_insert(&db, document));
            report("floor: PostgreSQL INSERT + commit", &floor);
            println!(
                "  record decision / floor: p50 {:.1}×  p99 {:.1}×",
                recorded.p50.as_secs_f64() / floor.p50.as_secs_f64(),
                recorded.p99.as_secs_f64() / floor.p99.as_secs_f64()
            );
        }
        drop(server);
        if let Some((admin, name)) = scratch {
            let _ = rt.block_on(lockgate_store::scratch::drop_database(&admin, &name));
        }
    }
    println!();
}
