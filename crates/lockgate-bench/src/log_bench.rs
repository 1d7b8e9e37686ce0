//! Transparency-log benchmarks, each against its floor in the same run:
//!
//! 1. append throughput with 1 s batches on directory storage (every batch fsynced
//!    before its checkpoint), against SHA-256 over the same bytes — target ≥ 20,000
//!    entries/s;
//! 2. inclusion and consistency proof generation from the tiles — target < 50 µs.

use lockgate_log::batch::Batcher;
use lockgate_log::dir::LogDir;
use lockgate_log::log::LogReader;
use lockgate_log::merkle;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes per entry: about a DSSE envelope of an agent-session attestation.
const ENTRY_BYTES: usize = 1500;

/// Entries per producer awaiting their checkpoint (bounds memory).
const IN_FLIGHT: usize = 50_000;

/// A distinct entry for `i`: its index over fixed filler, so producing entries costs
/// next to nothing and the producers do not compete with the log for the CPU.
fn entry(i: u64) -> Vec<u8> {
    static FILLER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let filler = FILLER.get_or_init(|| {
        let mut f = Vec::with_capacity(ENTRY_BYTES + 32);
        let mut h = Sha256::digest(b"lockgate-bench").to_vec();
        while f.len() < ENTRY_BYTES {
            f.extend_from_slice(&h);
            h = Sha256::digest(&h).to_vec();
        }
        f.truncate(ENTRY_BYTES);
        f
    });
    let mut e = filler.clone();
    e[..8].copy_from_slice(&i.to_le_bytes());
    e
}

pub fn run(dir: &Path, seconds: u64) {
    println!("transparency log ({ENTRY_BYTES}-byte entries, directory storage, fsync per batch)");
    let root = dir.join("tlog");
    let _ = std::fs::remove_dir_all(&root);
    let vkey = LogDir::init(&root, "bench.lockgate.dev/log").expect("init");
    let log_dir = LogDir::open(&root).expect("open");
    let (log, _lock) = log_dir.writer().expect("writer");

    // ── 1. appends with 1 s batches ─────────────────────────────────────────
    // Two producers offer entries as fast as the log takes them, each with at most
    // IN_FLIGHT awaiting a checkpoint. A batch closes after 1 s or when every entry
    // in flight has arrived, whichever is first; an entry counts only once a durable
    // checkpoint includes it.
    let batch_times = Arc::new(std::sync::Mutex::new(Vec::<(usize, Duration)>::new()));
    let last_publish = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (bt, lp) = (batch_times.clone(), last_publish.clone());
    let batcher = Batcher::spawn(
        log,
        Duration::from_secs(1),
        2 * IN_FLIGHT,
        Box::new(move |appended, entries| {
            let now = Instant::now();
            let mut last = lp.lock().unwrap();
            bt.lock()
                .unwrap()
                .push((entries.len(), now.duration_since(*last)));
            *last = now;
            let _ = appended;
        }),
    );
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    *last_publish.lock().unwrap() = started;
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let batcher = batcher.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                let mut pending = std::collections::VecDeque::new();
                while Instant::now() < stop_at {
                    for _ in 0..256 {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        pending.push_back(batcher.enqueue(entry(i)).expect("enqueue"));
                    }
                    while pending.len() >= IN_FLIGHT {
                        pending.pop_front().unwrap().wait().expect("append");
                    }
                }
                let mut last = 0;
                for p in pending {
                    last = p.wait().expect("append").1.size;
                }
                last
            })
        })
        .collect();
    let size = producers
        .into_iter()
        .map(|p| p.join().unwrap())
        .max()
        .unwrap();
    let elapsed = started.elapsed();
    drop(batcher);
    let integrated = next.load(Ordering::Relaxed);
    assert_eq!(size, integrated, "every enqueued entry is in the log");
    let rate = integrated as f64 / elapsed.as_secs_f64();

    // Floor: SHA-256 over the same bytes (one hash per entry, no tree, no IO).
    let floor_entries = integrated.min(200_000);
    let t = Instant::now();
    for i in 0..floor_entries {
        black_box(merkle::leaf_hash(&entry(i)));
    }
    let hashed = t.elapsed();
    let t = Instant::now();
    for i in 0..floor_entries {
        black_box(entry(i));
    }
    let generation = t.elapsed();
    let floor_rate = floor_entries as f64 / hashed.saturating_sub(generation).as_secs_f64();

    let batches = batch_times.lock().unwrap().clone();
    println!(
        "  appends, 1 s batches: {integrated} entries in {:.2} s = {:.0} entries/s \
         ({} batches, median {} entries, median {:.2} s apart)  target ≥ 20,000/s: {}",
        elapsed.as_secs_f64(),
        rate,
        batches.len(),
        median_of(batches.iter().map(|b| b.0 as f64).collect()),
        median_of(batches.iter().map(|b| b.1.as_secs_f64()).collect()),
        if rate >= 20_000.0 { "met" } else { "NOT met" }
    );
    println!(
        "  SHA-256 floor for the same bytes: {floor_rate:.0} entries/s ({:.0} MB/s); \
         append costs {:.2}× the floor's CPU time per entry",
        floor_rate * ENTRY_BYTES as f64 / 1e6,
        floor_rate / rate
    );

    // ── 2. proofs ───────────────────────────────────────────────────────────
    let storage = log_dir.storage().expect("storage");
    let reader = LogReader::new(&storage);
    let (cp, _) = reader.checkpoint(&vkey).expect("checkpoint");
    let n = cp.size;
    let samples = 20_000u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Random entries across the whole log: the level-0 tile is usually not cached
    // (the cache keeps 2,048 tiles), so the proof reads it from storage (here the OS
    // page cache) and hashes its subtrees.
    let mut inclusion = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let index = random() % n;
        let t = Instant::now();
        black_box(reader.inclusion_proof(index, n).expect("proof"));
        inclusion.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // Recent entries (the last 100,000, what clients ask about right after
    // appending): their tiles stay cached.
    let recent = n.min(100_000);
    let mut hot = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let index = n - 1 - random() % recent;
        let t = Instant::now();
        black_box(reader.inclusion_proof(index, n).expect("proof"));
        hot.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut consistency = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let old = 1 + random() % (n - 1);
        let t = Instant::now();
        black_box(reader.consistency_proof(old, n).expect("proof"));
        consistency.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // Floor: the hashing a verifier does for the same proof (pure CPU).
    let proof = reader.inclusion_proof(n / 3, n).expect("proof");
    let leaf = merkle::leaf_hash(&reader.entry(n / 3, n).expect("entry"));
    let mut verify = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        black_box(merkle::verify_inclusion(n / 3, n, &leaf, &proof, &cp.root)).expect("verifies");
        verify.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let inc = median_of(inclusion);
    let hot = median_of(hot);
    let con = median_of(consistency);
    let ver = median_of(verify);
    println!(
        "  proofs in a tree of {n}, random entries (tiles read from storage): inclusion median \
         {inc:.1} µs, consistency median {con:.1} µs  target < 50 µs: {}",
        if inc < 50.0 && con < 50.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("  inclusion proof for a recent entry (tiles cached): median {hot:.1} µs");
    println!(
        "  verifying an inclusion proof ({} hashes): median {ver:.1} µs; random-entry generation is {:.1}× that",
        proof.len(),
        inc / ver
    );
    println!();
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
