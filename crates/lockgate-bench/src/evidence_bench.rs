//! Evidence ingestion at size: a 50 MB SARIF file and a 20 MB lcov file read by
//! `lockgate evidence` (the whole process, against a 2,000-file repository and a
//! 50-file change), with wall time and peak RSS. The point is bounded memory: the
//! parsers stream, so peak RSS should stay far below the input size. Python's
//! `json.load` on the same SARIF is measured alongside as a peer that reads the whole
//! document into memory.

use super::{Measurement, bench_file_name, build_repo, measure, ms, report};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

const SARIF_BYTES: u64 = 50 * 1_000_000;
const LCOV_BYTES: u64 = 20 * 1_000_000;

pub fn run(lockgate: &Path, root: &Path, runs: usize) {
    let repo = root.join("repo");
    build_repo(&repo, 2000, 50, 40, 10);
    let sarif = root.join("big.sarif");
    let lcov = root.join("big.lcov");
    let results = write_sarif(&sarif, SARIF_BYTES);
    let records = write_lcov(&lcov, LCOV_BYTES);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let (sarif_mb, lcov_mb) = (size(&sarif) as f64 / 1e6, size(&lcov) as f64 / 1e6);
    println!(
        "evidence ingestion: SARIF {sarif_mb:.1} MB ({results} results), lcov {lcov_mb:.1} MB ({records} file records)"
    );

    let runs = (runs / 3).max(5);
    let evidence = |extra: &[&Path], flag: &[&str]| {
        let mut c = Command::new(lockgate);
        c.current_dir(&repo)
            .args(["evidence", "--base", "main", "--head", "pr", "--json"]);
        for (f, p) in flag.iter().zip(extra) {
            c.arg(f).arg(p);
        }
        c
    };
    let none = measure(|| evidence(&[], &[]), runs);
    let s = measure(|| evidence(&[&sarif], &["--sarif"]), runs);
    let l = measure(|| evidence(&[&lcov], &["--coverage"]), runs);
    let both = measure(
        || evidence(&[&sarif, &lcov], &["--sarif", "--coverage"]),
        runs,
    );
    report("lockgate evidence (no reports)", &none);
    report("  + 50 MB SARIF", &s);
    report("  + 20 MB lcov", &l);
    report("  + both", &both);
    let rate = |m: &Measurement, mb: f64| mb / (m.median - none.median).as_secs_f64().max(1e-6);
    println!(
        "  SARIF {:.0} MB/s, lcov {:.0} MB/s (median time above the no-report run)",
        rate(&s, sarif_mb),
        rate(&l, lcov_mb)
    );
    println!(
        "  peak RSS with both: {:.1} MiB = {:.2}× the {:.0} MB of input (no reports: {:.1} MiB)",
        both.peak_rss_kib as f64 / 1024.0,
        both.peak_rss_kib as f64 * 1024.0 / ((sarif_mb + lcov_mb) * 1e6),
        sarif_mb + lcov_mb,
        none.peak_rss_kib as f64 / 1024.0
    );

    // Peer: Python's json.load keeps the whole document in memory.
    let python = Command::new("python3").arg("--version").output();
    if python.is_ok_and(|o| o.status.success()) {
        let peer = measure(
            || {
                let mut c = Command::new("python3");
                c.args([
                    "-c",
                    "import json,sys; d=json.load(open(sys.argv[1])); print(len(d['runs'][0]['results']))",
                ])
                .arg(&sarif);
                c
            },
            runs,
        );
        report("python3 json.load (peer)", &peer);
        println!(
            "  lockgate vs json.load on the SARIF: time {:.2}×, peak RSS {:.2}×",
            ms(s.median) / ms(peer.median),
            s.peak_rss_kib as f64 / peer.peak_rss_kib as f64
        );
    } else {
        println!("  (python3 not found: json.load peer skipped)");
    }
    println!();
}

/// A SARIF file of about `bytes`, shaped like CodeQL/Semgrep output: a rule table and
/// results with locations, fingerprints and properties. Returns the result count.
fn write_sarif(path: &Path, bytes: u64) -> u64 {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    let rules: Vec<String> = (0..200)
        .map(|r| {
            format!(
                r#"{{"id":"rule-{r:03}","name":"Rule{r}","shortDescription":{{"text":"Possible issue number {r}"}},"defaultConfiguration":{{"level":"{}"}},"properties":{{"security-severity":"{}.{}","tags":["security","external/cwe/cwe-{r}"]}}}}"#,
                ["error", "warning", "note"][r % 3],
                r % 10,
                r % 7
            )
        })
        .collect();
    write!(
        w,
        r#"{{"$schema":"https://json.schemastore.org/sarif-2.1.0.json","version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"benchscan","version":"1.0.0","rules":[{}]}}}},"results":["#,
        rules.join(",")
    )
    .unwrap();
    let mut written = 0u64;
    let mut n = 0u64;
    while written < bytes {
        let file = bench_file_name((n as usize * 7) % 2000);
        let line = 1 + n % 50;
        let result = format!(
            r#"{}{{"ruleId":"rule-{:03}","ruleIndex":{},"level":"warning","message":{{"text":"Value flows from user input to a sensitive sink without validation (case {n}); see the rule help for remediation."}},"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"{file}","uriBaseId":"%SRCROOT%"}},"region":{{"startLine":{line},"startColumn":5,"endLine":{line},"endColumn":42}}}}}}],"partialFingerprints":{{"primaryLocationLineHash":"{:016x}:1"}},"properties":{{"precision":"high"}}}}"#,
            if n == 0 { "" } else { "," },
            n % 200,
            n % 200,
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        w.write_all(result.as_bytes()).unwrap();
        written += result.len() as u64;
        n += 1;
    }
    w.write_all(b"]}]}\n").unwrap();
    w.flush().unwrap();
    n
}

/// An lcov file of about `bytes`: the repository's files, then generated ones, 60
/// lines each with hits, functions and branches. Returns the record count.
fn write_lcov(path: &Path, bytes: u64) -> u64 {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut n = 0u64;
    while written < bytes {
        let file = if n < 2000 {
            bench_file_name(n as usize)
        } else {
            format!("generated/pkg{:03}/module_{n:06}.rs", n % 500)
        };
        let mut rec = format!("TN:\nSF:{file}\nFN:1,main_{n}\nFNDA:3,main_{n}\nFNF:1\nFNH:1\n");
        for l in 1..=60u64 {
            rec.push_str(&format!("DA:{l},{}\n", (l * n) % 4));
        }
        rec.push_str("BRDA:10,0,0,1\nBRDA:10,0,1,0\nBRF:2\nBRH:1\nLF:60\n");
        rec.push_str(&format!(
            "LH:{}\nend_of_record\n",
            (1..=60u64).filter(|l| !(l * n).is_multiple_of(4)).count()
        ));
        w.write_all(rec.as_bytes()).unwrap();
        written += rec.len() as u64;
        n += 1;
    }
    w.flush().unwrap();
    n
}
