//! The scoring engine: the pure formulas of `docs/SCORING.md`, and nothing else.
//!
//! It owns every scoring decision, so that the HTTP layer and the stores never compute a number
//! themselves:
//! - which state a resource is in within a control, and how a control's resource counts follow
//!   one assessment change at a time ([`step`], [`Maintained`]), with [`recompute`] as the
//!   from-scratch reference the incremental path must always agree with;
//! - a control's score ([`control_score`]), a secure score ([`secure_score`]) and the
//!   multi-subscription extension ([`aggregate`]);
//! - the one rounding rule ([`round_dotnet`]).
//!
//! No I/O, no clock, only `std`: callers decide which assessments count (built-in, non-preview)
//! by passing an empty control list for the others.

mod formula;
mod rounding;
mod state;

pub use formula::{
    aggregate, control_score, secure_score, Aggregate, ControlScore, ScoreDetails, SecureScore,
};
pub use rounding::round_dotnet;
pub use state::{recompute, step, ControlCounts, Maintained, ResourceState, ResourceTally, Status};

// Exact float comparisons are the point: Azure's numbers must match to the bit.
#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    /// End to end: assessments → maintained counts → control scores → secure score, on a small
    /// estate, so the pieces are known to fit together the way the stores use them.
    #[test]
    fn assessments_to_secure_score() {
        const MFA: &str = "34a42fb3-e6db-409c-b56b-7b1db6b8aee0";
        const TRANSIT: &str = "0e55495e-034f-4abc-8293-767229250176";
        let catalogue = [(MFA, 10), (TRANSIT, 4)];

        let mut state = Maintained::default();
        // vm1 is healthy in both controls through one shared recommendation …
        state.apply("vm1", &[MFA, TRANSIT], None, Some(Status::Healthy));
        // … and vm2 becomes unhealthy in transit, then half remediated: one of its two
        // recommendations is still unhealthy, so it stays unhealthy in the control.
        state.apply("vm2", &[TRANSIT], None, Some(Status::Unhealthy));
        state.apply("vm2", &[TRANSIT], None, Some(Status::Unhealthy));
        state.apply("vm2", &[TRANSIT], Some(Status::Unhealthy), Some(Status::Healthy));

        let controls: Vec<ControlScore> =
            catalogue.iter().map(|&(id, max)| control_score(max, &state.counts()[id])).collect();
        let total = secure_score(&controls);
        assert_eq!(total.score.max, 14);
        assert_eq!(total.score.current, 12.0); // 10 + 4 × 1/2
        assert_eq!(total.score.percentage, 0.8571);
        assert_eq!(total.weight, 10 + 2 * 4);
    }
}
