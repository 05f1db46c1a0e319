//! The core of either SQL engine: subscriptions, the assessment writes with their counters and
//! history in one transaction (around `score::step`, the one scoring arithmetic), and the reads.
//! Each engine supplies its transactions, locking and announcements through [`SqlBackend`].

use anyhow::Result;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;
use uuid::Uuid;

use super::automation as outbox;
use super::exemptions::assessment_statuses;
use super::tracker;
use super::{
    query, query_as, query_scalar, value_rows, write_one, SqlBackend, WriteTx, ROWS_PER_STATEMENT,
};
use crate::arm::{format_time, ResourceId, ScopeKind};
use crate::catalog;
use crate::score::{self, ControlCounts, Status};
use crate::store::engine::{
    Assessment, Change, Engine, HistoryPoint, Outcome, Subscription, Write,
};
use crate::store::rows::{
    parse_status, AssessmentRow, ControlCountsRow, HistoryRow, KeyedAssessmentRow, SubscriptionRow,
    ASSESSMENT_COLUMNS, HISTORY_COLUMNS,
};

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
        // The batch runs as its writes would one after the other, against the rows as the batch
        // moves them in memory; the database reads each row once before (a few statements for
        // the batch) and is written once after, each touched row once, with multi-row
        // statements.
        let known: Vec<&Write> = writes
            .iter()
            .filter(|w| locked.contains(&w.resource().subscription().to_string()))
            .collect();
        let mut current = read_assessments(&mut tx, &known).await?;
        let mut tracker = tracker::Tracker::buffered();
        read_tallies(&mut tx, &mut tracker, &known).await?;
        // The keys written (with their subscription); what to write is their entry in `current`.
        let mut pending: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut touched: Vec<String> = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut exported = outbox::Changes::watching(&mut tx, &locked).await?;
        for write in writes {
            let resource = write.resource();
            let sub = resource.subscription();
            let sub_text = sub.to_string();
            let known = locked.contains(&sub_text);
            if !known {
                outcomes.push(Outcome::NoSubscription);
                continue;
            }
            let name = write.name();
            let key = (resource.key().to_owned(), name.to_ascii_lowercase());
            let existing = current.get(&key).cloned().flatten();
            let old = existing.as_ref().map(|a| a.status);
            let (logged_id, logged_name) = match &existing {
                Some(e) => (e.resource_id.clone(), e.name.clone()),
                None => (resource.as_str().to_owned(), name.to_owned()),
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
                    current.insert(key.clone(), Some(stored.clone()));
                    pending.insert(key.clone(), sub_text.clone());
                    outcomes.push(if existing.is_some() {
                        Outcome::Replaced(stored)
                    } else {
                        Outcome::Created(stored)
                    });
                    Some(input.status)
                }
                Write::Delete { .. } => {
                    if existing.is_some() {
                        current.insert(key.clone(), None);
                        pending.insert(key.clone(), sub_text.clone());
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
                    resource_key: &key.0,
                    resource_id: &logged_id,
                    name_key: &key.1,
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
        write_assessments(&mut tx, &pending, &current).await?;
        tracker.flush(&mut tx).await?;
        for sub in &touched {
            if tracker::record_history(&mut tx, sub, now).await? {
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

/// (resource key, name key) → the stored assessment as the batch moves it (`None`: absent).
type Assessments = HashMap<(String, String), Option<Assessment>>;

/// The stored rows the writes name, by key (`None`: absent), in a statement per
/// [`ROWS_PER_STATEMENT`] keys (a join with the keys' VALUES, which both engines run as index
/// lookups; SQLite scans the table for a row-value `IN (VALUES …)`).
async fn read_assessments(tx: &mut impl WriteTx, writes: &[&Write]) -> Result<Assessments> {
    let keys: BTreeSet<(&str, String)> =
        writes.iter().map(|w| (w.resource().key(), w.name().to_ascii_lowercase())).collect();
    let keys: Vec<_> = keys.into_iter().collect();
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT resource_key, name_key, {ASSESSMENT_COLUMNS} FROM (VALUES {}) AS k \
             JOIN assessments ON resource_key = k.column1 AND name_key = k.column2",
            value_rows(chunk.len(), 2, 1)
        );
        let mut statement = query_as::<KeyedAssessmentRow>(sql);
        for (resource_key, name_key) in chunk {
            statement = statement.bind(*resource_key).bind(name_key);
        }
        for (resource_key, name_key) in chunk {
            out.insert(((*resource_key).to_owned(), name_key.clone()), None);
        }
        for row in statement.fetch_all(tx.conn()).await? {
            out.insert((row.resource_key, row.name_key), Some(Assessment::try_from(row.row)?));
        }
    }
    Ok(out)
}

/// The tallies the writes may step, per subscription, in a few statements.
async fn read_tallies(
    tx: &mut impl WriteTx,
    tracker: &mut tracker::Tracker,
    writes: &[&Write],
) -> Result<()> {
    let cat = catalog::builtin();
    let mut per_sub: BTreeMap<String, (BTreeSet<&String>, BTreeSet<&str>)> = BTreeMap::new();
    for w in writes {
        let controls = cat.scored_controls(&w.name().to_ascii_lowercase());
        if controls.is_empty() {
            continue;
        }
        let entry = per_sub.entry(w.resource().subscription().to_string()).or_default();
        entry.0.extend(controls);
        entry.1.insert(w.resource().key());
    }
    for (sub, (controls, resources)) in per_sub {
        let controls: Vec<String> = controls.into_iter().cloned().collect();
        let resources: Vec<&str> = resources.into_iter().collect();
        tracker.read_tallies(tx, &sub, &controls, &resources).await?;
    }
    Ok(())
}

/// The batch's final state of each assessment it wrote: upserts (every column: a row deleted
/// and written again in one batch starts afresh) and deletes, with multi-row statements.
async fn write_assessments(
    tx: &mut impl WriteTx,
    pending: &BTreeMap<(String, String), String>,
    current: &Assessments,
) -> Result<()> {
    let mut upserts = Vec::new();
    let mut deletes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, sub) in pending {
        let (resource_key, name_key) = key;
        match current.get(key).and_then(Option::as_ref) {
            Some(a) => upserts.push((resource_key, name_key, sub, a)),
            None => deletes.entry(name_key).or_default().push(resource_key),
        }
    }
    for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO assessments (resource_key, name_key, subscription_id, resource_id, name, status, cause, \
             description, resource_details, additional_data, partner_name, first_evaluation_date, status_change_date) \
             VALUES {} ON CONFLICT (resource_key, name_key) DO UPDATE SET resource_id = excluded.resource_id, \
             name = excluded.name, status = excluded.status, cause = excluded.cause, \
             description = excluded.description, resource_details = excluded.resource_details, \
             additional_data = excluded.additional_data, partner_name = excluded.partner_name, \
             first_evaluation_date = excluded.first_evaluation_date, \
             status_change_date = excluded.status_change_date",
            value_rows(chunk.len(), 13, 1)
        );
        let mut statement = query(sql);
        for (resource_key, name_key, sub, a) in chunk {
            let additional = a
                .additional_data
                .as_ref()
                .map(|m| serde_json::Value::Object(m.clone()).to_string());
            statement = statement
                .bind(*resource_key)
                .bind(*name_key)
                .bind(*sub)
                .bind(&a.resource_id)
                .bind(&a.name)
                .bind(a.status.as_str())
                .bind(&a.cause)
                .bind(&a.description)
                .bind(a.resource_details.to_string())
                .bind(additional)
                .bind(&a.partner_name)
                .bind(format_time(a.first_evaluation_date))
                .bind(format_time(a.status_change_date));
        }
        statement.execute(tx.conn()).await?;
    }
    for (name_key, resources) in deletes {
        for chunk in resources.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM assessments WHERE name_key = $1 AND resource_key IN {}",
                value_rows(1, chunk.len(), 2)
            );
            query(sql).bind(name_key).bind_all(chunk.iter().copied()).execute(tx.conn()).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod properties {
    use crate::arm::ResourceId;
    use crate::score::Status;
    use crate::store::changes::Order;
    use crate::store::management_groups::Scope;
    use crate::store::{AssessmentInput, Outcome, Store, StoreConfig, Subscription, Write};
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use uuid::Uuid;

    const NAMES: [&str; 3] = [
        "21300918-b2e3-0346-785f-c77ff57d243b",
        "08e628db-e2ed-4793-bc91-d13e684401c3", // in five controls
        "00000000-0000-0000-0000-000000000001", // custom: counts toward nothing
    ];
    /// Two resource groups and a resource in none (a subscription-level resource).
    const RESOURCES: [&str; 4] = [
        "resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm0",
        "resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/VM1",
        "resourceGroups/RG2/providers/Microsoft.Compute/virtualMachines/vm2",
        "providers/Microsoft.Web/sites/app",
    ];

    fn op() -> impl Strategy<Value = (usize, usize, Option<Status>)> {
        let status = prop_oneof![
            Just(None),
            Just(Some(Status::Healthy)),
            Just(Some(Status::Unhealthy)),
            Just(Some(Status::NotApplicable)),
        ];
        (0..RESOURCES.len(), 0..NAMES.len(), status)
    }

    fn write(id: Uuid, (resource, name, status): (usize, usize, Option<Status>)) -> Write {
        let resource =
            ResourceId::parse(&format!("/subscriptions/{id}/{}", RESOURCES[resource])).unwrap();
        match status {
            None => Write::Delete { resource, name: NAMES[name].into() },
            Some(status) => Write::Put(AssessmentInput {
                resource,
                name: NAMES[name].into(),
                status,
                cause: Some(format!("{status:?}")),
                description: None,
                resource_details: serde_json::json!({"source": "Azure"}),
                additional_data: None,
                partner_name: None,
            }),
        }
    }

    /// Everything a write maintains, apart from times: outcomes, assessments, counters of the
    /// subscription and of each resource group, the transition log with its scores, the last
    /// history point.
    async fn state(store: &Store, id: Uuid, outcomes: &[Outcome]) -> String {
        let scope = ResourceId::parse(&format!("/subscriptions/{id}")).unwrap();
        let assessments: Vec<_> = store
            .assessments(&scope, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.resource_id, a.name, a.status, a.cause))
            .collect();
        let outcomes: Vec<_> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Created(a) => format!("created {} {:?}", a.resource_id, a.status),
                Outcome::Replaced(a) => format!("replaced {} {:?}", a.resource_id, a.status),
                other => format!("{other:?}"),
            })
            .collect();
        let mut groups = Vec::new();
        for rg in ["rg1", "rg2"] {
            groups.push(store.counts_at(&Scope::ResourceGroup(id, rg.into())).await.unwrap());
        }
        let (from, to) = (OffsetDateTime::UNIX_EPOCH, OffsetDateTime::now_utc());
        let changes: Vec<_> = store
            .changes(id, from, to, Order::OldestFirst, None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.resource_id, c.assessment, c.old, c.new, c.before, c.after))
            .collect();
        let last = store.history(id, crate::catalog::ASC_SCORE, from, to).await.unwrap().pop();
        format!(
            "{outcomes:?}\n{assessments:?}\n{:?}\n{groups:?}\n{changes:?}\n{:?}",
            store.maintained_counts(id).await.unwrap(),
            last.map(|p| (p.score, p.weight)),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// `apply` over a batch leaves what applying its writes one at a time leaves: the same
        /// outcomes, rows, counters, transitions (scores before and after each) and final score.
        #[test]
        fn a_batch_equals_its_writes_one_by_one(
            before in prop::collection::vec(op(), 0..12),
            batch in prop::collection::vec(op(), 1..40),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (batched, single) = rt.block_on(async {
                let id = Uuid::new_v4();
                let mut states = Vec::new();
                for one_by_one in [false, true] {
                    let store = Store::open(&StoreConfig::Memory).await.unwrap();
                    let sub = Subscription {
                        id,
                        display_name: "p".into(),
                        tenant_id: Uuid::nil(),
                        state: "Enabled".into(),
                    };
                    store.put_subscription(&sub).await.unwrap();
                    // The same starting rows in both, written one at a time.
                    for &o in &before {
                        store.apply(&[write(id, o)]).await.unwrap();
                    }
                    let writes: Vec<Write> = batch.iter().map(|&o| write(id, o)).collect();
                    let mut outcomes = Vec::new();
                    if one_by_one {
                        for w in writes {
                            outcomes.extend(store.apply(&[w]).await.unwrap());
                        }
                    } else {
                        outcomes = store.apply(&writes).await.unwrap();
                    }
                    states.push(state(&store, id, &outcomes).await);
                    prop_assert!(store.verify().await.unwrap().is_clean());
                }
                Ok((states.remove(0), states.remove(0)))
            })?;
            prop_assert_eq!(batched, single);
        }
    }
}
