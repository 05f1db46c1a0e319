//! Which resources are healthy, unhealthy or not applicable in each control, kept up to date one
//! assessment change at a time.
//!
//! A resource's state in a control depends on all its assessments of that control's
//! recommendations, so it cannot be derived from one change alone. We therefore keep, per
//! (control, resource), a tally of statuses; a change moves the tally, and the control's counts
//! move only when the tally's state does. The stores keep the same two tables in SQL and call
//! [`step`] for each pair, so they cannot drift from [`recompute`].

use std::collections::BTreeMap;
use std::fmt;

/// An assessment's `status.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Healthy,
    Unhealthy,
    NotApplicable,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Healthy, Status::Unhealthy, Status::NotApplicable];

    /// The ARM spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "Healthy",
            Status::Unhealthy => "Unhealthy",
            Status::NotApplicable => "NotApplicable",
        }
    }

    /// The ARM spelling in any case (ARM compares enum values case-insensitively).
    #[must_use]
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's state within one control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceState {
    Healthy,
    Unhealthy,
    NotApplicable,
}

/// How many of one resource's counted assessments within one control have each status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResourceTally {
    pub healthy: i64,
    pub unhealthy: i64,
    pub not_applicable: i64,
}

impl ResourceTally {
    /// Any unhealthy → unhealthy; else any healthy → healthy; else any not applicable → not
    /// applicable; no assessment at all → not counted (`None`). Unhealthy wins because the score
    /// only moves once every recommendation on the resource is remediated.
    #[must_use]
    pub fn state(&self) -> Option<ResourceState> {
        if self.unhealthy > 0 {
            Some(ResourceState::Unhealthy)
        } else if self.healthy > 0 {
            Some(ResourceState::Healthy)
        } else if self.not_applicable > 0 {
            Some(ResourceState::NotApplicable)
        } else {
            None
        }
    }

    /// An assessment changes from `old` to `new` (`None`: absent). `old` must be what was
    /// applied before, or the tally goes negative.
    pub fn apply(&mut self, old: Option<Status>, new: Option<Status>) {
        if let Some(old) = old {
            *self.slot(old) -= 1;
        }
        if let Some(new) = new {
            *self.slot(new) += 1;
        }
        debug_assert!(
            self.healthy >= 0 && self.unhealthy >= 0 && self.not_applicable >= 0,
            "removed an assessment that was never applied: {self:?}"
        );
    }

    /// No assessment left: the row can be dropped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn slot(&mut self, status: Status) -> &mut i64 {
        match status {
            Status::Healthy => &mut self.healthy,
            Status::Unhealthy => &mut self.unhealthy,
            Status::NotApplicable => &mut self.not_applicable,
        }
    }
}

/// A control's resource counts h, u, na.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlCounts {
    pub healthy: i64,
    pub unhealthy: i64,
    pub not_applicable: i64,
}

impl ControlCounts {
    /// A resource's state in the control moves from `old` to `new` (`None`: not counted).
    pub fn transition(&mut self, old: Option<ResourceState>, new: Option<ResourceState>) {
        if let Some(old) = old {
            *self.slot(old) -= 1;
        }
        if let Some(new) = new {
            *self.slot(new) += 1;
        }
    }

    /// Whether any resource is counted; only then is the control listed.
    #[must_use]
    pub fn is_assessed(&self) -> bool {
        self.healthy + self.unhealthy + self.not_applicable > 0
    }

    fn slot(&mut self, state: ResourceState) -> &mut i64 {
        match state {
            ResourceState::Healthy => &mut self.healthy,
            ResourceState::Unhealthy => &mut self.unhealthy,
            ResourceState::NotApplicable => &mut self.not_applicable,
        }
    }
}

/// The whole update for one (control, resource) pair when one of the resource's assessments of
/// that control changes from `old` to `new`: the tally moves, then the control's counts follow the
/// resource's state from before to after.
pub fn step(
    tally: &mut ResourceTally,
    counts: &mut ControlCounts,
    old: Option<Status>,
    new: Option<Status>,
) {
    let before = tally.state();
    tally.apply(old, new);
    counts.transition(before, tally.state());
}

/// The maintained state, as the stores keep it: tallies per (control, resource) and counts per
/// control. Empty rows are dropped, so two states are equal exactly when they describe the same
/// assessments, whatever order the changes came in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Maintained {
    tallies: BTreeMap<(String, String), ResourceTally>,
    counts: BTreeMap<String, ControlCounts>,
}

impl Maintained {
    /// An assessment on `resource` counting toward `controls` changes from `old` to `new`
    /// (`None`: absent). An assessment that does not count (custom, preview) has no controls.
    /// `old` must be the status last applied for this assessment.
    pub fn apply(
        &mut self,
        resource: &str,
        controls: &[&str],
        old: Option<Status>,
        new: Option<Status>,
    ) {
        for &control in controls {
            // Take both rows out, step, and put back only what is not empty: the same
            // upsert-or-delete the stores do in SQL.
            let key = (control.to_owned(), resource.to_owned());
            let mut tally = self.tallies.remove(&key).unwrap_or_default();
            let mut counts = self.counts.remove(control).unwrap_or_default();
            step(&mut tally, &mut counts, old, new);
            if !tally.is_empty() {
                self.tallies.insert(key, tally);
            }
            if counts != ControlCounts::default() {
                self.counts.insert(control.to_owned(), counts);
            }
        }
    }

    /// Counts per control; controls with no counted resource are absent.
    #[must_use]
    pub fn counts(&self) -> &BTreeMap<String, ControlCounts> {
        &self.counts
    }

    /// Tallies per (control, resource), e.g. to list a control's unhealthy resources.
    #[must_use]
    pub fn tallies(&self) -> &BTreeMap<(String, String), ResourceTally> {
        &self.tallies
    }
}

/// Reference: the counts recomputed from scratch out of every current assessment
/// (resource, controls it counts toward, status). Deliberately shares nothing with the
/// incremental path but the state rule.
pub fn recompute<'a>(
    assessments: impl IntoIterator<Item = (&'a str, &'a [&'a str], Status)>,
) -> BTreeMap<String, ControlCounts> {
    let mut tallies: BTreeMap<(&str, &str), ResourceTally> = BTreeMap::new();
    for (resource, controls, status) in assessments {
        for &control in controls {
            let tally = tallies.entry((control, resource)).or_default();
            match status {
                Status::Healthy => tally.healthy += 1,
                Status::Unhealthy => tally.unhealthy += 1,
                Status::NotApplicable => tally.not_applicable += 1,
            }
        }
    }
    let mut counts: BTreeMap<String, ControlCounts> = BTreeMap::new();
    for ((control, _), tally) in tallies {
        let entry = counts.entry(control.to_owned()).or_default();
        match tally.state() {
            Some(ResourceState::Healthy) => entry.healthy += 1,
            Some(ResourceState::Unhealthy) => entry.unhealthy += 1,
            Some(ResourceState::NotApplicable) => entry.not_applicable += 1,
            None => unreachable!("every tally here holds at least one assessment"),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};

    #[test]
    fn status_parses_the_arm_spelling_in_any_case() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(Status::parse(&status.as_str().to_uppercase()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(Status::parse("notapplicable"), Some(Status::NotApplicable));
        assert_eq!(Status::parse("Not Applicable"), None);
        assert_eq!(Status::parse(""), None);
    }

    #[test]
    fn unhealthy_beats_healthy_beats_not_applicable() {
        let tally = |healthy, unhealthy, not_applicable| ResourceTally {
            healthy,
            unhealthy,
            not_applicable,
        };
        assert_eq!(tally(0, 0, 0).state(), None);
        assert_eq!(tally(0, 0, 2).state(), Some(ResourceState::NotApplicable));
        assert_eq!(tally(1, 0, 2).state(), Some(ResourceState::Healthy));
        assert_eq!(tally(5, 1, 2).state(), Some(ResourceState::Unhealthy));
    }

    #[test]
    fn control_counts_move_only_when_the_resource_state_does() {
        let (mut tally, mut counts) = (ResourceTally::default(), ControlCounts::default());
        step(&mut tally, &mut counts, None, Some(Status::Unhealthy));
        step(&mut tally, &mut counts, None, Some(Status::Unhealthy));
        assert_eq!((counts.healthy, counts.unhealthy), (0, 1));
        // One of two fixed: still unhealthy.
        step(&mut tally, &mut counts, Some(Status::Unhealthy), Some(Status::Healthy));
        assert_eq!((counts.healthy, counts.unhealthy), (0, 1));
        step(&mut tally, &mut counts, Some(Status::Unhealthy), Some(Status::Healthy));
        assert_eq!((counts.healthy, counts.unhealthy), (1, 0));
        step(&mut tally, &mut counts, Some(Status::Healthy), None);
        step(&mut tally, &mut counts, Some(Status::Healthy), None);
        assert!(tally.is_empty());
        assert!(!counts.is_assessed());
        assert_eq!(counts, ControlCounts::default());
    }

    // A small world so that random operations collide: replaces, repeats and deletes of
    // assessments that exist are frequent.
    const RESOURCES: [&str; 3] = ["vm0", "vm1", "vm2"];
    const CONTROLS: [&str; 4] = ["c0", "c1", "c2", "c3"];
    const RECOMMENDATIONS: usize = 4;

    /// Which controls each recommendation counts toward (1–3 of them; some overlap).
    fn catalogue() -> impl Strategy<Value = Vec<Vec<&'static str>>> {
        prop::collection::vec(subsequence(CONTROLS.to_vec(), 1..=3), RECOMMENDATIONS)
    }

    /// Put (create or replace) with `Some(status)`, delete with `None`.
    fn operations() -> impl Strategy<Value = Vec<(usize, usize, Option<Status>)>> {
        let change = prop_oneof![
            3 => select(Status::ALL.to_vec()).prop_map(Some),
            1 => Just(None),
        ];
        prop::collection::vec((0..RESOURCES.len(), 0..RECOMMENDATIONS, change), 0..60)
    }

    type Live = BTreeMap<(usize, usize), Status>;

    /// Applies the operations incrementally, tracking the live assessments alongside.
    fn run(catalogue: &[Vec<&str>], ops: &[(usize, usize, Option<Status>)]) -> (Maintained, Live) {
        let (mut state, mut live) = (Maintained::default(), Live::new());
        for &(resource, recommendation, new) in ops {
            let key = (resource, recommendation);
            let old = match new {
                Some(status) => live.insert(key, status),
                None => live.remove(&key),
            };
            state.apply(RESOURCES[resource], &catalogue[recommendation], old, new);
        }
        (state, live)
    }

    fn recompute_live(catalogue: &[Vec<&str>], live: &Live) -> BTreeMap<String, ControlCounts> {
        recompute(
            live.iter().map(|(&(r, a), &status)| (RESOURCES[r], catalogue[a].as_slice(), status)),
        )
    }

    proptest! {
        #[test]
        fn incremental_equals_recompute(catalogue in catalogue(), ops in operations()) {
            let (state, live) = run(&catalogue, &ops);
            prop_assert_eq!(state.counts(), &recompute_live(&catalogue, &live));
            for counts in state.counts().values() {
                prop_assert!(counts.is_assessed());
                prop_assert!(counts.healthy >= 0 && counts.unhealthy >= 0 && counts.not_applicable >= 0);
            }
            // The whole state, tallies included, depends only on the final assessments.
            let replay: Vec<_> = live.iter().map(|(&(r, a), &s)| (r, a, Some(s))).collect();
            prop_assert_eq!(&state, &run(&catalogue, &replay).0);
        }

        #[test]
        fn a_change_and_its_inverse_restore_the_state(
            catalogue in catalogue(),
            ops in operations(),
            resource in 0..RESOURCES.len(),
            recommendation in 0..RECOMMENDATIONS,
            new in proptest::option::of(select(Status::ALL.to_vec())),
        ) {
            let (state, live) = run(&catalogue, &ops);
            let old = live.get(&(resource, recommendation)).copied();
            let controls = &catalogue[recommendation];
            let mut changed = state.clone();
            changed.apply(RESOURCES[resource], controls, old, new);
            changed.apply(RESOURCES[resource], controls, new, old);
            prop_assert_eq!(changed, state);
        }
    }
}
