//! Counters you can trust: this module owns checking the maintained state against the
//! assessments it was derived from, and rewriting it.
//!
//! - [`Store::verify`] runs the engine's integrity check, then recomputes every subscription's
//!   resource tallies, per-control counters and current secure score from its assessments and
//!   lists what differs from the maintained tables and the last history point.
//! - [`Store::repair`] does the same in one write transaction and rewrites what differs (appending
//!   a history point marked `repair` when the last one is wrong), bumping the generation so that
//!   running servers drop their cached views.
//! - On open ([`Store::open`]), when the built-in catalogue is not the one the counters were
//!   computed with (its version is kept in `meta`), every subscription is rebuilt and gets a
//!   history point marked `catalogChange`.
//!
//! What to compare and what to write is decided here ([`derive`], [`compare`], [`plan`]); the
//! engine (`store::sql::verify`, for both SQL engines) only reads a consistent snapshot and applies the
//! decision, inside one transaction.

use anyhow::Result;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, SecureScore, Status};

/// The `meta` key holding the catalogue version the counters were computed with.
pub(crate) const CATALOG_VERSION_KEY: &str = "catalog_version";

/// Three counters (a control's resources, or one resource's assessments within a control).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub healthy: i64,
    pub unhealthy: i64,
    pub not_applicable: i64,
}

impl From<ControlCounts> for Counters {
    fn from(c: ControlCounts) -> Self {
        Counters { healthy: c.healthy, unhealthy: c.unhealthy, not_applicable: c.not_applicable }
    }
}

impl From<ResourceTally> for Counters {
    fn from(t: ResourceTally) -> Self {
        Counters { healthy: t.healthy, unhealthy: t.unhealthy, not_applicable: t.not_applicable }
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "healthy {}, unhealthy {}, not applicable {}",
            self.healthy, self.unhealthy, self.not_applicable
        )
    }
}

/// A secure score as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedScore {
    pub current: f64,
    pub max: i64,
    pub percentage: f64,
    pub weight: i64,
}

impl From<SecureScore> for RecordedScore {
    fn from(s: SecureScore) -> Self {
        RecordedScore {
            current: s.score.current,
            max: s.score.max,
            percentage: s.score.percentage,
            weight: s.weight,
        }
    }
}

impl fmt::Display for RecordedScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({:.2}%), weight {}",
            self.current,
            self.max,
            self.percentage * 100.0,
            self.weight
        )
    }
}

/// One difference between the maintained state and the state recomputed from the assessments.
/// `None` on either side: no row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Mismatch {
    /// The counters were computed with another built-in catalogue (or none was recorded).
    #[serde(rename_all = "camelCase")]
    Catalog { recorded: Option<String>, builtin: String },
    /// A control's resource counts.
    #[serde(rename_all = "camelCase")]
    Counts {
        subscription: Uuid,
        control: String,
        stored: Option<Counters>,
        recomputed: Option<Counters>,
    },
    /// The per-resource tallies of a control: how many differ, and the first one.
    #[serde(rename_all = "camelCase")]
    Tallies {
        subscription: Uuid,
        control: String,
        resources: usize,
        resource: String,
        stored: Option<Counters>,
        recomputed: Option<Counters>,
    },
    /// A control's resource counts within one resource group (`store::management_groups`).
    #[serde(rename_all = "camelCase")]
    ResourceGroupCounts {
        subscription: Uuid,
        resource_group: String,
        control: String,
        stored: Option<Counters>,
        recomputed: Option<Counters>,
    },
    /// The last history point is not the score of the recomputed counters.
    #[serde(rename_all = "camelCase")]
    History { subscription: Uuid, stored: Option<RecordedScore>, recomputed: RecordedScore },
}

/// The catalogue version recorded in the store and the one built in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogVersions {
    pub recorded: Option<String>,
    pub builtin: String,
}

/// What [`Store::verify`] found, or what [`Store::repair`] changed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Damage the engine's integrity check found (SQLite: `PRAGMA integrity_check`); empty when
    /// the database is sound.
    pub integrity: Vec<String>,
    /// False when damage kept the counters from being checked.
    pub counters_checked: bool,
    pub catalog: CatalogVersions,
    pub subscriptions: usize,
    /// Verify: every difference. Repair: every difference that was rewritten.
    pub mismatches: Vec<Mismatch>,
    /// Repair only: whether a rewrite was committed.
    pub repaired: bool,
    /// Repair only: the subscriptions that got a new history point.
    pub history_points_added: Vec<Uuid>,
}

impl VerifyReport {
    /// Sound and in step: nothing to report.
    pub fn is_clean(&self) -> bool {
        self.integrity.is_empty() && self.mismatches.is_empty()
    }
}

/// How far [`MaintenanceEngine::reconcile`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconcile {
    /// Read only, in one read transaction.
    Check,
    /// Rewrite what differs, in one write transaction.
    Repair,
    /// On open: nothing when the recorded catalogue is the built-in one; otherwise rebuild every
    /// subscription and record the version.
    Catalog,
}

pub(crate) struct Reconciled {
    pub(super) recorded_catalog: Option<String>,
    pub(super) subscriptions: usize,
    pub(super) mismatches: Vec<Mismatch>,
    pub(super) history_points: Vec<Uuid>,
    pub(super) committed: bool,
}

/// What the engine maintains for one subscription, read together with its assessments.
pub(crate) struct Snapshot {
    /// (resource key, assessment name key, status) of every assessment.
    pub(super) statuses: Vec<(String, String, Status)>,
    /// (control, resource key) → tally.
    pub(super) tallies: BTreeMap<(String, String), ResourceTally>,
    pub(super) counts: BTreeMap<String, ControlCounts>,
    pub(super) last: Option<RecordedScore>,
}

/// The maintained state as it should be, recomputed from the assessments alone.
pub(crate) struct Derived {
    pub(super) tallies: BTreeMap<(String, String), ResourceTally>,
    pub(super) counts: BTreeMap<String, ControlCounts>,
    pub(super) score: SecureScore,
}

/// Recompute a subscription's state from its assessments with the built-in catalogue. The counts
/// come from the scoring engine's reference (`score::recompute`), not from the tallies, so the
/// two checks do not share a mistake.
pub(crate) fn derive(statuses: &[(String, String, Status)]) -> Derived {
    let cat = catalog::builtin();
    let mut tallies: BTreeMap<(String, String), ResourceTally> = BTreeMap::new();
    let items: Vec<(&str, Vec<&str>, Status)> = statuses
        .iter()
        .map(|(resource, name, status)| {
            let controls: Vec<&str> =
                cat.scored_controls(name).iter().map(String::as_str).collect();
            for control in &controls {
                tallies
                    .entry(((*control).to_owned(), resource.clone()))
                    .or_default()
                    .apply(None, Some(*status));
            }
            (resource.as_str(), controls, *status)
        })
        .collect();
    let counts = score::recompute(items.iter().map(|(r, c, s)| (*r, c.as_slice(), *s)));
    let controls: Vec<_> =
        counts.iter().map(|(control, c)| score::control_score(cat.max_score(control), c)).collect();
    let score = score::secure_score(controls.iter());
    Derived { tallies, counts, score }
}

/// Every difference between what was maintained and what the assessments give.
pub(crate) fn compare(subscription: Uuid, stored: &Snapshot, derived: &Derived) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let controls: std::collections::BTreeSet<&String> =
        stored.counts.keys().chain(derived.counts.keys()).collect();
    for control in controls {
        let (s, d) = (stored.counts.get(control), derived.counts.get(control));
        if s != d {
            out.push(Mismatch::Counts {
                subscription,
                control: control.clone(),
                stored: s.copied().map(Into::into),
                recomputed: d.copied().map(Into::into),
            });
        }
    }
    // Tallies, grouped per control so that one drifted control is one line, not thousands.
    let keys: std::collections::BTreeSet<&(String, String)> =
        stored.tallies.keys().chain(derived.tallies.keys()).collect();
    let mut per_control: BTreeMap<&str, Mismatch> = BTreeMap::new();
    for key in keys {
        let (s, d) = (stored.tallies.get(key), derived.tallies.get(key));
        if s == d {
            continue;
        }
        per_control
            .entry(key.0.as_str())
            .and_modify(|m| {
                if let Mismatch::Tallies { resources, .. } = m {
                    *resources += 1;
                }
            })
            .or_insert_with(|| Mismatch::Tallies {
                subscription,
                control: key.0.clone(),
                resources: 1,
                resource: key.1.clone(),
                stored: s.copied().map(Into::into),
                recomputed: d.copied().map(Into::into),
            });
    }
    out.extend(per_control.into_values());
    // A subscription that never had a scored assessment has no history, and needs none.
    let recomputed = RecordedScore::from(derived.score);
    let history_ok = match stored.last {
        Some(last) => last == recomputed,
        None => derived.counts.is_empty(),
    };
    if !history_ok {
        out.push(Mismatch::History { subscription, stored: stored.last, recomputed });
    }
    out
}

/// What to write for one subscription.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(super) rewrite_counters: bool,
    pub(super) history_point: Option<HistoryReason>,
}

/// Decide what a reconciliation writes for one subscription, given what [`compare`] found.
pub(crate) fn plan(
    mode: Reconcile,
    catalog_changed: bool,
    stored: &Snapshot,
    derived: &Derived,
    found: &[Mismatch],
) -> Plan {
    if mode == Reconcile::Check {
        return Plan { rewrite_counters: false, history_point: None };
    }
    let history_wrong = found.iter().any(|m| matches!(m, Mismatch::History { .. }));
    let counters_wrong = found.len() > usize::from(history_wrong);
    // A catalogue change marks every subscription that has a score to mark (not one that never
    // had a scored assessment), even when its score did not move.
    let scored = stored.last.is_some() || !derived.counts.is_empty();
    Plan {
        rewrite_counters: counters_wrong || mode == Reconcile::Catalog,
        history_point: (history_wrong || (catalog_changed && scored)).then_some(
            if catalog_changed { HistoryReason::CatalogChange } else { HistoryReason::Repair },
        ),
    }
}

/// Why a history point was recorded without an assessment write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryReason {
    /// The counters were rebuilt for another version of the built-in catalogue.
    CatalogChange,
    /// `securescore verify --repair` rewrote counters that had drifted from the assessments.
    Repair,
    /// An exemption began or ended (created, replaced, deleted or expired).
    Exemption,
}

impl HistoryReason {
    /// The stored and shown spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryReason::CatalogChange => "catalogChange",
            HistoryReason::Repair => "repair",
            HistoryReason::Exemption => "exemption",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "catalogChange" => Ok(HistoryReason::CatalogChange),
            "repair" => Ok(HistoryReason::Repair),
            "exemption" => Ok(HistoryReason::Exemption),
            other => anyhow::bail!("stored history reason '{other}' is not a reason"),
        }
    }
}

#[async_trait]
pub(crate) trait MaintenanceEngine: Send + Sync + 'static {
    /// Damage found by the engine's full integrity check; empty when the database is sound.
    async fn integrity_check(&self) -> Result<Vec<String>>;
    /// Compare (and, per `mode`, rewrite) every subscription's maintained state in one
    /// transaction, with the decisions of [`derive`] and [`compare`].
    async fn reconcile(&self, mode: Reconcile, now: OffsetDateTime) -> Result<Reconciled>;
}

impl Store {
    /// Check the store: integrity, then every subscription's counters and last history point.
    /// Read only; safe while a server runs on the same data.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.check(Reconcile::Check).await
    }

    /// Rewrite whatever [`Store::verify`] would report, in one write transaction; refuses (reports
    /// without changing anything) when the integrity check finds damage.
    pub async fn repair(&self) -> Result<VerifyReport> {
        let report = self.check(Reconcile::Repair).await?;
        if report.repaired {
            self.invalidate_all();
        }
        Ok(report)
    }

    /// Rebuild the counters when the built-in catalogue is not the one they were computed with.
    pub(super) async fn adopt_catalog(&self) -> Result<()> {
        let done = self.engine().reconcile(Reconcile::Catalog, OffsetDateTime::now_utc()).await?;
        if done.committed {
            self.invalidate_all();
            if done.subscriptions > 0 {
                tracing::info!(
                    subscriptions = done.subscriptions,
                    previous = done.recorded_catalog.as_deref().unwrap_or("none recorded"),
                    catalog = catalog::version(),
                    "rebuilt the counters for the built-in catalogue"
                );
            }
        }
        Ok(())
    }

    async fn check(&self, mode: Reconcile) -> Result<VerifyReport> {
        // A check that cannot even run is damage too (e.g. "file is not a database").
        let integrity = match self.engine().integrity_check().await {
            Ok(problems) => problems,
            Err(e) => vec![format!("the integrity check failed: {e:#}")],
        };
        let mut report = VerifyReport {
            integrity,
            counters_checked: false,
            catalog: CatalogVersions { recorded: None, builtin: catalog::version().to_owned() },
            subscriptions: 0,
            mismatches: Vec::new(),
            repaired: false,
            history_points_added: Vec::new(),
        };
        if !report.integrity.is_empty() {
            return Ok(report);
        }
        let done = self.engine().reconcile(mode, OffsetDateTime::now_utc()).await?;
        report.counters_checked = true;
        report.catalog.recorded = done.recorded_catalog;
        report.subscriptions = done.subscriptions;
        report.mismatches = done.mismatches;
        report.repaired = done.committed;
        report.history_points_added = done.history_points;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "21300918-b2e3-0346-785f-c77ff57d243b"; // endpoint protection only

    fn statuses(items: &[(&str, &str, Status)]) -> Vec<(String, String, Status)> {
        items.iter().map(|(r, n, s)| ((*r).to_owned(), (*n).to_owned(), *s)).collect()
    }

    fn snapshot_of(derived: &Derived) -> Snapshot {
        Snapshot {
            statuses: Vec::new(),
            tallies: derived.tallies.clone(),
            counts: derived.counts.clone(),
            last: (!derived.counts.is_empty()).then(|| derived.score.into()),
        }
    }

    #[test]
    fn the_derived_state_agrees_with_itself() {
        let s = statuses(&[
            ("/subscriptions/x/vm1", EP, Status::Healthy),
            ("/subscriptions/x/vm2", EP, Status::Unhealthy),
            ("/subscriptions/x/vm3", "00000000-0000-0000-0000-000000000000", Status::Healthy),
        ]);
        let d = derive(&s);
        assert_eq!(d.tallies.len(), 2, "the unknown assessment counts toward nothing");
        assert_eq!(d.counts.values().map(|c| c.healthy + c.unhealthy).sum::<i64>(), 2);
        assert!(compare(Uuid::nil(), &snapshot_of(&d), &d).is_empty());
    }

    #[test]
    fn every_kind_of_drift_is_reported() {
        let d = derive(&statuses(&[("/subscriptions/x/vm1", EP, Status::Unhealthy)]));
        let mut drifted = snapshot_of(&d);
        let control = d.counts.keys().next().expect("one control").clone();
        drifted.counts.insert(control.clone(), ControlCounts { healthy: 1, ..Default::default() });
        for t in drifted.tallies.values_mut() {
            *t = ResourceTally { healthy: 1, ..Default::default() };
        }
        drifted.last = None;
        let found = compare(Uuid::nil(), &drifted, &d);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(matches!(&found[0], Mismatch::Counts { control: c, .. } if *c == control));
        assert!(matches!(&found[1], Mismatch::Tallies { resources: 1, .. }));
        assert!(matches!(&found[2], Mismatch::History { stored: None, .. }));
    }

    #[test]
    fn the_plan_writes_only_what_differs_and_marks_why() {
        let d = derive(&statuses(&[("/subscriptions/x/vm1", EP, Status::Unhealthy)]));
        let ok = snapshot_of(&d);
        let plan_for = |mode, catalog_changed, stored: &Snapshot| {
            plan(mode, catalog_changed, stored, &d, &compare(Uuid::nil(), stored, &d))
        };
        let nothing = Plan { rewrite_counters: false, history_point: None };
        assert_eq!(plan_for(Reconcile::Repair, false, &ok), nothing);
        let mut wrong_history = snapshot_of(&d);
        wrong_history.last = None;
        assert_eq!(plan_for(Reconcile::Check, false, &wrong_history), nothing);
        assert_eq!(
            plan_for(Reconcile::Repair, false, &wrong_history),
            Plan { rewrite_counters: false, history_point: Some(HistoryReason::Repair) }
        );
        let mut wrong_counts = snapshot_of(&d);
        wrong_counts.counts.clear();
        assert_eq!(
            plan_for(Reconcile::Repair, false, &wrong_counts),
            Plan { rewrite_counters: true, history_point: None }
        );
        assert_eq!(
            plan_for(Reconcile::Catalog, true, &ok),
            Plan { rewrite_counters: true, history_point: Some(HistoryReason::CatalogChange) }
        );
        let never_scored = derive(&[]);
        let empty = snapshot_of(&never_scored);
        assert_eq!(
            plan(Reconcile::Catalog, true, &empty, &never_scored, &[]).history_point,
            None,
            "nothing to mark"
        );
    }

    #[test]
    fn history_reasons_round_trip() {
        for r in [HistoryReason::CatalogChange, HistoryReason::Repair, HistoryReason::Exemption] {
            assert_eq!(HistoryReason::parse(r.as_str()).unwrap(), r);
        }
        assert!(HistoryReason::parse("other").is_err());
    }

    #[test]
    fn no_history_is_fine_without_scored_assessments() {
        let d = derive(&[]);
        let empty = Snapshot {
            statuses: Vec::new(),
            tallies: BTreeMap::new(),
            counts: BTreeMap::new(),
            last: None,
        };
        assert!(compare(Uuid::nil(), &empty, &d).is_empty());
    }
}

#[cfg(test)]
mod properties {
    use super::super::{AssessmentInput, StoreConfig, Write};
    use super::*;
    use crate::arm::ResourceId;
    use proptest::prelude::*;

    const NAMES: [&str; 3] = [
        "21300918-b2e3-0346-785f-c77ff57d243b",
        "08e628db-e2ed-4793-bc91-d13e684401c3", // in five controls
        "00000000-0000-0000-0000-000000000001",
    ];

    fn op() -> impl Strategy<Value = (usize, usize, Option<Status>)> {
        let status = prop_oneof![
            Just(None),
            Just(Some(Status::Healthy)),
            Just(Some(Status::Unhealthy)),
            Just(Some(Status::NotApplicable)),
        ];
        (0..3usize, 0..NAMES.len(), status)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the writes, the maintained state verifies clean: no false alarms.
        #[test]
        fn any_write_sequence_verifies_clean(batches in prop::collection::vec(prop::collection::vec(op(), 1..6), 0..6)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let report = rt.block_on(async {
                let store = Store::open(&StoreConfig::Memory).await.unwrap();
                let id = Uuid::new_v4();
                store
                    .put_subscription(&super::super::Subscription {
                        id,
                        display_name: "p".into(),
                        tenant_id: Uuid::nil(),
                        state: "Enabled".into(),
                    })
                    .await
                    .unwrap();
                for batch in &batches {
                    let writes: Vec<Write> = batch
                        .iter()
                        .map(|&(vm, name, status)| {
                            let resource = ResourceId::parse(&format!(
                                "/subscriptions/{id}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{vm}"
                            ))
                            .unwrap();
                            match status {
                                None => Write::Delete { resource, name: NAMES[name].into() },
                                Some(status) => Write::Put(AssessmentInput {
                                    resource,
                                    name: NAMES[name].into(),
                                    status,
                                    cause: None,
                                    description: None,
                                    resource_details: serde_json::json!({"source": "Azure"}),
                                    additional_data: None,
                                    partner_name: None,
                                }),
                            }
                        })
                        .collect();
                    store.apply(&writes).await.unwrap();
                }
                store.verify().await.unwrap()
            });
            prop_assert!(report.is_clean(), "{:?}", report);
        }
    }

    /// A step of the exemption property: an assessment write (`None`: delete), or an exemption
    /// of one assessment name put on a scope (0: subscription, 1: the group, 2+: a VM) or removed.
    #[derive(Debug, Clone)]
    enum Step {
        Write(usize, usize, Option<Status>),
        Exempt { slot: usize, scope: usize, name: usize },
        Unexempt(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => op().prop_map(|(vm, name, status)| Step::Write(vm, name, status)),
            1 => (0..3usize, 0..5usize, 0..NAMES.len())
                .prop_map(|(slot, scope, name)| Step::Exempt { slot, scope, name }),
            1 => (0..3usize).prop_map(Step::Unexempt),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the writes and exemptions, the maintained counters equal a recomputation
        /// from the effective statuses (`verify` is clean), and removing every exemption leaves
        /// the counters of the stored statuses.
        #[test]
        fn writes_and_exemptions_keep_counters_equal_to_a_recomputation(steps in prop::collection::vec(step(), 1..14)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (during, after) = rt.block_on(async {
                let store = Store::open(&StoreConfig::Memory).await.unwrap();
                let id = Uuid::new_v4();
                store
                    .put_subscription(&super::super::Subscription {
                        id,
                        display_name: "p".into(),
                        tenant_id: Uuid::nil(),
                        state: "Enabled".into(),
                    })
                    .await
                    .unwrap();
                let group = format!("/subscriptions/{id}/resourceGroups/rg");
                let vm = |n: usize| format!("{group}/providers/Microsoft.Compute/virtualMachines/vm{n}");
                let now = OffsetDateTime::now_utc();
                for s in &steps {
                    match *s {
                        Step::Write(n, name, status) => {
                            let resource = ResourceId::parse(&vm(n)).unwrap();
                            let write = match status {
                                None => Write::Delete { resource, name: NAMES[name].into() },
                                Some(status) => Write::Put(AssessmentInput {
                                    resource,
                                    name: NAMES[name].into(),
                                    status,
                                    cause: None,
                                    description: None,
                                    resource_details: serde_json::json!({"source": "Azure"}),
                                    additional_data: None,
                                    partner_name: None,
                                }),
                            };
                            store.apply(&[write]).await.unwrap();
                        }
                        Step::Exempt { slot, scope, name } => {
                            let scope = match scope {
                                0 => format!("/subscriptions/{id}"),
                                1 => group.clone(),
                                n => vm(n - 2),
                            };
                            let e = super::super::Exemption {
                                name: format!("e{slot}"),
                                scope: crate::arm::AnyScope::Arm(ResourceId::parse(&scope).unwrap()),
                                assessment: NAMES[name].into(),
                                category: super::super::Category::Waiver,
                                expires_on: None,
                                description: "p".into(),
                                created_at: now,
                                updated_at: now,
                                active: true,
                            };
                            store.put_exemption(&e).await.unwrap();
                        }
                        Step::Unexempt(slot) => {
                            store.delete_exemption(&format!("e{slot}")).await.unwrap();
                        }
                    }
                }
                let during = store.verify().await.unwrap();
                for slot in 0..3 {
                    store.delete_exemption(&format!("e{slot}")).await.unwrap();
                }
                (during, store.verify().await.unwrap())
            });
            prop_assert!(during.is_clean(), "{:?}", during);
            prop_assert!(after.is_clean(), "{:?}", after);
        }
    }
}
