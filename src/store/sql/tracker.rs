//! The write hooks of issue 11, for either SQL engine: within one write transaction, [`Tracker`]
//! steps the counters with *effective* statuses (`store::exemptions`) and appends every status
//! transition, with the secure score before and after it, to `status_changes`. `apply` makes one
//! call per assessment write ([`Tracker::write`]); exemption changes re-step through the same
//! tracker (`sql::exemptions`). The one place counters step ([`step`], around `score::step`)
//! and history points are recorded ([`record_history_because`]).

use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

use super::{query, query_as, WriteTx};
use crate::arm::format_time;
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, ScoreDetails, Status};
use crate::store::changes::ChangeCause;
use crate::store::engine::HistoryReason;
use crate::store::exemptions::{effective_status, exempting, ExemptionRule};
use crate::store::rows::{ControlCountsRow, CountsRow, ScoreRow};

/// One assessment write as `apply` sees it: stored statuses before and after (`None`: absent).
pub(in crate::store) struct Written<'a> {
    pub subscription: &'a str,
    pub resource_key: &'a str,
    /// Casing of the assessment's first write.
    pub resource_id: &'a str,
    pub name_key: &'a str,
    pub name: &'a str,
    pub old: Option<Status>,
    pub new: Option<Status>,
}

/// Per write transaction: each touched subscription's control counts and secure score as the
/// transaction moves them (so the score before and after each transition costs no query, and is
/// recomputed only when counts move), and its active exemptions (which an assessment write cannot
/// change).
#[derive(Default)]
pub(in crate::store) struct Tracker {
    subscriptions: HashMap<String, Tracked>,
    rules: HashMap<String, Vec<ExemptionRule>>,
}

/// One subscription's counters within a transaction: control → (its maximum, its counts).
struct Tracked {
    controls: BTreeMap<String, (i64, ControlCounts)>,
    score: ScoreDetails,
}

impl Tracked {
    fn rescore(&mut self) {
        let controls: Vec<_> =
            self.controls.values().map(|(max, c)| score::control_score(*max, c)).collect();
        self.score = score::secure_score(controls.iter()).score;
    }
}

impl Tracker {
    /// Step the counters of one assessment write from its old to its new effective status, and
    /// log the stored transition. Nothing happens when the stored status did not change.
    pub(in crate::store) async fn write(
        &mut self,
        tx: &mut impl WriteTx,
        w: Written<'_>,
        now: OffsetDateTime,
    ) -> Result<()> {
        if w.old == w.new {
            return Ok(());
        }
        if !self.rules.contains_key(w.subscription) {
            let rules = super::exemption_rows::active_rules(tx, w.subscription).await?;
            self.rules.insert(w.subscription.to_owned(), rules);
        }
        let exempt = self
            .rules
            .get(w.subscription)
            .is_some_and(|r| exempting(r, w.resource_key, w.name_key).is_some());
        let (old, new) = (effective_status(w.old, exempt), effective_status(w.new, exempt));
        let before = self.score(tx, w.subscription).await?;
        if old != new {
            self.step_all(tx, w.subscription, w.name_key, w.resource_key, old, new).await?;
        }
        let change = Change {
            resource_id: w.resource_id,
            assessment: w.name,
            old: w.old,
            new: w.new,
            cause: None,
        };
        self.record(tx, w.subscription, &change, before, now).await
    }

    /// Step every control the assessment counts toward, keeping this tracker's counts in step.
    pub(in crate::store) async fn step_all(
        &mut self,
        tx: &mut impl WriteTx,
        subscription: &str,
        name_key: &str,
        resource_key: &str,
        old: Option<Status>,
        new: Option<Status>,
    ) -> Result<()> {
        self.load(tx, subscription).await?;
        let cat = catalog::builtin();
        for control in cat.scored_controls(name_key) {
            let counts = step(tx, subscription, control, resource_key, old, new).await?;
            if let Some(tracked) = self.subscriptions.get_mut(subscription) {
                if counts.is_assessed() {
                    tracked.controls.insert(control.clone(), (cat.max_score(control), counts));
                } else {
                    tracked.controls.remove(control);
                }
            }
        }
        if let Some(tracked) = self.subscriptions.get_mut(subscription) {
            tracked.rescore();
        }
        Ok(())
    }

    async fn load(&mut self, tx: &mut impl WriteTx, subscription: &str) -> Result<()> {
        if self.subscriptions.contains_key(subscription) {
            return Ok(());
        }
        let rows = query_as::<ControlCountsRow>(
            "SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = $1",
        )
        .bind(subscription)
        .fetch_all(tx.conn())
        .await?;
        let cat = catalog::builtin();
        let controls = rows
            .into_iter()
            .map(|row| {
                let max = cat.max_score(&row.control);
                (row.control, (max, row.counts.into()))
            })
            .collect();
        let mut tracked = Tracked { controls, score: score::secure_score([].iter()).score };
        tracked.rescore();
        self.subscriptions.insert(subscription.to_owned(), tracked);
        Ok(())
    }

    /// The subscription's secure score as the transaction stands.
    pub(in crate::store) async fn score(
        &mut self,
        tx: &mut impl WriteTx,
        subscription: &str,
    ) -> Result<ScoreDetails> {
        self.load(tx, subscription).await?;
        let tracked = self.subscriptions.get(subscription);
        Ok(tracked.map_or_else(|| score::secure_score([].iter()).score, |t| t.score))
    }

    /// Append one transition; the score after it is the tracker's current one.
    pub(in crate::store) async fn record(
        &mut self,
        tx: &mut impl WriteTx,
        subscription: &str,
        change: &Change<'_>,
        before: ScoreDetails,
        now: OffsetDateTime,
    ) -> Result<()> {
        let after = self.score(tx, subscription).await?;
        query(
            "INSERT INTO status_changes (subscription_id, at, resource_id, assessment, old_status, \
             new_status, cause, before_current, before_max, before_percentage, after_current, \
             after_max, after_percentage) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(subscription)
        .bind(format_time(now))
        .bind(change.resource_id)
        .bind(change.assessment)
        .bind(change.old.map(Status::as_str))
        .bind(change.new.map(Status::as_str))
        .bind(change.cause.map(ChangeCause::as_str))
        .bind(before.current)
        .bind(before.max)
        .bind(before.percentage)
        .bind(after.current)
        .bind(after.max)
        .bind(after.percentage)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}

/// What one logged transition says, apart from its time and scores.
pub(in crate::store) struct Change<'a> {
    pub resource_id: &'a str,
    pub assessment: &'a str,
    pub old: Option<Status>,
    pub new: Option<Status>,
    pub cause: Option<ChangeCause>,
}

/// One (control, resource) step of the maintained state, in SQL around `score::step`; the
/// control's counts after it.
pub(in crate::store) async fn step(
    tx: &mut impl WriteTx,
    subscription: &str,
    control: &str,
    resource_key: &str,
    old: Option<Status>,
    new: Option<Status>,
) -> Result<ControlCounts> {
    let mut tally: ResourceTally = query_as::<CountsRow>(
        "SELECT healthy, unhealthy, not_applicable FROM resource_tallies \
         WHERE subscription_id = $1 AND control = $2 AND resource_key = $3",
    )
    .bind(subscription)
    .bind(control)
    .bind(resource_key)
    .fetch_optional(tx.conn())
    .await?
    .map(Into::into)
    .unwrap_or_default();
    let mut counts: ControlCounts = query_as::<CountsRow>(
        "SELECT healthy, unhealthy, not_applicable FROM control_counts \
         WHERE subscription_id = $1 AND control = $2",
    )
    .bind(subscription)
    .bind(control)
    .fetch_optional(tx.conn())
    .await?
    .map(Into::into)
    .unwrap_or_default();

    let before = counts;
    score::step(&mut tally, &mut counts, old, new);
    // The resource's resource group (if any) moves with the subscription.
    super::resource_groups::step_resource_group(
        tx,
        subscription,
        control,
        resource_key,
        before,
        counts,
    )
    .await?;

    if tally.is_empty() {
        query(
            "DELETE FROM resource_tallies WHERE subscription_id = $1 AND control = $2 AND resource_key = $3",
        )
        .bind(subscription)
        .bind(control)
        .bind(resource_key)
        .execute(tx.conn())
        .await?;
    } else {
        query(
            "INSERT INTO resource_tallies (subscription_id, control, resource_key, healthy, unhealthy, not_applicable) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription_id, control, resource_key) DO UPDATE SET \
             healthy = excluded.healthy, unhealthy = excluded.unhealthy, not_applicable = excluded.not_applicable",
        )
        .bind(subscription)
        .bind(control)
        .bind(resource_key)
        .bind(tally.healthy)
        .bind(tally.unhealthy)
        .bind(tally.not_applicable)
        .execute(tx.conn())
        .await?;
    }
    if counts.is_assessed() {
        query(
            "INSERT INTO control_counts (subscription_id, control, healthy, unhealthy, not_applicable) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription_id, control) DO UPDATE SET \
             healthy = excluded.healthy, unhealthy = excluded.unhealthy, not_applicable = excluded.not_applicable",
        )
        .bind(subscription)
        .bind(control)
        .bind(counts.healthy)
        .bind(counts.unhealthy)
        .bind(counts.not_applicable)
        .execute(tx.conn())
        .await?;
    } else {
        query("DELETE FROM control_counts WHERE subscription_id = $1 AND control = $2")
            .bind(subscription)
            .bind(control)
            .execute(tx.conn())
            .await?;
    }
    Ok(counts)
}

/// Record the subscription's secure score if it differs from the last recorded one; true when it did.
pub(super) async fn record_history(
    tx: &mut impl WriteTx,
    subscription: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    record_history_because(tx, subscription, now, None).await
}

/// [`record_history`], marking why when no assessment write moved the score.
pub(in crate::store) async fn record_history_because(
    tx: &mut impl WriteTx,
    subscription: &str,
    now: OffsetDateTime,
    reason: Option<HistoryReason>,
) -> Result<bool> {
    let rows = query_as::<ControlCountsRow>("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = $1")
        .bind(subscription)
        .fetch_all(tx.conn())
        .await?;
    let cat = catalog::builtin();
    let mut controls = Vec::with_capacity(rows.len());
    for row in rows {
        controls.push(score::control_score(cat.max_score(&row.control), &row.counts.into()));
    }
    let secure = score::secure_score(controls.iter());
    let last = query_as::<ScoreRow>(
        "SELECT current, max, percentage, weight FROM score_history \
         WHERE subscription_id = $1 AND initiative = $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(subscription)
    .bind(catalog::ASC_SCORE)
    .fetch_optional(tx.conn())
    .await?;
    let unchanged =
        last.is_some_and(|row| row.details() == secure.score && row.weight == secure.weight);
    if !unchanged {
        query(
            "INSERT INTO score_history (subscription_id, initiative, at, current, max, percentage, weight, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(subscription)
        .bind(catalog::ASC_SCORE)
        .bind(format_time(now))
        .bind(secure.score.current)
        .bind(secure.score.max)
        .bind(secure.score.percentage)
        .bind(secure.weight)
        .bind(reason.map(HistoryReason::as_str))
        .execute(tx.conn())
        .await?;
    }
    Ok(!unchanged)
}
