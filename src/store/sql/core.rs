//! The core of either SQL engine: subscriptions, the assessment writes with their counters and
//! history in one transaction (around `score::step`, the one scoring arithmetic), and the reads.
//! Each engine supplies its transactions, locking and announcements through [`SqlBackend`].

use anyhow::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

use super::automation as outbox;
use super::exemptions::assessment_statuses;
use super::tracker;
use super::{query, query_as, query_scalar, write_one, SqlBackend, WriteTx};
use crate::arm::{format_time, ResourceId, ScopeKind};
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, Status};
use crate::store::engine::{
    Assessment, Change, Engine, HistoryPoint, HistoryReason, Outcome, Subscription, Write,
};
use crate::store::rows::{
    parse_status, AssessmentRow, ControlCountsRow, CountsRow, HistoryRow, ScoreRow,
    SubscriptionRow, ASSESSMENT_COLUMNS, HISTORY_COLUMNS,
};

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
    super::management_groups::step_resource_group(
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
async fn record_history(
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

#[async_trait]
impl<B: SqlBackend> Engine for B {
    async fn probe_write(&self) -> Result<()> {
        // A committed write (not a rolled-back one): on a full disk it is the commit that fails.
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO meta (key, value) VALUES ('write_probe', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(format_time(OffsetDateTime::now_utc()))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn checkpoint(&self) -> Result<()> {
        SqlBackend::checkpoint(self).await
    }

    async fn generation(&self) -> Result<i64> {
        SqlBackend::generation(self).await
    }

    async fn change_feed(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        SqlBackend::change_feed(self).await
    }

    fn shared(&self) -> bool {
        B::SHARED
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.reader())
            .await?)
    }

    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.write_tx().await?;
        query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(tx.conn())
            .await?;
        let v = query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn swap_meta(&self, key: &str, expected: &str, new: &str) -> Result<bool> {
        let statement = query("UPDATE meta SET value = $3 WHERE key = $1 AND value = $2")
            .bind(key)
            .bind(expected)
            .bind(new);
        let mut tx = self.write_tx().await?;
        let done = statement.execute(tx.conn()).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = sub.id.to_string();
        let existed: Option<String> = query_scalar("SELECT id FROM subscriptions WHERE id = $1")
            .bind(&id)
            .fetch_optional(tx.conn())
            .await?;
        query(
            "INSERT INTO subscriptions (id, display_name, tenant_id, state, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
             tenant_id = excluded.tenant_id, state = excluded.state",
        )
        .bind(&id)
        .bind(&sub.display_name)
        .bind(sub.tenant_id.to_string())
        .bind(&sub.state)
        .bind(format_time(OffsetDateTime::now_utc()))
        .execute(tx.conn())
        .await?;
        // A subscription appears in (or is renamed in) the hierarchy every server shows.
        tx.everything();
        tx.announce().await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        query_as::<SubscriptionRow>(
            "SELECT id, display_name, tenant_id, state FROM subscriptions WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.reader())
        .await?
        .map(Subscription::try_from)
        .transpose()
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        query_as::<SubscriptionRow>(
            "SELECT id, display_name, tenant_id, state FROM subscriptions ORDER BY id",
        )
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(Subscription::try_from)
        .collect()
    }

    async fn remove_subscription(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = id.to_string();
        // Wait for its other writers to finish; it leaves every server's hierarchy.
        tx.lock_subscriptions(vec![id.clone()]).await?;
        tx.everything();
        for table in [
            "assessments",
            "resource_tallies",
            "control_counts",
            "score_history",
            "custom_metadata",
            "sub_assessments",
        ] {
            query(format!("DELETE FROM {table} WHERE subscription_id = $1"))
                .bind(&id)
                .execute(tx.conn())
                .await?;
        }
        let removed =
            query("DELETE FROM subscriptions WHERE id = $1").bind(&id).execute(tx.conn()).await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }

    async fn apply(&self, writes: &[Write], now: OffsetDateTime) -> Result<Vec<Outcome>> {
        let mut tx = self.write_tx().await?;
        // Every subscription the batch writes is locked, in id order, before anything of it is
        // read: concurrent batches on one subscription run one after the other.
        let subscriptions = writes.iter().map(|w| w.resource().subscription().to_string());
        let locked = tx.lock_subscriptions(subscriptions.collect()).await?;
        let mut touched: Vec<String> = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut tracker = tracker::Tracker::default();
        let mut exported = outbox::Changes::default();
        let now_text = format_time(now);
        for write in writes {
            let resource = write.resource();
            let sub = resource.subscription();
            let sub_text = sub.to_string();
            let known = locked.contains(&sub_text);
            if !known {
                outcomes.push(Outcome::NoSubscription);
                continue;
            }
            let name = match write {
                Write::Put(a) => &a.name,
                Write::Delete { name, .. } => name,
            };
            let name_key = name.to_ascii_lowercase();
            let existing = query_as::<AssessmentRow>(format!(
                "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = $1 AND name_key = $2"
            ))
            .bind(resource.key())
            .bind(&name_key)
            .fetch_optional(tx.conn())
            .await?
            .map(Assessment::try_from)
            .transpose()?;
            let old = existing.as_ref().map(|a| a.status);
            let (logged_id, logged_name) = match &existing {
                Some(e) => (e.resource_id.clone(), e.name.clone()),
                None => (resource.as_str().to_owned(), name.clone()),
            };
            let new = match write {
                Write::Put(input) => {
                    let (first_evaluation_date, status_change_date, resource_id, stored_name) =
                        match &existing {
                            Some(e) => (
                                e.first_evaluation_date,
                                if e.status == input.status { e.status_change_date } else { now },
                                e.resource_id.clone(),
                                e.name.clone(),
                            ),
                            None => {
                                (now, now, input.resource.as_str().to_string(), input.name.clone())
                            }
                        };
                    let additional = input
                        .additional_data
                        .as_ref()
                        .map(|m| serde_json::Value::Object(m.clone()).to_string());
                    query(
                        "INSERT INTO assessments (resource_key, name_key, subscription_id, resource_id, name, status, cause, \
                         description, resource_details, additional_data, partner_name, first_evaluation_date, status_change_date) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                         ON CONFLICT (resource_key, name_key) DO UPDATE SET status = excluded.status, cause = excluded.cause, \
                         description = excluded.description, resource_details = excluded.resource_details, \
                         additional_data = excluded.additional_data, partner_name = excluded.partner_name, \
                         status_change_date = excluded.status_change_date",
                    )
                    .bind(resource.key())
                    .bind(&name_key)
                    .bind(&sub_text)
                    .bind(&resource_id)
                    .bind(&stored_name)
                    .bind(input.status.as_str())
                    .bind(&input.cause)
                    .bind(&input.description)
                    .bind(input.resource_details.to_string())
                    .bind(additional)
                    .bind(&input.partner_name)
                    .bind(format_time(first_evaluation_date))
                    .bind(if status_change_date == now { now_text.clone() } else { format_time(status_change_date) })
                    .execute(tx.conn())
                    .await?;
                    let stored = Assessment {
                        resource_id,
                        name: stored_name,
                        status: input.status,
                        cause: input.cause.clone(),
                        description: input.description.clone(),
                        resource_details: input.resource_details.clone(),
                        additional_data: input.additional_data.clone(),
                        partner_name: input.partner_name.clone(),
                        first_evaluation_date,
                        status_change_date,
                    };
                    outcomes.push(if existing.is_some() {
                        Outcome::Replaced(stored)
                    } else {
                        Outcome::Created(stored)
                    });
                    Some(input.status)
                }
                Write::Delete { .. } => {
                    if existing.is_some() {
                        query("DELETE FROM assessments WHERE resource_key = $1 AND name_key = $2")
                            .bind(resource.key())
                            .bind(&name_key)
                            .execute(tx.conn())
                            .await?;
                        outcomes.push(Outcome::Deleted);
                    } else {
                        outcomes.push(Outcome::Absent);
                    }
                    None
                }
            };
            exported.assessment(&sub_text, resource.key(), existing.as_ref(), outcomes.last());
            if old != new {
                // Counters move by effective status; the transition is logged (issue 11).
                let written = tracker::Written {
                    subscription: &sub_text,
                    resource_key: resource.key(),
                    resource_id: &logged_id,
                    name_key: &name_key,
                    name: &logged_name,
                    old,
                    new,
                };
                tracker.write(&mut tx, written, now).await?;
                if !touched.contains(&sub_text) {
                    touched.push(sub_text);
                }
            }
        }
        for sub in &touched {
            if record_history(&mut tx, sub, now).await? {
                exported.score(sub);
            }
        }
        outbox::record(&mut tx, exported, now).await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn assessment(&self, resource_key: &str, name_key: &str) -> Result<Option<Assessment>> {
        query_as::<AssessmentRow>(format!("SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = $1 AND name_key = $2"))
            .bind(resource_key)
            .bind(name_key)
            .fetch_optional(self.reader())
            .await?
            .map(Assessment::try_from)
            .transpose()
    }

    async fn assessments(
        &self,
        scope: &ResourceId,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<Assessment>> {
        // The scope and everything below it: keys equal to the scope or starting with "scope/"
        // ('0' is the character after '/', so the range needs no LIKE escaping).
        let (after_resource, after_name) = after.cloned().unwrap_or_default();
        let sql = format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE subscription_id = $1 \
             AND ($2 OR resource_key = $3 OR (resource_key >= $4 AND resource_key < $5)) \
             AND (resource_key, name_key) > ($6, $7) ORDER BY resource_key, name_key LIMIT $8"
        );
        query_as::<AssessmentRow>(&sql)
            .bind(scope.subscription().to_string())
            .bind(scope.kind() == ScopeKind::Subscription)
            .bind(scope.key())
            .bind(format!("{}/", scope.key()))
            .bind(format!("{}0", scope.key()))
            .bind(after_resource)
            .bind(after_name)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(Assessment::try_from)
            .collect()
    }

    async fn control_counts(&self, subscription: Uuid) -> Result<Vec<(String, ControlCounts)>> {
        Ok(query_as::<ControlCountsRow>("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = $1")
            .bind(subscription.to_string())
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(|row| (row.control, row.counts.into()))
            .collect())
    }

    async fn recompute_counts(
        &self,
        subscription: Uuid,
    ) -> Result<BTreeMap<String, ControlCounts>> {
        let mut tx = self.read_tx().await?;
        let rows = assessment_statuses(&mut tx, subscription).await?;
        tx.finish_read().await?;
        let cat = catalog::builtin();
        let mut items: Vec<(String, Vec<&str>, Status)> = Vec::with_capacity(rows.len());
        for row in rows {
            let controls = cat.scored_controls(&row.name_key).iter().map(String::as_str).collect();
            items.push((row.resource_key, controls, parse_status(&row.status)?));
        }
        Ok(score::recompute(items.iter().map(|(r, c, s)| (r.as_str(), c.as_slice(), *s))))
    }

    async fn history(
        &self,
        subscription: Uuid,
        initiative: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<HistoryPoint>> {
        query_as::<HistoryRow>(format!(
            "SELECT {HISTORY_COLUMNS} FROM score_history \
             WHERE subscription_id = $1 AND initiative = $2 AND at >= $3 AND at <= $4 ORDER BY seq",
        ))
        .bind(subscription.to_string())
        .bind(initiative)
        .bind(format_time(from))
        .bind(format_time(to))
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(HistoryPoint::try_from)
        .collect()
    }

    async fn history_before(
        &self,
        subscription: Uuid,
        initiative: &str,
        at: OffsetDateTime,
    ) -> Result<Option<HistoryPoint>> {
        query_as::<HistoryRow>(format!(
            "SELECT {HISTORY_COLUMNS} FROM score_history \
             WHERE subscription_id = $1 AND initiative = $2 AND at <= $3 ORDER BY seq DESC LIMIT 1",
        ))
        .bind(subscription.to_string())
        .bind(initiative)
        .bind(format_time(at))
        .fetch_optional(self.reader())
        .await?
        .map(HistoryPoint::try_from)
        .transpose()
    }

    async fn custom_metadata(
        &self,
        subscription: Uuid,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let rows: Vec<(String, String)> = query_as("SELECT name, properties FROM custom_metadata WHERE subscription_id = $1 ORDER BY name_key")
            .bind(subscription.to_string())
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(|(name, props)| Ok((name, serde_json::from_str(&props)?))).collect()
    }

    async fn put_custom_metadata(
        &self,
        subscription: Uuid,
        name: &str,
        properties: &serde_json::Value,
    ) -> Result<()> {
        write_one(
            self,
            Some(subscription.to_string()),
            query(
                "INSERT INTO custom_metadata (subscription_id, name_key, name, properties) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subscription_id, name_key) DO UPDATE SET properties = excluded.properties",
            )
            .bind(subscription.to_string())
            .bind(name.to_ascii_lowercase())
            .bind(name)
            .bind(properties.to_string()),
        )
        .await?;
        Ok(())
    }

    async fn delete_custom_metadata(&self, subscription: Uuid, name: &str) -> Result<bool> {
        let done = write_one(
            self,
            Some(subscription.to_string()),
            query("DELETE FROM custom_metadata WHERE subscription_id = $1 AND name_key = $2")
                .bind(subscription.to_string())
                .bind(name.to_ascii_lowercase()),
        )
        .await?;
        Ok(done > 0)
    }
}
