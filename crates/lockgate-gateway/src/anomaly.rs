//! The spend-spike rule behind the anomaly freeze: an agent whose spend over the last
//! window is far above its own usual rate is frozen until a person looks.
//!
//! The usual rate is the agent's average spend per window over a longer baseline
//! period before it. A floor keeps new and quiet agents (baseline near zero) from
//! being frozen by their first few calls: a window must cost more than the floor to
//! count as a spike, whatever the baseline.

use crate::price::Micros;
use std::time::Duration;

/// When a window's spend is a spike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeRule {
    /// The window whose spend is judged (e.g. 10 minutes).
    pub window: Duration,
    /// The period before the window that sets the agent's usual rate (e.g. 24 hours).
    pub baseline: Duration,
    /// How many times the usual rate counts as a spike.
    pub factor: f64,
    /// A window never counts as a spike at or below this spend.
    pub floor: Micros,
}

impl SpikeRule {
    /// The spend above which a window is a spike, given what the agent spent over the
    /// baseline period before it.
    pub fn threshold(&self, baseline_spend: Micros) -> Micros {
        let windows = self.baseline.as_secs_f64() / self.window.as_secs_f64().max(1e-3);
        let usual = baseline_spend.max(0) as f64 / windows.max(1.0);
        let scaled = (usual * self.factor).min(Micros::MAX as f64) as Micros;
        scaled.max(self.floor)
    }

    /// Whether `window_spend` is a spike against `baseline_spend`.
    pub fn is_spike(&self, window_spend: Micros, baseline_spend: Micros) -> bool {
        window_spend > self.threshold(baseline_spend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> SpikeRule {
        SpikeRule {
            window: Duration::from_secs(600),
            baseline: Duration::from_secs(86_400),
            factor: 5.0,
            floor: 1_000_000,
        }
    }

    #[test]
    fn a_quiet_agent_is_judged_against_the_floor() {
        let r = rule();
        assert_eq!(r.threshold(0), 1_000_000);
        assert!(!r.is_spike(1_000_000, 0));
        assert!(r.is_spike(1_000_001, 0));
    }

    #[test]
    fn a_busy_agent_is_judged_against_its_own_rate() {
        let r = rule();
        // $144 over 24 h is $1 per 10 minutes; five times that is the threshold.
        assert_eq!(r.threshold(144_000_000), 5_000_000);
        assert!(!r.is_spike(5_000_000, 144_000_000));
        assert!(r.is_spike(5_000_001, 144_000_000));
        // The same window spend is a spike for a quieter agent.
        assert!(r.is_spike(5_000_001, 14_400_000));
    }

    #[test]
    fn the_threshold_never_falls_below_the_floor_or_overflows() {
        let r = rule();
        assert_eq!(r.threshold(-5), r.floor);
        assert_eq!(
            r.threshold(Micros::MAX),
            (Micros::MAX as f64 / 144.0 * 5.0) as Micros
        );
        let huge = SpikeRule { factor: 1e9, ..r };
        assert_eq!(huge.threshold(Micros::MAX), Micros::MAX);
        let odd = SpikeRule {
            window: Duration::from_secs(86_400 * 2),
            ..r
        };
        // A window longer than the baseline: the baseline counts as one window.
        assert_eq!(odd.threshold(10_000_000), 50_000_000);
    }
}
