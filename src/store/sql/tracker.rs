//! The write hooks of issue 11, for either SQL engine: within one write transaction, [`Tracker`]
//! steps the counters with *effective* statuses (`store::exemptions`) and appends every status
//! transition, with the secure score before and after it, to `status_changes`. `apply` makes one
//! call per assessment write ([`Tracker::write`]) and writes the rows they moved once per batch
//! ([`Tracker::flush`]); exemption changes re-step through the same tracker (`sql::exemptions`).
//! The one place counters step (`Tracker::step`, around `score::step`) and history points are
//! recorded ([`record_history_because`]).

use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

use super::{query, query_as, value_rows, WriteTx, ROWS_PER_STATEMENT};
use crate::arm::format_time;
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, ScoreDetails, Status};
use crate::store::changes::ChangeCause;
use crate::store::engine::HistoryReason;
use crate::store::exemptions::{effective_status, exempting, ExemptionRule};
use crate::store::management_groups::resource_group_of;
use crate::store::rows::{ControlCountsRow, ScoreRow, TallyRow};

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
/// recomputed only when counts move), its active exemptions (which an assessment write cannot
/// change), the resource tallies it read, and the rows it has still to write.
///
/// A [`Tracker::default`] writes every counter row it moves and every transition before its
/// call returns. A [`Tracker::buffered`] (`apply`'s, over a batch of writes) keeps them until
/// [`Tracker::flush`]: each touched counter row is then written once per transaction, with
/// multi-row statements, whatever number of writes moved it.
#[derive(Default)]
pub(in crate::store) struct Tracker {
    subscriptions: HashMap<String, Tracked>,
    rules: HashMap<String, Vec<ExemptionRule>>,
    buffered: bool,
    /// subscription → control → resource key → its tally as the transaction stands; an entry
    /// exists once the row was read (empty: no row). Nested maps so that a step finds its
    /// entries by `&str` without building an owned key (a batch makes thousands of steps).
    tallies: Nested<Nested<Nested<Tally>>>,
    /// subscription → the controls whose counts moved; their values are in `subscriptions`.
    dirty_controls: Nested<BTreeSet<String>>,
    /// subscription → resource group → control → how much its counts moved.
    groups: Nested<Nested<Nested<ControlCounts>>>,
    changes: Vec<Logged>,
}

type Nested<V> = HashMap<String, V>;

/// A resource's tally in one control, and whether the transaction moved it.
#[derive(Default, Clone, Copy)]
struct Tally {
    counts: ResourceTally,
    dirty: bool,
}

/// The entry of `key`, made (with its default) if missing; owns the key only then.
fn slot<'m, V: Default>(map: &'m mut Nested<V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("the entry was just made")
}

/// One transition to log, with the scores around it.
struct Logged {
    subscription: String,
    at: String,
    resource_id: String,
    assessment: String,
    old: Option<Status>,
    new: Option<Status>,
    cause: Option<ChangeCause>,
    before: ScoreDetails,
    after: ScoreDetails,
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
    /// A tracker whose rows wait for [`Tracker::flush`].
    pub(in crate::store) fn buffered() -> Tracker {
        Tracker { buffered: true, ..Tracker::default() }
    }

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
        let controls = catalog::builtin().scored_controls(name_key);
        let read = self.tallies.get(subscription);
        if controls
            .iter()
            .any(|c| !read.and_then(|t| t.get(c)).is_some_and(|t| t.contains_key(resource_key)))
        {
            self.read_tallies(tx, subscription, controls, &[resource_key]).await?;
        }
        for control in controls {
            self.step(subscription, control, resource_key, old, new);
        }
        if let Some(tracked) = self.subscriptions.get_mut(subscription) {
            tracked.rescore();
        }
        self.write_through(tx).await
    }

    /// Read the tallies of these resources in these controls (a few statements for a whole
    /// batch); the ones already read are kept.
    pub(in crate::store) async fn read_tallies(
        &mut self,
        tx: &mut impl WriteTx,
        subscription: &str,
        controls: &[String],
        resource_keys: &[&str],
    ) -> Result<()> {
        if controls.is_empty() {
            return Ok(());
        }
        for chunk in resource_keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT control, resource_key, healthy, unhealthy, not_applicable FROM resource_tallies \
                 WHERE subscription_id = $1 AND control IN {} AND resource_key IN {}",
                value_rows(1, controls.len(), 2),
                value_rows(1, chunk.len(), 2 + controls.len()),
            );
            let rows = query_as::<TallyRow>(sql)
                .bind(subscription)
                .bind_all(controls)
                .bind_all(chunk.iter().copied())
                .fetch_all(tx.conn())
                .await?;
            let read = slot(&mut self.tallies, subscription);
            for control in controls {
                let read = slot(read, control);
                for key in chunk {
                    slot(read, key);
                }
            }
            for row in rows {
                let tally = slot(slot(read, &row.control), &row.resource_key);
                if !tally.dirty {
                    tally.counts = row.counts.into();
                }
            }
        }
        Ok(())
    }

    /// The one (control, resource) step of the maintained state, around `score::step`, in memory:
    /// the tally, the control's counts and the resource group's counts move together.
    fn step(
        &mut self,
        subscription: &str,
        control: &str,
        resource_key: &str,
        old: Option<Status>,
        new: Option<Status>,
    ) {
        let Some(tracked) = self.subscriptions.get_mut(subscription) else { return };
        let tally = slot(slot(slot(&mut self.tallies, subscription), control), resource_key);
        tally.dirty = true;
        let mut counts = tracked.controls.get(control).map(|(_, c)| *c).unwrap_or_default();
        let before = counts;
        score::step(&mut tally.counts, &mut counts, old, new);
        match tracked.controls.get_mut(control) {
            Some(entry) if counts.is_assessed() => entry.1 = counts,
            Some(_) => {
                tracked.controls.remove(control);
            }
            None if counts.is_assessed() => {
                let max = catalog::builtin().max_score(control);
                tracked.controls.insert(control.to_owned(), (max, counts));
            }
            None => {}
        }
        let dirty = slot(&mut self.dirty_controls, subscription);
        if !dirty.contains(control) {
            dirty.insert(control.to_owned());
        }
        // The resource's resource group (if any) moves with the subscription.
        if let Some(rg) = resource_group_of(resource_key) {
            let delta = slot(slot(slot(&mut self.groups, subscription), rg), control);
            delta.healthy += counts.healthy - before.healthy;
            delta.unhealthy += counts.unhealthy - before.unhealthy;
            delta.not_applicable += counts.not_applicable - before.not_applicable;
        }
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
        self.changes.push(Logged {
            subscription: subscription.to_owned(),
            at: format_time(now),
            resource_id: change.resource_id.to_owned(),
            assessment: change.assessment.to_owned(),
            old: change.old,
            new: change.new,
            cause: change.cause,
            before,
            after,
        });
        self.write_through(tx).await
    }

    async fn write_through(&mut self, tx: &mut impl WriteTx) -> Result<()> {
        if self.buffered {
            Ok(())
        } else {
            self.flush(tx).await
        }
    }

    /// Write every counter row moved and every transition logged since the last flush: each
    /// row once, with multi-row statements. Before anything reads the counters back from the
    /// database (the history point, the outbox).
    pub(in crate::store) async fn flush(&mut self, tx: &mut impl WriteTx) -> Result<()> {
        // Tallies: the non-empty ones upserted, the emptied ones deleted (as `score::Maintained`).
        let mut kept: Vec<((&str, &str, &str), ResourceTally)> = Vec::new();
        let mut emptied: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for (sub, controls) in &mut self.tallies {
            for (control, resources) in controls {
                for (resource, tally) in resources.iter_mut().filter(|(_, t)| t.dirty) {
                    tally.dirty = false;
                    if tally.counts.is_empty() {
                        emptied.entry((sub, control)).or_default().push(resource);
                    } else {
                        kept.push(((sub, control, resource), tally.counts));
                    }
                }
            }
        }
        for chunk in kept.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO resource_tallies (subscription_id, control, resource_key, healthy, unhealthy, \
                 not_applicable) VALUES {} ON CONFLICT (subscription_id, control, resource_key) DO UPDATE SET \
                 healthy = excluded.healthy, unhealthy = excluded.unhealthy, not_applicable = excluded.not_applicable",
                value_rows(chunk.len(), 6, 1)
            );
            let mut statement = query(sql);
            for ((sub, control, resource), tally) in chunk {
                statement = statement
                    .bind(*sub)
                    .bind(*control)
                    .bind(*resource)
                    .bind(tally.healthy)
                    .bind(tally.unhealthy)
                    .bind(tally.not_applicable);
            }
            statement.execute(tx.conn()).await?;
        }
        for ((sub, control), resources) in &emptied {
            for chunk in resources.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM resource_tallies WHERE subscription_id = $1 AND control = $2 AND resource_key IN {}",
                    value_rows(1, chunk.len(), 3)
                );
                query(sql)
                    .bind(*sub)
                    .bind(*control)
                    .bind_all(chunk.iter().copied())
                    .execute(tx.conn())
                    .await?;
            }
        }

        // Control counts: an unassessed control has no row.
        let dirty = std::mem::take(&mut self.dirty_controls);
        let mut assessed: Vec<(&str, &str, ControlCounts)> = Vec::new();
        let mut unassessed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (sub, controls) in &dirty {
            for control in controls {
                match self.subscriptions.get(sub).and_then(|t| t.controls.get(control)) {
                    Some((_, counts)) => assessed.push((sub, control, *counts)),
                    None => unassessed.entry(sub).or_default().push(control),
                }
            }
        }
        for chunk in assessed.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO control_counts (subscription_id, control, healthy, unhealthy, not_applicable) \
                 VALUES {} ON CONFLICT (subscription_id, control) DO UPDATE SET \
                 healthy = excluded.healthy, unhealthy = excluded.unhealthy, not_applicable = excluded.not_applicable",
                value_rows(chunk.len(), 5, 1)
            );
            let mut statement = query(sql);
            for (sub, control, counts) in chunk {
                statement = statement
                    .bind(*sub)
                    .bind(*control)
                    .bind(counts.healthy)
                    .bind(counts.unhealthy)
                    .bind(counts.not_applicable);
            }
            statement.execute(tx.conn()).await?;
        }
        for (sub, controls) in &unassessed {
            let sql = format!(
                "DELETE FROM control_counts WHERE subscription_id = $1 AND control IN {}",
                value_rows(1, controls.len(), 2)
            );
            query(sql).bind(*sub).bind_all(controls.iter().copied()).execute(tx.conn()).await?;
        }

        // Resource groups: the net change of each touched (group, control), through the
        // resource-group hook (which owns how a group's row moves).
        for (sub, groups) in std::mem::take(&mut self.groups) {
            for (group, controls) in groups {
                for (control, delta) in controls {
                    super::resource_groups::step_resource_group(tx, &sub, &group, &control, delta)
                        .await?;
                }
            }
        }

        // Transitions, in the order they happened.
        let changes = std::mem::take(&mut self.changes);
        for chunk in changes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO status_changes (subscription_id, at, resource_id, assessment, old_status, \
                 new_status, cause, before_current, before_max, before_percentage, after_current, \
                 after_max, after_percentage) VALUES {}",
                value_rows(chunk.len(), 13, 1)
            );
            let mut statement = query(sql);
            for c in chunk {
                statement = statement
                    .bind(&c.subscription)
                    .bind(&c.at)
                    .bind(&c.resource_id)
                    .bind(&c.assessment)
                    .bind(c.old.map(Status::as_str))
                    .bind(c.new.map(Status::as_str))
                    .bind(c.cause.map(ChangeCause::as_str))
                    .bind(c.before.current)
                    .bind(c.before.max)
                    .bind(c.before.percentage)
                    .bind(c.after.current)
                    .bind(c.after.max)
                    .bind(c.after.percentage);
            }
            statement.execute(tx.conn()).await?;
        }
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
