//! Scores out of counts: a control, a secure score, and several subscriptions together.

// Counts and maxima are far below 2^53, where i64 → f64 is exact.
#![allow(clippy::cast_precision_loss)]

use super::rounding::round_dotnet;
use super::state::ControlCounts;

/// The `score` object of a control or a secure score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreDetails {
    pub max: i64,
    /// Rounded to 2 decimals.
    pub current: f64,
    /// In [0, 1], rounded to 4 decimals.
    pub percentage: f64,
}

impl ScoreDetails {
    /// Both kinds of score round `current` to 2 decimals and take the percentage of the
    /// **rounded** current (3.33 / 4 = 0.8325, as Azure shows, not 5/6).
    fn new(max: i64, current: f64) -> Self {
        let current = round_dotnet(current, 2);
        let percentage = if max > 0 { round_dotnet(current / max as f64, 4) } else { 0.0 };
        ScoreDetails { max, current, percentage }
    }
}

/// A `secureScoreControls` item's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlScore {
    pub score: ScoreDetails,
    /// h + u.
    pub weight: i64,
}

/// A control with definition maximum `max_score` (≥ 0) and resource counts h, u, na:
/// weight h + u; max `max_score` if h + u > 0, else 0; current round₂(max × h / (h + u)).
/// Not-applicable resources neither help nor hurt.
#[must_use]
pub fn control_score(max_score: i64, counts: &ControlCounts) -> ControlScore {
    let weight = counts.healthy + counts.unhealthy;
    if weight <= 0 {
        // Nothing applicable: the control is worth nothing, whatever its definition says.
        return ControlScore { score: ScoreDetails::new(0, 0.0), weight };
    }
    // In f64 so that large counts cannot overflow; below 2^53 the product is exact, leaving
    // one rounding in the division.
    let current = max_score as f64 * counts.healthy as f64 / weight as f64;
    ControlScore { score: ScoreDetails::new(max_score, current), weight }
}

/// A `secureScores` item's numbers (e.g. `ascScore`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecureScore {
    pub score: ScoreDetails,
    /// Σ control weight × control max.
    pub weight: i64,
}

/// A secure score over `controls`: current round₂(Σ current) (the controls' are already
/// rounded; this only removes float noise), max Σ max, percentage round₄(current / max), and
/// weight Σ (h + u) × max — undocumented by Microsoft, but the formula that reproduces every
/// recorded Azure value.
#[must_use]
pub fn secure_score<'a>(controls: impl IntoIterator<Item = &'a ControlScore>) -> SecureScore {
    let (mut current, mut max, mut weight) = (0.0, 0, 0);
    for control in controls {
        current += control.score.current;
        max += control.score.max;
        weight += control.weight * control.score.max;
    }
    SecureScore { score: ScoreDetails::new(max, current), weight }
}

/// Secure scores of several subscriptions together (extension API: what the portal shows for a
/// management group). Both published formulas, since they differ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    /// Microsoft's formula: round₄(Σ percentageᵢ × weightᵢ / Σ weightᵢ); 0 when Σ weightᵢ = 0.
    pub percentage: f64,
    /// The Resource Graph sample's: round₂(Σ round₂(wᵢ × currentᵢ / maxᵢ)) with wᵢ = weightᵢ,
    /// or 1 when weightᵢ = 0; a subscription with max 0 adds 0.
    pub weighted_current: f64,
    /// Σ weightᵢ.
    pub weight: i64,
    pub subscriptions: usize,
}

/// Aggregates the secure scores of several subscriptions; see [`Aggregate`] for the formulas.
#[must_use]
pub fn aggregate(scores: &[SecureScore]) -> Aggregate {
    let weight: i64 = scores.iter().map(|s| s.weight).sum();
    let weighted_percentage: f64 =
        scores.iter().map(|s| s.score.percentage * s.weight as f64).sum();
    let percentage =
        if weight > 0 { round_dotnet(weighted_percentage / weight as f64, 4) } else { 0.0 };
    let weighted_current = scores
        .iter()
        .filter(|s| s.score.max > 0)
        .map(|s| {
            let w = if s.weight == 0 { 1 } else { s.weight };
            round_dotnet(w as f64 * s.score.current / s.score.max as f64, 2)
        })
        .sum();
    Aggregate {
        percentage,
        weighted_current: round_dotnet(weighted_current, 2),
        weight,
        subscriptions: scores.len(),
    }
}

// Exact float comparisons are the point: Azure's numbers must match to the bit.
#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(healthy: i64, unhealthy: i64, not_applicable: i64) -> ControlCounts {
        ControlCounts { healthy, unhealthy, not_applicable }
    }

    /// (control, [h, u, na, definition max], (max, current, percentage, weight)).
    type Row = (&'static str, [i64; 4], (i64, f64, f64, i64));

    /// The worked example of SCORING.md, row by row.
    #[rustfmt::skip]
    const WORKED_EXAMPLE: [Row; 12] = [
        ("DDoS",                     [0, 0, 1, 2],  (0, 0.0, 0.0, 0)),
        ("MFA",                      [1, 0, 0, 10], (10, 10.0, 1.0, 1)),
        ("best practices",           [7, 0, 1, 0],  (0, 0.0, 0.0, 7)),
        ("enhanced security",        [0, 1, 0, 0],  (0, 0.0, 0.0, 1)),
        ("auditing and logging",     [1, 4, 0, 1],  (1, 0.2, 0.2, 5)),
        ("access and permissions",   [1, 1, 0, 4],  (4, 2.0, 0.5, 2)),
        ("security configurations",  [0, 1, 0, 4],  (4, 0.0, 0.0, 1)),
        ("endpoint protection",      [0, 1, 0, 2],  (2, 0.0, 0.0, 1)),
        ("system updates",           [0, 1, 0, 6],  (6, 0.0, 0.0, 1)),
        ("data in transit",          [5, 1, 0, 4],  (4, 3.33, 0.8325, 6)),
        ("network access",           [1, 0, 0, 4],  (4, 4.0, 1.0, 1)),
        ("encryption at rest",       [1, 0, 0, 4],  (4, 4.0, 1.0, 1)),
    ];

    #[test]
    fn worked_example() {
        let controls: Vec<ControlScore> = WORKED_EXAMPLE
            .iter()
            .map(|&(name, [h, u, na, max_score], (max, current, percentage, weight))| {
                let got = control_score(max_score, &counts(h, u, na));
                let want =
                    ControlScore { score: ScoreDetails { max, current, percentage }, weight };
                assert_eq!(got, want, "{name}");
                got
            })
            .collect();
        let asc = secure_score(&controls);
        assert_eq!(
            asc,
            SecureScore {
                score: ScoreDetails { max: 39, current: 23.53, percentage: 0.6033 },
                weight: 67,
            }
        );
    }

    #[test]
    fn percentage_is_of_the_rounded_current_rounded_half_to_even() {
        // Recorded in Azure: 8 × 16/17 = 7.5294… → 7.53, and 7.53 / 8 → 0.9412 (the scaled
        // double is exactly 9412.5 and goes to even; 16/17 itself would also give 0.9412, and
        // half-up on 0.94125 would give 0.9413).
        let ports = control_score(8, &counts(16, 1, 0));
        assert_eq!((ports.score.current, ports.score.percentage), (7.53, 0.9412));
        // 4 × 5/6 = 3.33, and 3.33 / 4 = 0.8325, not round₄(5/6) = 0.8333.
        let transit = control_score(4, &counts(5, 1, 0));
        assert_eq!((transit.score.current, transit.score.percentage), (3.33, 0.8325));
    }

    #[test]
    fn no_controls_and_no_subscriptions_score_zero() {
        let empty = secure_score(&[]);
        assert_eq!((empty.score.max, empty.score.current, empty.weight), (0, 0.0, 0));
        assert_eq!(empty.score.percentage, 0.0);
        let none = aggregate(&[]);
        assert_eq!(
            (none.percentage, none.weighted_current, none.weight, none.subscriptions),
            (0.0, 0.0, 0, 0)
        );
    }

    fn secure(max: i64, current: f64, percentage: f64, weight: i64) -> SecureScore {
        SecureScore { score: ScoreDetails { max, current, percentage }, weight }
    }

    #[test]
    fn aggregate_formulas() {
        let scores = [
            secure(39, 23.53, 0.6033, 67),
            secure(10, 5.0, 0.5, 33),
            // An unassessed subscription: weight 0, ignored by Microsoft's formula, counted with
            // weight 1 by the Resource Graph sample, which adds nothing since its max is 0.
            secure(0, 0.0, 0.0, 0),
            // Weight 0 with max > 0: `secure_score` never yields it (its weight is 0 only when
            // its max is), but the sample's rule applies to any input: 1 × current / max.
            secure(4, 2.0, 0.5, 0),
        ];
        let agg = aggregate(&scores);
        // (0.6033 × 67 + 0.5 × 33) / 100 = 0.569211
        assert_eq!(agg.percentage, 0.5692);
        // round₂(67 × 23.53 / 39) = 40.42, round₂(33 × 5 / 10) = 16.5, round₂(1 × 2 / 4) = 0.5
        assert_eq!(agg.weighted_current, 57.42);
        assert_eq!(agg.weight, 100);
        assert_eq!(agg.subscriptions, 4);
    }

    fn has_decimals(x: f64, digits: u32) -> bool {
        round_dotnet(x, digits) == x
    }

    fn control() -> impl Strategy<Value = ControlScore> {
        (0i64..=20, 0i64..=10_000, 0i64..=10_000, 0i64..=10_000)
            .prop_map(|(max, h, u, na)| control_score(max, &counts(h, u, na)))
    }

    proptest! {
        #[test]
        fn control_bounds(max_score in 0i64..=100, h in 0i64..=100_000, u in 0i64..=100_000, na in 0i64..=100_000) {
            let c = control_score(max_score, &counts(h, u, na));
            let s = c.score;
            prop_assert_eq!(c.weight, h + u);
            prop_assert_eq!(s.max, if h + u > 0 { max_score } else { 0 });
            prop_assert!(0.0 <= s.current && s.current <= s.max as f64);
            prop_assert!((0.0..=1.0).contains(&s.percentage));
            prop_assert!(has_decimals(s.current, 2) && has_decimals(s.percentage, 4));
            // All healthy is full marks; none healthy is zero.
            if h + u > 0 && u == 0 { prop_assert_eq!(s.current, max_score as f64); }
            if h == 0 { prop_assert_eq!(s.current, 0.0); }
            // Not-applicable resources never move the score.
            prop_assert_eq!(c, control_score(max_score, &counts(h, u, 0)));
        }

        #[test]
        fn secure_score_sums_its_controls(controls in prop::collection::vec(control(), 0..20)) {
            let total = secure_score(&controls);
            let s = total.score;
            prop_assert_eq!(s.max, controls.iter().map(|c| c.score.max).sum::<i64>());
            prop_assert_eq!(total.weight, controls.iter().map(|c| c.weight * c.score.max).sum::<i64>());
            prop_assert_eq!(s.current, round_dotnet(controls.iter().map(|c| c.score.current).sum(), 2));
            prop_assert!(total.weight >= 0);
            prop_assert!(0.0 <= s.current && s.current <= s.max as f64);
            prop_assert!((0.0..=1.0).contains(&s.percentage));
            prop_assert!(has_decimals(s.current, 2) && has_decimals(s.percentage, 4));
            // The order controls come in does not matter.
            prop_assert_eq!(total, secure_score(controls.iter().rev()));
        }

        #[test]
        fn aggregate_bounds(groups in prop::collection::vec(prop::collection::vec(control(), 0..8), 0..6)) {
            let scores: Vec<SecureScore> = groups.iter().map(secure_score).collect();
            let agg = aggregate(&scores);
            prop_assert_eq!(agg.subscriptions, scores.len());
            prop_assert!((0.0..=1.0).contains(&agg.percentage));
            prop_assert!(has_decimals(agg.percentage, 4) && has_decimals(agg.weighted_current, 2));
            prop_assert!(agg.weighted_current >= 0.0);
            // One subscription that carries weight aggregates to itself.
            if let [only] = scores.as_slice() {
                if only.weight > 0 {
                    prop_assert_eq!(agg.percentage, only.score.percentage);
                }
            }
        }
    }
}
