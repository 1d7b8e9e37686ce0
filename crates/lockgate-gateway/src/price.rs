//! Model prices and what a call costs, in integer micro-dollars (never floats for money).
//!
//! A bundled table holds public list prices; a deployment overrides or extends it
//! (`[[gateway.price]]` in the server config). A model matches its exact name or, for
//! dated variants such as `claude-sonnet-4-20250514`, the longest listed prefix followed
//! by `-`. A model with no price is refused: the gateway cannot budget what it cannot
//! price (fail closed).

use serde::Deserialize;
use std::collections::BTreeMap;

/// Micro-dollars: 1 USD = 1,000,000.
pub type Micros = i64;

/// The price of one model, per million tokens, and its output ceiling.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub model: String,
    /// Micro-dollars per million input tokens (cached or not: charged at the full rate).
    pub input_per_mtok: Micros,
    /// Micro-dollars per million output tokens (reasoning tokens included).
    pub output_per_mtok: Micros,
    /// The most output tokens one call can produce: reserved when a request sets no limit.
    pub max_output_tokens: u32,
}

/// List prices bundled with Lockgate (USD per million tokens, input / output), as
/// published by OpenAI and Anthropic in 2025. Override them in the config when yours
/// differ: the budget is only as right as this table.
const BUNDLED: &[(&str, f64, f64, u32)] = &[
    ("gpt-4o", 2.50, 10.00, 16_384),
    ("gpt-4o-mini", 0.15, 0.60, 16_384),
    ("gpt-4.1", 2.00, 8.00, 32_768),
    ("gpt-4.1-mini", 0.40, 1.60, 32_768),
    ("gpt-4.1-nano", 0.10, 0.40, 32_768),
    ("o3", 2.00, 8.00, 100_000),
    ("o4-mini", 1.10, 4.40, 100_000),
    ("gpt-5", 1.25, 10.00, 128_000),
    ("gpt-5-mini", 0.25, 2.00, 128_000),
    ("claude-opus-4", 15.00, 75.00, 32_000),
    ("claude-opus-4-1", 15.00, 75.00, 32_000),
    ("claude-sonnet-4", 3.00, 15.00, 64_000),
    ("claude-sonnet-4-5", 3.00, 15.00, 64_000),
    ("claude-3-7-sonnet", 3.00, 15.00, 64_000),
    ("claude-3-5-sonnet", 3.00, 15.00, 8_192),
    ("claude-3-5-haiku", 0.80, 4.00, 8_192),
    ("claude-haiku-4-5", 1.00, 5.00, 64_000),
];

/// Token usage of one call, as the upstream reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The prices the gateway charges by.
#[derive(Debug, Clone)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

/// A model the table cannot price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no price for model {0:?}: add it to [[gateway.price]] in the server config")]
pub struct Unpriced(pub String);

impl PriceTable {
    /// The bundled list prices.
    pub fn bundled() -> PriceTable {
        let micros = |usd: f64| (usd * 1_000_000.0).round() as Micros;
        PriceTable {
            models: BUNDLED
                .iter()
                .map(|&(model, input, output, max_output_tokens)| {
                    let price = ModelPrice {
                        model: model.to_string(),
                        input_per_mtok: micros(input),
                        output_per_mtok: micros(output),
                        max_output_tokens,
                    };
                    (model.to_string(), price)
                })
                .collect(),
        }
    }

    /// The bundled table with `overrides` replacing or adding models.
    pub fn with_overrides(overrides: &[ModelPrice]) -> Result<PriceTable, String> {
        let mut table = PriceTable::bundled();
        for p in overrides {
            if p.model.is_empty() || p.input_per_mtok < 0 || p.output_per_mtok < 0 {
                return Err(format!(
                    "price for {:?}: a model name and non-negative prices are required",
                    p.model
                ));
            }
            if p.model.contains('*') {
                return Err(format!(
                    "price for {:?}: name a model, or a family whose `-…` variants it prices (\"claude-sonnet-4-5\" prices \"claude-sonnet-4-5-20250929\"); no wildcards",
                    p.model
                ));
            }
            table.models.insert(p.model.clone(), p.clone());
        }
        Ok(table)
    }

    /// The price of `model`: its exact entry, or the longest entry it extends with `-…`.
    pub fn lookup(&self, model: &str) -> Result<&ModelPrice, Unpriced> {
        if let Some(p) = self.models.get(model) {
            return Ok(p);
        }
        self.models
            .values()
            .filter(|p| {
                model
                    .strip_prefix(p.model.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|p| p.model.len())
            .ok_or_else(|| Unpriced(model.to_string()))
    }

    /// What `usage` of `model` costs, rounded up to the next micro-dollar.
    pub fn cost(&self, model: &str, usage: Usage) -> Result<Micros, Unpriced> {
        let p = self.lookup(model)?;
        Ok(charge(usage.input_tokens, p.input_per_mtok)
            .saturating_add(charge(usage.output_tokens, p.output_per_mtok)))
    }

    /// The most a call can cost: `input_bytes` bounds its input tokens (every token
    /// covers at least one byte of the request) and `max_output` its output
    /// (the model's ceiling when the request sets none).
    pub fn worst_case(
        &self,
        model: &str,
        input_bytes: u64,
        max_output: Option<u64>,
    ) -> Result<Micros, Unpriced> {
        let p = self.lookup(model)?;
        let output = max_output.unwrap_or(u64::from(p.max_output_tokens));
        self.cost(
            model,
            Usage {
                input_tokens: input_bytes,
                output_tokens: output,
            },
        )
    }
}

/// Parses an amount of US dollars (`5`, `0.25`, `$12.50`; at most six decimals) into
/// micro-dollars, without floating point.
pub fn parse_usd(text: &str) -> Result<Micros, String> {
    let t = text.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 6 {
        return Err(format!(
            "{text:?} is not an amount of dollars (write e.g. 5 or 0.25)"
        ));
    }
    let whole: Micros = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?
    };
    let frac: Micros = format!("{frac:0<6}").parse().expect("six digits");
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats micro-dollars as dollars (`$1.234567`, trailing zeros trimmed to cents).
pub fn format_usd(micros: Micros) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let frac = format!("{:06}", m % 1_000_000);
    let frac = frac.trim_end_matches('0');
    let frac = if frac.len() < 2 {
        &format!("{frac:0<2}")[..]
    } else {
        frac
    };
    format!("{sign}${}.{frac}", m / 1_000_000)
}

/// `tokens` at `per_mtok` micro-dollars per million, rounded up.
fn charge(tokens: u64, per_mtok: Micros) -> Micros {
    let total = u128::from(tokens) * per_mtok.max(0) as u128;
    let micros = total.div_ceil(1_000_000);
    Micros::try_from(micros).unwrap_or(Micros::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_variants_take_the_longest_prefix() {
        let t = PriceTable::bundled();
        assert_eq!(
            t.lookup("claude-sonnet-4-5-20250929").unwrap().model,
            "claude-sonnet-4-5"
        );
        assert_eq!(
            t.lookup("claude-sonnet-4-20250514").unwrap().model,
            "claude-sonnet-4"
        );
        assert_eq!(t.lookup("gpt-4o-2024-08-06").unwrap().model, "gpt-4o");
        assert_eq!(t.lookup("gpt-4o-mini").unwrap().model, "gpt-4o-mini");
        // A prefix must end at a dash: "gpt-4oX" is not gpt-4o.
        assert!(t.lookup("gpt-4oX").is_err());
        assert!(t.lookup("llama-3").is_err());
    }

    #[test]
    fn costs_round_up_and_never_overflow() {
        let t = PriceTable::bundled();
        // gpt-4o: $2.50 / $10 per million → 1,000 in + 500 out = 2,500 + 5,000 µ$.
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
        };
        assert_eq!(t.cost("gpt-4o", usage).unwrap(), 7_500);
        // One token of gpt-4o-mini input is 0.15 µ$ → charged 1.
        let one = Usage {
            input_tokens: 1,
            output_tokens: 0,
        };
        assert_eq!(t.cost("gpt-4o-mini", one).unwrap(), 1);
        let huge = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
        };
        assert_eq!(t.cost("claude-opus-4", huge).unwrap(), Micros::MAX);
    }

    #[test]
    fn worst_case_bounds_the_real_cost() {
        let t = PriceTable::bundled();
        let reserved = t
            .worst_case("claude-3-5-haiku", 4_000, Some(1_000))
            .unwrap();
        let actual = t
            .cost(
                "claude-3-5-haiku",
                Usage {
                    input_tokens: 900,
                    output_tokens: 1_000,
                },
            )
            .unwrap();
        assert!(actual <= reserved);
        // No output limit in the request: the model's ceiling is reserved.
        let open = t.worst_case("claude-3-5-haiku", 0, None).unwrap();
        assert_eq!(open, charge(8_192, 4_000_000));
    }

    #[test]
    fn dollars_parse_exactly() {
        assert_eq!(parse_usd("5"), Ok(5_000_000));
        assert_eq!(parse_usd("$0.25"), Ok(250_000));
        assert_eq!(parse_usd(".5"), Ok(500_000));
        assert_eq!(parse_usd("12.000001"), Ok(12_000_001));
        for bad in [
            "",
            ".",
            "-1",
            "1.2345678",
            "1e3",
            "abc",
            "99999999999999999",
        ] {
            assert!(parse_usd(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_usd(5_000_000), "$5.00");
        assert_eq!(format_usd(250_000), "$0.25");
        assert_eq!(format_usd(12_000_001), "$12.000001");
        assert_eq!(format_usd(-1_500_000), "-$1.50");
    }

    #[test]
    fn overrides_replace_and_add() {
        let local = ModelPrice {
            model: "llama-3.1-8b".into(),
            input_per_mtok: 0,
            output_per_mtok: 0,
            max_output_tokens: 4_096,
        };
        let cheaper = ModelPrice {
            model: "gpt-4o".into(),
            input_per_mtok: 1_000_000,
            output_per_mtok: 1_000_000,
            max_output_tokens: 16_384,
        };
        let t = PriceTable::with_overrides(&[local, cheaper]).unwrap();
        assert_eq!(t.lookup("llama-3.1-8b").unwrap().input_per_mtok, 0);
        assert_eq!(t.lookup("gpt-4o").unwrap().input_per_mtok, 1_000_000);
        let negative = ModelPrice {
            model: "x".into(),
            input_per_mtok: -1,
            output_per_mtok: 0,
            max_output_tokens: 1,
        };
        assert!(PriceTable::with_overrides(&[negative]).is_err());
        let wildcard = ModelPrice {
            model: "qwen*".into(),
            input_per_mtok: 0,
            output_per_mtok: 0,
            max_output_tokens: 1,
        };
        let error = PriceTable::with_overrides(&[wildcard]).unwrap_err();
        assert!(error.contains("no wildcards"), "{error}");
    }
}
