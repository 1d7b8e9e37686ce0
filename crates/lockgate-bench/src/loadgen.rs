//! The open-loop load generator the server benchmarks share: requests at a fixed rate
//! from keep-alive client threads, each request's latency measured from its scheduled
//! start (so a slow server cannot hide queueing behind a slowed-down client); and the
//! servers under test, as child processes.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Client threads, each with its own keep-alive connection.
pub const WORKERS: usize = 32;

/// Makes request number `i` on a client's connection; true when it succeeded.
pub type Request = Arc<dyn Fn(&ureq::Agent, usize) -> bool + Send + Sync>;

/// Latency quantiles of one load run.
pub struct Load {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub sent: usize,
    pub errors: usize,
    pub achieved: f64,
}

/// Sends `rate` requests per second for `seconds`, each made by `request(i)` on a
/// keep-alive connection of one of `WORKERS` threads.
pub fn load(rate: u64, seconds: u64, request: Request) -> Load {
    let total = (rate * seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let request = request.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut latencies = Vec::new();
                let mut errors = 0;
                for i in (w..total).step_by(WORKERS) {
                    let due = start + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if !request(&agent, i) {
                        errors += 1;
                    }
                    latencies.push(due.elapsed());
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Load {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *all.last().unwrap(),
        sent: all.len(),
        errors,
        achieved: all.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// A child process killed when dropped.
pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a process that prints `… http://ADDR …` on its first line of stdout.
pub fn start_printing_url(command: &mut Command) -> Process {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    Process { child, url }
}
