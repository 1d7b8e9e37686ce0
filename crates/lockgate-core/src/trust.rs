//! The trust score: 0–100 from measured evidence, with every factor shown.
//!
//! `score = Σ weightᵢ · subscoreᵢ / Σ weightᵢ` over seven factors, each 0–100:
//!
//! | factor | sub-score |
//! |---|---|
//! | `model` | the attested model's tier in the registry (`trust.models`); unknown or unattested → the `unknown` tier |
//! | `provenance` | the worst agent-commit status: valid 100, stale 40, missing 20, untrusted key 15, invalid/revoked 0 |
//! | `tests` | any failure or error → ≤ 10 (10 × pass share); no tests run → 30; all pass → 100, or 70 when source changed without test changes |
//! | `coverage` | 100 × diff coverage (80 when no executable line was added), minus 1 per 0.1 point of overall coverage lost (≤ 30) |
//! | `analysis` | 100 − 50·critical − 30·high − 12·medium − 3·low new findings; ≤ 5 with a critical, ≤ 25 with a high |
//! | `size` | 100 − 12·log₂(lines/100) − 10·log₂(files/10) − 8·log₂(directories/4), each term only above its threshold |
//! | `track_record` | 100 · (merged + 1) / (merged + 3·reverted + rejected + 2) from the ledger |
//!
//! A factor with no evidence takes the `neutral` sub-score (50) — unless the evidence
//! is required (`trust.require`), then 0. Bad evidence always scores below neutral
//! (a failing test ≤ 10, a new high finding ≤ 25), so providing evidence of a problem
//! never raises the score, and neither does adding a failing test or a finding.
//!
//! The score's band routes the change: `fast` (≥ `trust.fast`, matrix trust `high`),
//! `normal` (≥ `trust.normal`, `medium`), `senior` (below, `low`). The band an agent may
//! reach is capped by its configured trust (`agents.trust`).

use crate::category::TrustBand;
use crate::evidence::{EvidenceFacts, EvidenceKind};
use crate::provenance::{ProvenanceFacts, ProvenanceStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[trust]` in `.lockgate.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrustSettings {
    /// Lowest score of the fast path (matrix trust `high`).
    pub fast: u8,
    /// Lowest score of normal review (matrix trust `medium`); below is senior review.
    pub normal: u8,
    /// Sub-score of a factor with no evidence that is not required.
    pub neutral: u8,
    /// Evidence that must be provided; missing, its factor scores 0.
    pub require: Vec<EvidenceKind>,
    pub weights: Weights,
    /// Model registry: first matching pattern gives the tier. Patterns are globs over
    /// the model id (provider prefix removed, lower case). Added before the defaults.
    pub models: Vec<ModelRule>,
    /// Use the built-in model registry after `models`.
    pub default_models: bool,
    /// Sub-score per tier.
    pub tiers: BTreeMap<String, u8>,
}

/// Factor weights (relative; need not sum to 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub model: u32,
    pub provenance: u32,
    pub tests: u32,
    pub coverage: u32,
    pub analysis: u32,
    pub size: u32,
    pub track_record: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            model: 15,
            provenance: 20,
            tests: 15,
            coverage: 15,
            analysis: 15,
            size: 10,
            track_record: 10,
        }
    }
}

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRule {
    pub pattern: String,
    pub tier: String,
}

/// The built-in model registry (`defaults/models.toml`).
pub const DEFAULT_MODELS_TOML: &str = include_str!("../defaults/models.toml");

#[derive(Deserialize)]
struct ModelsFile {
    model: Vec<ModelRule>,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            fast: 70,
            normal: 40,
            neutral: 50,
            require: Vec::new(),
            weights: Weights::default(),
            models: Vec::new(),
            default_models: true,
            tiers: BTreeMap::from([
                ("frontier".into(), 90),
                ("standard".into(), 70),
                ("small".into(), 45),
                ("unknown".into(), 20),
            ]),
        }
    }
}

impl TrustSettings {
    /// The registry in effect: the team's rules, then the built-in ones.
    pub fn model_rules(&self) -> Vec<ModelRule> {
        let mut rules = self.models.clone();
        if self.default_models {
            let file: ModelsFile =
                toml::from_str(DEFAULT_MODELS_TOML).expect("the built-in model registry parses");
            rules.extend(file.model);
        }
        rules
    }

    /// Checks the settings (bands ordered, tiers known, patterns valid).
    pub fn validate(&self) -> Result<(), String> {
        if self.normal > self.fast || self.fast > 100 {
            return Err(format!(
                "trust: need normal ({}) ≤ fast ({}) ≤ 100",
                self.normal, self.fast
            ));
        }
        for rule in self.model_rules() {
            if !self.tiers.contains_key(&rule.tier) {
                return Err(format!(
                    "trust.models: pattern {:?} names tier {:?}, which trust.tiers does not define",
                    rule.pattern, rule.tier
                ));
            }
            globset::Glob::new(&rule.pattern.to_ascii_lowercase())
                .map_err(|e| format!("trust.models: pattern {:?}: {e}", rule.pattern))?;
        }
        if !self.tiers.contains_key("unknown") {
            return Err("trust.tiers must define `unknown`".into());
        }
        if let Some((tier, score)) = self.tiers.iter().find(|(_, s)| **s > 100) {
            return Err(format!(
                "trust.tiers.{tier} = {score}: sub-scores are 0–100"
            ));
        }
        if self.neutral > 100 {
            return Err(format!(
                "trust.neutral = {}: sub-scores are 0–100",
                self.neutral
            ));
        }
        let w = &self.weights;
        let weights = [
            w.model,
            w.provenance,
            w.tests,
            w.coverage,
            w.analysis,
            w.size,
            w.track_record,
        ];
        if weights.iter().all(|w| *w == 0) {
            return Err("trust.weights: at least one weight must be above 0".into());
        }
        if weights.iter().any(|w| *w > 1000) {
            return Err("trust.weights: weights are relative; keep each at or below 1000".into());
        }
        Ok(())
    }

    /// The tier of a model id (`provider/id` or `id`).
    pub fn tier_of(&self, model: &str) -> String {
        let id = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        self.model_rules()
            .into_iter()
            .find(|r| {
                globset::Glob::new(&r.pattern.to_ascii_lowercase())
                    .map(|g| g.compile_matcher().is_match(&id))
                    .unwrap_or(false)
            })
            .map(|r| r.tier)
            .unwrap_or_else(|| "unknown".into())
    }
}

/// Where the score routes a change.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScoreBand {
    /// Below `trust.normal`: senior review.
    Senior,
    /// Normal review.
    Normal,
    /// The fast path: may merge on its own when impact and provenance allow.
    Fast,
}

impl ScoreBand {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreBand::Senior => "senior",
            ScoreBand::Normal => "normal",
            ScoreBand::Fast => "fast",
        }
    }

    /// The risk matrix's trust axis for this band.
    pub fn matrix_trust(self) -> TrustBand {
        match self {
            ScoreBand::Senior => TrustBand::Low,
            ScoreBand::Normal => TrustBand::Medium,
            ScoreBand::Fast => TrustBand::High,
        }
    }
}

/// One factor of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Factor {
    /// `model`, `provenance`, `tests`, `coverage`, `analysis`, `size`, `track_record`.
    pub name: String,
    /// 0–100.
    pub score: u8,
    pub weight: u32,
    /// Whether evidence for it was present (else the neutral or, if required, zero score).
    pub measured: bool,
    /// Why this sub-score, in a few words.
    pub detail: String,
}

/// The score with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrustScore {
    /// 0–100.
    pub score: u8,
    pub band: ScoreBand,
    /// The risk matrix's trust axis: the band's, capped by the agent's configured trust.
    pub matrix_trust: TrustBand,
    pub factors: Vec<Factor>,
}

/// An agent's history from the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TrackRecord {
    pub merged: u64,
    pub reverted: u64,
    pub rejected: u64,
}

/// What the score is computed from.
pub struct ScoreInputs<'a> {
    /// The author kind is human (no agent factors apply).
    pub human: bool,
    /// The agent's configured trust, capping the band (`None` for humans).
    pub configured: Option<TrustBand>,
    pub provenance: &'a ProvenanceFacts,
    pub evidence: &'a EvidenceFacts,
    pub lines_changed: u64,
    pub files_changed: u64,
    pub directories_changed: u64,
    pub track_record: Option<TrackRecord>,
}

/// Computes the score.
pub fn score(inputs: &ScoreInputs<'_>, settings: &TrustSettings) -> TrustScore {
    let w = &settings.weights;
    let required = |k: EvidenceKind| settings.require.contains(&k);
    let absent = |name: &str, weight: u32, kind: Option<EvidenceKind>, what: &str| {
        let req = kind.is_some_and(required);
        Factor {
            name: name.into(),
            score: if req { 0 } else { settings.neutral },
            weight,
            measured: false,
            detail: if req {
                format!("no {what}, which trust.require requires")
            } else {
                format!("no {what}")
            },
        }
    };
    let measured = |name: &str, weight: u32, score: f64, detail: String| Factor {
        name: name.into(),
        score: score.clamp(0.0, 100.0).round() as u8,
        weight,
        measured: true,
        detail,
    };
    let mut factors = Vec::new();

    // Model lineage: the lowest tier among valid attestations' models.
    let models: Vec<&str> = inputs
        .provenance
        .commits
        .iter()
        .filter(|c| c.status == ProvenanceStatus::Valid)
        .filter_map(|c| c.model.as_deref())
        .collect();
    factors.push(if inputs.human {
        absent("model", w.model, None, "model: a human change")
    } else if models.is_empty() {
        let unknown = settings.tiers.get("unknown").copied().unwrap_or(0);
        measured(
            "model",
            w.model,
            f64::from(unknown),
            "no attested model: tier unknown".into(),
        )
    } else {
        let (model, tier, s) = models
            .iter()
            .map(|m| {
                let tier = settings.tier_of(m);
                let s = settings.tiers.get(&tier).copied().unwrap_or(0);
                (*m, tier, s)
            })
            .min_by_key(|(_, _, s)| *s)
            .expect("non-empty");
        measured(
            "model",
            w.model,
            f64::from(s),
            format!("{model}: tier {tier}"),
        )
    });

    // Provenance integrity: the worst agent commit.
    factors.push(if inputs.provenance.commits.is_empty() {
        absent("provenance", w.provenance, None, "agent commits to attest")
    } else {
        let worst = inputs
            .provenance
            .commits
            .iter()
            .map(|c| c.status)
            .max_by_key(|s| provenance_penalty(*s))
            .expect("non-empty");
        measured(
            "provenance",
            w.provenance,
            f64::from(100 - provenance_penalty(worst)),
            format!(
                "{} agent commit(s), worst status {}",
                inputs.provenance.commits.len(),
                worst.as_str()
            ),
        )
    });

    // Tests.
    factors.push(match &inputs.evidence.tests {
        None => absent("tests", w.tests, Some(EvidenceKind::Tests), "test results"),
        Some(t) => {
            let bad = t.failed + t.errored;
            if bad > 0 {
                let share = t.passed as f64 / t.total.max(1) as f64;
                measured(
                    "tests",
                    w.tests,
                    (10.0 * share).min(10.0),
                    format!("{} failed, {} errored of {}", t.failed, t.errored, t.total),
                )
            } else if t.passed == 0 {
                measured(
                    "tests",
                    w.tests,
                    30.0,
                    format!("no test passed ({} skipped)", t.skipped),
                )
            } else if t.source_changed && !t.tests_changed {
                measured(
                    "tests",
                    w.tests,
                    70.0,
                    format!("{} passed; source changed without test changes", t.passed),
                )
            } else {
                measured("tests", w.tests, 100.0, format!("{} passed", t.passed))
            }
        }
    });

    // Coverage.
    factors.push(match &inputs.evidence.coverage {
        None => absent(
            "coverage",
            w.coverage,
            Some(EvidenceKind::Coverage),
            "coverage report",
        ),
        Some(c) => {
            let (mut s, mut detail) = match c.diff_coverage {
                Some(d) => (
                    100.0 * d,
                    format!(
                        "diff coverage {:.0}% ({}/{} added lines)",
                        100.0 * d,
                        c.added_covered,
                        c.added_executable
                    ),
                ),
                None => (80.0, "no executable line added".to_string()),
            };
            if let Some(delta) = c.delta
                && delta < 0.0
            {
                let penalty = (1000.0 * -delta).min(30.0);
                s -= penalty;
                detail.push_str(&format!("; overall {:+.1} points", 100.0 * delta));
            }
            measured("coverage", w.coverage, s, detail)
        }
    });

    // Static analysis: new findings only.
    factors.push(match &inputs.evidence.sarif {
        None => absent(
            "analysis",
            w.analysis,
            Some(EvidenceKind::Sarif),
            "static analysis (SARIF)",
        ),
        Some(f) => {
            let (c, h, m, l) = (
                f.new_count("critical"),
                f.new_count("high"),
                f.new_count("medium"),
                f.new_count("low"),
            );
            let mut s =
                100.0 - 50.0 * c as f64 - 30.0 * h as f64 - 12.0 * m as f64 - 3.0 * l as f64;
            if c > 0 {
                s = s.min(5.0);
            }
            if h > 0 {
                s = s.min(25.0);
            }
            measured(
                "analysis",
                w.analysis,
                s,
                format!("new findings: {c} critical, {h} high, {m} medium, {l} low"),
            )
        }
    });

    // Size and spread.
    let over = |value: u64, threshold: f64| (value as f64 / threshold).max(1.0).log2();
    let size = 100.0
        - 12.0 * over(inputs.lines_changed, 100.0)
        - 10.0 * over(inputs.files_changed, 10.0)
        - 8.0 * over(inputs.directories_changed, 4.0);
    factors.push(measured(
        "size",
        w.size,
        size,
        format!(
            "{} lines in {} files, {} directories",
            inputs.lines_changed, inputs.files_changed, inputs.directories_changed
        ),
    ));

    // Track record.
    factors.push(match inputs.track_record {
        Some(r) if !inputs.human && r.merged + r.reverted + r.rejected > 0 => measured(
            "track_record",
            w.track_record,
            100.0 * (r.merged as f64 + 1.0)
                / (r.merged as f64 + 3.0 * r.reverted as f64 + r.rejected as f64 + 2.0),
            format!(
                "{} merged, {} reverted, {} rejected",
                r.merged, r.reverted, r.rejected
            ),
        ),
        _ => absent(
            "track_record",
            w.track_record,
            None,
            "history in the ledger",
        ),
    });

    let total_weight: u32 = factors.iter().map(|f| f.weight).sum();
    let score = if total_weight == 0 {
        0.0
    } else {
        factors
            .iter()
            .map(|f| f64::from(f.score) * f64::from(f.weight))
            .sum::<f64>()
            / f64::from(total_weight)
    };
    let score = score.round().clamp(0.0, 100.0) as u8;
    let band = if score >= settings.fast {
        ScoreBand::Fast
    } else if score >= settings.normal {
        ScoreBand::Normal
    } else {
        ScoreBand::Senior
    };
    let matrix_trust = match inputs.configured {
        Some(cap) => band.matrix_trust().min(cap),
        None => band.matrix_trust(),
    };
    TrustScore {
        score,
        band,
        matrix_trust,
        factors,
    }
}

/// How much a provenance status takes off the provenance factor.
fn provenance_penalty(s: ProvenanceStatus) -> u8 {
    match s {
        ProvenanceStatus::Valid => 0,
        ProvenanceStatus::Stale => 60,
        ProvenanceStatus::Missing => 80,
        ProvenanceStatus::UntrustedKey => 85,
        ProvenanceStatus::Revoked | ProvenanceStatus::Invalid => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{SarifFacts, TestFacts};

    fn inputs<'a>(prov: &'a ProvenanceFacts, ev: &'a EvidenceFacts) -> ScoreInputs<'a> {
        ScoreInputs {
            human: false,
            configured: Some(TrustBand::High),
            provenance: prov,
            evidence: ev,
            lines_changed: 40,
            files_changed: 3,
            directories_changed: 2,
            track_record: None,
        }
    }

    #[test]
    fn models_are_tiered_by_the_registry() {
        let s = TrustSettings::default();
        s.validate().unwrap();
        assert_eq!(s.tier_of("anthropic/claude-opus-4-1"), "frontier");
        assert_eq!(s.tier_of("claude-haiku-4-5"), "small");
        assert_eq!(s.tier_of("openai/gpt-5-mini"), "small");
        assert_eq!(s.tier_of("openai/gpt-5"), "frontier");
        assert_eq!(s.tier_of("some/unheard-of-7b"), "unknown");
        let mut custom = TrustSettings::default();
        custom.models.push(ModelRule {
            pattern: "unheard-of-*".into(),
            tier: "standard".into(),
        });
        assert_eq!(custom.tier_of("some/unheard-of-7b"), "standard");
        custom.models.push(ModelRule {
            pattern: "x".into(),
            tier: "legendary".into(),
        });
        assert!(custom.validate().unwrap_err().contains("legendary"));
        let zero = TrustSettings {
            weights: Weights {
                model: 0,
                provenance: 0,
                tests: 0,
                coverage: 0,
                analysis: 0,
                size: 0,
                track_record: 0,
            },
            ..TrustSettings::default()
        };
        assert!(zero.validate().unwrap_err().contains("weight"));
        let inverted = TrustSettings {
            fast: 30,
            normal: 60,
            ..TrustSettings::default()
        };
        assert!(inverted.validate().is_err());
        let mut over = TrustSettings::default();
        over.tiers.insert("frontier".into(), 101);
        assert!(over.validate().unwrap_err().contains("frontier"));
    }

    #[test]
    fn no_evidence_is_neutral_and_required_evidence_is_zero() {
        let prov = ProvenanceFacts::default();
        let ev = EvidenceFacts::default();
        let base = score(&inputs(&prov, &ev), &TrustSettings::default());
        let tests = base.factors.iter().find(|f| f.name == "tests").unwrap();
        assert_eq!((tests.score, tests.measured), (50, false));
        let strict = TrustSettings {
            require: vec![EvidenceKind::Tests],
            ..TrustSettings::default()
        };
        let required = score(&inputs(&prov, &ev), &strict);
        assert!(required.score < base.score);
        let tests = required.factors.iter().find(|f| f.name == "tests").unwrap();
        assert_eq!(tests.score, 0);
    }

    #[test]
    fn bands_and_the_configured_cap() {
        let prov = ProvenanceFacts::default();
        let good = EvidenceFacts {
            tests: Some(TestFacts {
                total: 10,
                passed: 10,
                tests_changed: true,
                source_changed: true,
                ..TestFacts::default()
            }),
            sarif: Some(SarifFacts::default()),
            ..EvidenceFacts::default()
        };
        let s = score(&inputs(&prov, &good), &TrustSettings::default());
        let mut capped = inputs(&prov, &good);
        capped.configured = Some(TrustBand::Low);
        let c = score(&capped, &TrustSettings::default());
        assert_eq!(s.score, c.score);
        assert_eq!(c.matrix_trust, TrustBand::Low);
        assert!(s.matrix_trust >= c.matrix_trust);
        let total: u32 = s.factors.iter().map(|f| f.weight).sum();
        assert_eq!(total, 100);
    }
}
