//! Properties of the trust score: bad evidence never raises it, the score stays in
//! 0–100, and the band follows the thresholds.

use lockgate_core::category::TrustBand;
use lockgate_core::evidence::{CoverageFacts, EvidenceFacts, EvidenceKind, SarifFacts, TestFacts};
use lockgate_core::provenance::{CommitProvenance, ProvenanceFacts, ProvenanceStatus};
use lockgate_core::trust::{ScoreBand, ScoreInputs, TrackRecord, TrustSettings, score};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
struct Case {
    tests: Option<(u64, u64, u64, u64, bool, bool)>,
    coverage: Option<(u64, u64, Option<i32>)>,
    sarif: Option<[u64; 4]>,
    status: Option<u8>,
    model: Option<&'static str>,
    lines: u64,
    files: u64,
    dirs: u64,
    record: Option<(u64, u64, u64)>,
    required: Vec<EvidenceKind>,
}

fn case() -> impl Strategy<Value = Case> {
    let tests = proptest::option::of((
        0..50u64,
        0..5u64,
        0..5u64,
        0..5u64,
        any::<bool>(),
        any::<bool>(),
    ));
    let coverage = proptest::option::of((0..200u64, 0..200u64, proptest::option::of(-500..500i32)));
    let sarif = proptest::option::of(prop::array::uniform4(0..4u64));
    let model = proptest::option::of(prop::sample::select(vec![
        "claude-opus-4-1",
        "gpt-5-mini",
        "unheard-of-7b",
        "claude-3-5-sonnet",
    ]));
    let required = prop::collection::vec(
        prop::sample::select(vec![
            EvidenceKind::Tests,
            EvidenceKind::Coverage,
            EvidenceKind::Sarif,
        ]),
        0..3,
    );
    (
        tests,
        coverage,
        sarif,
        proptest::option::of(0..6u8),
        model,
        (0..100_000u64, 0..5_000u64, 0..500u64),
        proptest::option::of((0..100u64, 0..20u64, 0..20u64)),
        required,
    )
        .prop_map(
            |(tests, coverage, sarif, status, model, (lines, files, dirs), record, required)| {
                Case {
                    tests,
                    coverage,
                    sarif,
                    status,
                    model,
                    lines,
                    files,
                    dirs,
                    record,
                    required,
                }
            },
        )
}

const STATUSES: [ProvenanceStatus; 6] = [
    ProvenanceStatus::Valid,
    ProvenanceStatus::Stale,
    ProvenanceStatus::Missing,
    ProvenanceStatus::UntrustedKey,
    ProvenanceStatus::Revoked,
    ProvenanceStatus::Invalid,
];

fn build(c: &Case) -> (ProvenanceFacts, EvidenceFacts) {
    let mut prov = ProvenanceFacts::default();
    if let Some(s) = c.status {
        prov.commits.push(CommitProvenance {
            commit: "c".repeat(40),
            status: STATUSES[s as usize],
            binding: None,
            attested_by: None,
            signer: None,
            agent: Some("codex".into()),
            agent_matches_commit: Some(true),
            model: c.model.map(String::from),
            prompt_digest: None,
            transcript: None,
            logged: None,
            reasons: Vec::new(),
        });
    }
    let mut ev = EvidenceFacts::default();
    if let Some((passed, failed, errored, skipped, tests_changed, source_changed)) = c.tests {
        ev.tests = Some(TestFacts {
            total: passed + failed + errored + skipped,
            passed,
            failed,
            errored,
            skipped,
            failures: Vec::new(),
            tests_changed,
            source_changed,
        });
    }
    if let Some((executable, covered, delta)) = c.coverage {
        let covered = covered.min(executable);
        ev.coverage = Some(CoverageFacts {
            format: "lcov".into(),
            added_executable: executable,
            added_covered: covered,
            diff_coverage: (executable > 0).then(|| covered as f64 / executable as f64),
            delta: delta.map(|d| f64::from(d) / 1000.0),
            ..CoverageFacts::default()
        });
    }
    if let Some(counts) = c.sarif {
        let mut by = BTreeMap::new();
        for (sev, n) in ["critical", "high", "medium", "low"].iter().zip(counts) {
            if n > 0 {
                by.insert(sev.to_string(), n);
            }
        }
        ev.sarif = Some(SarifFacts {
            new_by_severity: by,
            ..SarifFacts::default()
        });
    }
    (prov, ev)
}

fn run(c: &Case, prov: &ProvenanceFacts, ev: &EvidenceFacts) -> lockgate_core::trust::TrustScore {
    let settings = TrustSettings {
        require: c.required.clone(),
        ..TrustSettings::default()
    };
    score(
        &ScoreInputs {
            human: false,
            configured: Some(TrustBand::High),
            provenance: prov,
            evidence: ev,
            lines_changed: c.lines,
            files_changed: c.files,
            directories_changed: c.dirs,
            track_record: c.record.map(|(merged, reverted, rejected)| TrackRecord {
                merged,
                reverted,
                rejected,
            }),
        },
        &settings,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn a_failing_test_never_raises_the_score(c in case(), errored in any::<bool>()) {
        prop_assume!(c.tests.is_some() || !c.required.contains(&EvidenceKind::Tests));
        let (prov, ev) = build(&c);
        let before = run(&c, &prov, &ev);
        let mut worse = ev.clone();
        let t = worse.tests.get_or_insert_with(TestFacts::default);
        t.total += 1;
        if errored { t.errored += 1 } else { t.failed += 1 }
        let after = run(&c, &prov, &worse);
        prop_assert!(after.score <= before.score, "{} → {}", before.score, after.score);
        let tests = after.factors.iter().find(|f| f.name == "tests").unwrap();
        prop_assert!(tests.score <= 10);
    }

    #[test]
    fn a_new_serious_finding_never_raises_the_score(c in case(), critical in any::<bool>()) {
        // Missing *required* evidence already scores the floor (0); everywhere else,
        // a report with one more serious finding is never better.
        prop_assume!(c.sarif.is_some() || !c.required.contains(&EvidenceKind::Sarif));
        let (prov, ev) = build(&c);
        let before = run(&c, &prov, &ev);
        let mut worse = ev.clone();
        let s = worse.sarif.get_or_insert_with(SarifFacts::default);
        *s.new_by_severity.entry(if critical { "critical" } else { "high" }.into()).or_default() += 1;
        let after = run(&c, &prov, &worse);
        prop_assert!(after.score <= before.score, "{} → {}", before.score, after.score);
    }

    #[test]
    fn a_new_finding_of_any_severity_never_raises_the_score(mut c in case(), sev in 0..4usize) {
        c.sarif.get_or_insert([0; 4]);
        let (prov, ev) = build(&c);
        let before = run(&c, &prov, &ev);
        let mut worse = ev.clone();
        let s = worse.sarif.as_mut().unwrap();
        *s.new_by_severity.entry(["critical", "high", "medium", "low"][sev].into()).or_default() += 1;
        let after = run(&c, &prov, &worse);
        prop_assert!(after.score <= before.score, "{} → {}", before.score, after.score);
    }

    #[test]
    fn a_revert_in_the_ledger_never_raises_the_score(c in case()) {
        let (prov, ev) = build(&c);
        let before = run(&c, &prov, &ev);
        let mut worse = c.clone();
        let (m, r, j) = c.record.unwrap_or((0, 0, 0));
        worse.record = Some((m, r + 1, j));
        let after = run(&worse, &prov, &ev);
        prop_assert!(after.score <= before.score, "{} → {}", before.score, after.score);
    }

    #[test]
    fn score_is_bounded_and_banded(c in case()) {
        let (prov, ev) = build(&c);
        let s = run(&c, &prov, &ev);
        prop_assert!(s.score <= 100);
        let settings = TrustSettings::default();
        let band = if s.score >= settings.fast {
            ScoreBand::Fast
        } else if s.score >= settings.normal {
            ScoreBand::Normal
        } else {
            ScoreBand::Senior
        };
        prop_assert_eq!(s.band, band);
        for f in &s.factors {
            prop_assert!(f.score <= 100);
        }
    }

    #[test]
    fn missing_required_evidence_never_beats_providing_good_evidence(c in case()) {
        let mut strict = c.clone();
        strict.required = vec![EvidenceKind::Tests];
        strict.tests = None;
        let (prov, ev) = build(&strict);
        let missing = run(&strict, &prov, &ev);
        let mut good = strict.clone();
        good.tests = Some((5, 0, 0, 0, true, true));
        let (prov, ev) = build(&good);
        let provided = run(&good, &prov, &ev);
        prop_assert!(missing.score <= provided.score);
        let tests = missing.factors.iter().find(|f| f.name == "tests").unwrap();
        prop_assert_eq!(tests.score, 0);
    }
}
