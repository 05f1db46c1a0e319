//! Exemptions in either SQL engine (the decisions are [`crate::store::exemptions`]'s): the table
//! of migrations 0007 and 0009, and the re-step of the assessments whose effective status an
//! exemption change moves, in the transaction of the change, through the same [`Tracker`] as
//! assessment writes. An exemption at a management group reaches the subscriptions below it, so a
//! change of the hierarchy re-steps too ([`before_hierarchy_change`], [`after_hierarchy_change`]).

use anyhow::Result;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;
use uuid::Uuid;

use super::automation as outbox;
use super::exemption_rows::{active_rules, rules_of, Row, COLUMNS};
use super::tracker::record_history_because;
use super::tracker::{Change, Tracker};
use super::{query, query_as, query_scalar, SqlBackend, WriteTx};
use crate::arm::{format_time, parse_time, AnyScope, ResourceId, ScopeKind};
use crate::score::Status;
use crate::store::changes::ChangeCause;
use crate::store::engine::HistoryReason;
use crate::store::exemptions::{
    covers, effective_of, Exemption, ExemptionEngine, ExemptionFilter, ExemptionRule,
};
use crate::store::identity::TENANT_META;
use crate::store::rows::{parse_status, StatusRow};

/// The scoring inputs of a subscription's assessments: their *effective* statuses (an exempt
/// assessment counts as not applicable, `store::exemptions`), as the transaction sees them.
pub(in crate::store) async fn assessment_statuses(
    tx: &mut impl WriteTx,
    subscription: Uuid,
) -> Result<Vec<StatusRow>> {
    let mut rows: Vec<StatusRow> = query_as(
        "SELECT resource_key, name_key, status FROM assessments WHERE subscription_id = $1",
    )
    .bind(subscription.to_string())
    .fetch_all(tx.conn())
    .await?;
    let rules = rules_of(tx.conn(), &subscription.to_string()).await?;
    if rules.is_empty() {
        return Ok(rows);
    }
    for row in &mut rows {
        let stored = parse_status(&row.status)?;
        if let Some(status) = effective_of(&rules, &row.resource_key, &row.name_key, Some(stored)) {
            row.status = status.as_str().to_owned();
        }
    }
    Ok(rows)
}

/// `(resource_key = $n OR (resource_key >= $n+1 AND resource_key < $n+2))`: at or below a scope,
/// as a key range ('0' is the character after '/'), the SQL form of `exemptions::covers`.
fn below(first: usize) -> String {
    format!(
        "(resource_key = ${first} OR (resource_key >= ${} AND resource_key < ${}))",
        first + 1,
        first + 2
    )
}

fn range(scope_key: &str) -> [String; 3] {
    [scope_key.to_owned(), format!("{scope_key}/"), format!("{scope_key}0")]
}

/// Re-step, within `tx`, every assessment the exemptions named by `targets` (subscription, scope
/// key, assessment key) may cover, from its effective status under `before` (per subscription)
/// to its effective status under the exemptions now in the table; log the transitions and a
/// history point of reason `exemption` per subscription whose score moved.
async fn restep(
    tx: &mut impl WriteTx,
    targets: &[Target],
    before: &HashMap<String, Vec<ExemptionRule>>,
    now: OffsetDateTime,
) -> Result<()> {
    let mut tracker = Tracker::default();
    // Score changes are exported by automations like those of assessment writes.
    let subscriptions: BTreeSet<&String> = targets.iter().map(|(s, _, _)| s).collect();
    let mut exported = outbox::Changes::watching(tx, subscriptions.iter().copied()).await?;
    for sub in subscriptions {
        let after = active_rules(tx, sub).await?;
        let old_rules = before.get(sub).map_or(&[][..], Vec::as_slice);
        let mut candidates: BTreeMap<(String, String), (String, String, Status)> = BTreeMap::new();
        for (_, scope_key, assessment_key) in targets.iter().filter(|(s, _, _)| s == sub) {
            let [a, b, c] = range(scope_key);
            let rows: Vec<(String, String, String, String)> = query_as(format!(
                "SELECT resource_key, resource_id, name, status FROM assessments \
                 WHERE subscription_id = $1 AND name_key = $2 AND {}",
                below(3)
            ))
            .bind(sub)
            .bind(assessment_key)
            .bind(a)
            .bind(b)
            .bind(c)
            .fetch_all(tx.conn())
            .await?;
            for (resource_key, resource_id, name, status) in rows {
                let status = parse_status(&status)?;
                candidates
                    .insert((resource_key, assessment_key.clone()), (resource_id, name, status));
            }
        }
        let mut moved = false;
        for ((resource_key, name_key), (resource_id, name, stored)) in &candidates {
            let old = effective_of(old_rules, resource_key, name_key, Some(*stored));
            let new = effective_of(&after, resource_key, name_key, Some(*stored));
            if old == new {
                continue;
            }
            let score_before = tracker.score(tx, sub).await?;
            tracker.step_all(tx, sub, name_key, resource_key, old, new).await?;
            let change = Change {
                resource_id,
                assessment: name,
                old,
                new,
                cause: Some(ChangeCause::Exemption),
            };
            tracker.record(tx, sub, &change, score_before, now).await?;
            moved = true;
        }
        if moved && record_history_because(tx, sub, now, Some(HistoryReason::Exemption)).await? {
            exported.score(sub);
        }
    }
    outbox::record(tx, exported, now).await
}

async fn read(tx: &mut impl WriteTx, name_key: &str) -> Result<Option<Exemption>> {
    query_as::<Row>(format!("SELECT {COLUMNS} FROM exemptions WHERE name_key = $1"))
        .bind(name_key)
        .fetch_optional(tx.conn())
        .await?
        .map(Exemption::try_from)
        .transpose()
}

/// What a re-step looks at: (subscription, scope key, assessment key) of a rule.
type Target = (String, String, String);

fn target_of(subscription: &str, rule: &ExemptionRule) -> Target {
    (subscription.to_owned(), rule.scope_key.clone(), rule.assessment_key.clone())
}

/// The subscriptions below a management group (nested groups included) as the transaction sees
/// the hierarchy; every subscription below the root group (named by the tenant id).
pub(super) async fn subscriptions_below(
    tx: &mut impl WriteTx,
    group_key: &str,
) -> Result<Vec<String>> {
    Ok(query_scalar(
        "WITH RECURSIVE down(k) AS ( \
           SELECT name_key FROM management_groups WHERE name_key = $1 \
           UNION SELECT g.name_key FROM management_groups g JOIN down ON g.parent_key = down.k) \
         SELECT id FROM subscriptions WHERE $1 = (SELECT value FROM meta WHERE key = $2) \
           OR id IN (SELECT p.subscription_id FROM management_group_subscriptions p \
                     JOIN down ON p.group_key = down.k) \
         ORDER BY id",
    )
    .bind(group_key)
    .bind(TENANT_META)
    .fetch_all(tx.conn())
    .await?)
}

/// What an exemption covers now: its subscription's assessments below its scope, or at a
/// management group those of every subscription below the group.
async fn targets(tx: &mut impl WriteTx, e: &Exemption) -> Result<Vec<Target>> {
    let subscriptions = match &e.scope {
        AnyScope::Arm(id) => vec![id.subscription().to_string()],
        AnyScope::ManagementGroup(g) => subscriptions_below(tx, &g.to_ascii_lowercase()).await?,
    };
    Ok(subscriptions.iter().map(|s| target_of(s, &e.rule_in(s))).collect())
}

/// Exemption writes take turns (they are rare): one reads an exemption's previous state and the
/// rules in force, and no other changes them before it commits. Taken before any subscription
/// lock, so it never closes a cycle with assessment writers.
const EXCLUSIVE: &str = "securescore.exemptions";

/// Lock the subscriptions whose counters the re-step moves (in id order, as every writer does).
async fn lock_targets(tx: &mut impl WriteTx, targets: &[Target]) -> Result<()> {
    tx.lock_subscriptions(targets.iter().map(|(s, _, _)| s.clone()).collect()).await?;
    Ok(())
}

async fn rules_before(
    tx: &mut impl WriteTx,
    targets: &[Target],
) -> Result<HashMap<String, Vec<ExemptionRule>>> {
    let mut out = HashMap::new();
    for (sub, _, _) in targets {
        if !out.contains_key(sub) {
            let rules = active_rules(tx, sub).await?;
            out.insert(sub.clone(), rules);
        }
    }
    Ok(out)
}

/// The rules in force before a change of the hierarchy that may move `subscriptions` below
/// other groups (a subscription placed, a group re-parented): taken in the turn of exemption
/// writers, with the subscriptions locked (in that order, as exemption writes take them), so that
/// [`after_hierarchy_change`] compares like with like.
pub(super) async fn before_hierarchy_change(
    tx: &mut impl WriteTx,
    subscriptions: Vec<String>,
) -> Result<HashMap<String, Vec<ExemptionRule>>> {
    tx.exclusive(EXCLUSIVE).await?;
    let locked = tx.lock_subscriptions(subscriptions).await?;
    let mut before = HashMap::new();
    for sub in locked {
        let rules = active_rules(tx, &sub).await?;
        before.insert(sub, rules);
    }
    Ok(before)
}

/// After the change, in its transaction: re-step what the group exemptions that stopped or began
/// reaching each subscription cover.
pub(super) async fn after_hierarchy_change(
    tx: &mut impl WriteTx,
    before: &HashMap<String, Vec<ExemptionRule>>,
    now: OffsetDateTime,
) -> Result<()> {
    let mut targets = Vec::new();
    for (sub, old) in before {
        let new = active_rules(tx, sub).await?;
        let gone = old.iter().filter(|r| !new.contains(r));
        let came = new.iter().filter(|r| !old.contains(r));
        targets.extend(gone.chain(came).map(|r| target_of(sub, r)));
    }
    if targets.is_empty() {
        return Ok(());
    }
    restep(tx, &targets, before, now).await
}

#[async_trait]
impl<B: SqlBackend> ExemptionEngine for B {
    async fn put_exemption(&self, e: &Exemption, now: OffsetDateTime) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        tx.exclusive(EXCLUSIVE).await?;
        let name_key = e.name.to_ascii_lowercase();
        let previous = read(&mut tx, &name_key).await?;
        let mut targets = match &previous {
            Some(p) => self::targets(&mut tx, p).await?,
            None => Vec::new(),
        };
        targets.extend(self::targets(&mut tx, e).await?);
        lock_targets(&mut tx, &targets).await?;
        let before = rules_before(&mut tx, &targets).await?;
        let active = e.expires_on.is_none_or(|t| t > now);
        query(
            "INSERT INTO exemptions (name_key, name, subscription_id, scope, scope_key, assessment_key, \
             assessment, category, expires_on, description, created_at, updated_at, active, group_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13) \
             ON CONFLICT (name_key) DO UPDATE SET name = excluded.name, \
             subscription_id = excluded.subscription_id, group_key = excluded.group_key, \
             scope = excluded.scope, \
             scope_key = excluded.scope_key, assessment_key = excluded.assessment_key, \
             assessment = excluded.assessment, category = excluded.category, \
             expires_on = excluded.expires_on, description = excluded.description, \
             updated_at = excluded.updated_at, active = excluded.active",
        )
        .bind(&name_key)
        .bind(&e.name)
        .bind(e.subscription().map(|s| s.to_string()))
        .bind(e.scope.id())
        .bind(e.scope.key())
        .bind(e.assessment.to_ascii_lowercase())
        .bind(&e.assessment)
        .bind(e.category.as_str())
        .bind(e.expires_on.map(format_time))
        .bind(&e.description)
        .bind(format_time(now))
        .bind(active)
        .bind(match &e.scope {
            AnyScope::ManagementGroup(g) => Some(g.to_ascii_lowercase()),
            AnyScope::Arm(_) => None,
        })
        .execute(tx.conn())
        .await?;
        restep(&mut tx, &targets, &before, now).await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(previous.is_none())
    }

    async fn exemption(&self, name_key: &str) -> Result<Option<Exemption>> {
        query_as::<Row>(format!("SELECT {COLUMNS} FROM exemptions WHERE name_key = $1"))
            .bind(name_key)
            .fetch_optional(self.reader())
            .await?
            .map(Exemption::try_from)
            .transpose()
    }

    async fn exemptions(
        &self,
        filter: &ExemptionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Exemption>> {
        // The subscription and group filters: one placeholder per value, after the fixed ones.
        let subscriptions: Option<Vec<String>> =
            filter.subscriptions.as_ref().map(|s| s.iter().map(Uuid::to_string).collect());
        let mut next = 5;
        let mut one_of = |column: &str, values: &Option<Vec<String>>| match values {
            None => "TRUE".to_owned(),
            Some(v) if v.is_empty() => "FALSE".to_owned(),
            Some(v) => {
                let marks: Vec<String> = (next..next + v.len()).map(|i| format!("${i}")).collect();
                next += v.len();
                format!("{column} IN ({})", marks.join(", "))
            }
        };
        let in_subscriptions = one_of("subscription_id", &subscriptions);
        let in_groups = one_of("group_key", &filter.groups);
        // A scope filter (resource-scoped rows): at or below it, and above it covering it.
        let scope = filter.scope.as_ref().map(|s| s.key().to_owned());
        let mut statement = query_as::<Row>(format!(
            "SELECT {COLUMNS} FROM exemptions WHERE name_key > $1 \
             AND ((subscription_id IS NOT NULL AND {in_subscriptions} \
                   AND ($2 IS NULL OR scope_key = $2 OR substr(scope_key, 1, length($2) + 1) = $2 || '/' \
                        OR substr($2, 1, length(scope_key) + 1) = scope_key || '/')) \
                  OR (group_key IS NOT NULL AND {in_groups})) \
             AND ($4 IS NULL OR active = $4) ORDER BY name_key LIMIT $3"
        ))
        .bind(after.unwrap_or(""))
        .bind(scope)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(filter.active);
        for value in subscriptions.iter().chain(filter.groups.iter()).flatten() {
            statement = statement.bind(value.clone());
        }
        statement.fetch_all(self.reader()).await?.into_iter().map(Exemption::try_from).collect()
    }

    async fn delete_exemption(
        &self,
        name_key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Exemption>> {
        let mut tx = self.write_tx().await?;
        tx.exclusive(EXCLUSIVE).await?;
        let Some(previous) = read(&mut tx, name_key).await? else {
            tx.finish_read().await?;
            return Ok(None);
        };
        let targets = targets(&mut tx, &previous).await?;
        lock_targets(&mut tx, &targets).await?;
        let before = rules_before(&mut tx, &targets).await?;
        query("DELETE FROM exemptions WHERE name_key = $1")
            .bind(name_key)
            .execute(tx.conn())
            .await?;
        restep(&mut tx, &targets, &before, now).await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(Some(previous))
    }

    async fn expire_exemptions(&self, now: OffsetDateTime) -> Result<Vec<Uuid>> {
        let mut tx = self.write_tx().await?;
        tx.exclusive(EXCLUSIVE).await?;
        let due = query_as::<Row>(format!(
            "SELECT {COLUMNS} FROM exemptions WHERE active AND expires_on IS NOT NULL \
             AND expires_on <= $1 ORDER BY name_key"
        ))
        .bind(format_time(now))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(Exemption::try_from)
        .collect::<Result<Vec<_>>>()?;
        if due.is_empty() {
            tx.finish_read().await?;
            return Ok(Vec::new());
        }
        let mut targets = Vec::new();
        for e in &due {
            targets.extend(self::targets(&mut tx, e).await?);
        }
        lock_targets(&mut tx, &targets).await?;
        let before = rules_before(&mut tx, &targets).await?;
        query(
            "UPDATE exemptions SET active = FALSE WHERE active AND expires_on IS NOT NULL AND expires_on <= $1",
        )
        .bind(format_time(now))
        .execute(tx.conn())
        .await?;
        restep(&mut tx, &targets, &before, now).await?;
        tx.announce().await?;
        tx.commit().await?;
        let subs: BTreeSet<Uuid> =
            targets.iter().filter_map(|(s, _, _)| Uuid::parse_str(s).ok()).collect();
        for e in &due {
            tracing::info!(exemption = %e.name, scope = %e.scope.id(), "an exemption expired");
        }
        Ok(subs.into_iter().collect())
    }

    async fn next_expiry(&self) -> Result<Option<OffsetDateTime>> {
        let next: Option<String> = query_scalar(
            "SELECT MIN(expires_on) FROM exemptions WHERE active AND expires_on IS NOT NULL",
        )
        .fetch_one(self.reader())
        .await?;
        next.as_deref().map(parse_time).transpose()
    }

    async fn exemption_rules(&self, subscription: Uuid) -> Result<Vec<ExemptionRule>> {
        rules_of(self.reader(), &subscription.to_string()).await
    }

    async fn effective_statuses(
        &self,
        scope: &ResourceId,
    ) -> Result<Vec<(String, String, Status)>> {
        let sub = scope.subscription().to_string();
        let rules = rules_of(self.reader(), &sub).await?;
        let [a, b, c] = range(scope.key());
        let rows: Vec<(String, String, String)> = query_as(format!(
            "SELECT resource_key, name_key, status FROM assessments WHERE subscription_id = $1 \
             AND ($2 OR {})",
            below(3)
        ))
        .bind(&sub)
        .bind(scope.kind() == ScopeKind::Subscription)
        .bind(a)
        .bind(b)
        .bind(c)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(r, n, s)| {
                let stored = parse_status(&s)?;
                let status = effective_of(&rules, &r, &n, Some(stored)).unwrap_or(stored);
                Ok((r, n, status))
            })
            .collect()
    }

    async fn unhealthy_counts(&self, scope: &ResourceId) -> Result<Vec<(String, i64)>> {
        let sub = scope.subscription().to_string();
        let whole = scope.kind() == ScopeKind::Subscription;
        let count = |name_key: Option<String>, at: &str| {
            let [a, b, c] = range(at);
            let sql = format!(
                "SELECT name_key, COUNT(*) FROM assessments WHERE subscription_id = $1 \
                 AND status = 'Unhealthy' AND ($2 IS NULL OR name_key = $2) AND ($3 OR {}) \
                 GROUP BY name_key",
                below(4)
            );
            let whole = whole && name_key.is_none();
            let sub = sub.clone();
            async move {
                query_as::<(String, i64)>(sql)
                    .bind(sub)
                    .bind(name_key)
                    .bind(whole)
                    .bind(a)
                    .bind(b)
                    .bind(c)
                    .fetch_all(self.reader())
                    .await
            }
        };
        let mut counts: BTreeMap<String, i64> =
            count(None, scope.key()).await?.into_iter().collect();
        // Exempt assessments are not applicable, not unhealthy. Within one assessment name the
        // outermost exempt scopes are disjoint (ids form a tree), so subtracting the unhealthy
        // ones below each is exact; where a scope covers the queried one, everything goes.
        let rules = rules_of(self.reader(), &sub).await?;
        let mut outermost: Vec<&ExemptionRule> = Vec::new();
        for r in &rules {
            let inner = rules.iter().any(|o| {
                o.assessment_key == r.assessment_key
                    && o.scope_key != r.scope_key
                    && covers(&o.scope_key, &r.scope_key)
            });
            let twin = outermost
                .iter()
                .any(|o| o.assessment_key == r.assessment_key && o.scope_key == r.scope_key);
            if !inner && !twin && counts.contains_key(&r.assessment_key) {
                outermost.push(r);
            }
        }
        for r in outermost {
            let at = if covers(scope.key(), &r.scope_key) {
                r.scope_key.as_str()
            } else if covers(&r.scope_key, scope.key()) {
                scope.key()
            } else {
                continue;
            };
            for (name_key, n) in count(Some(r.assessment_key.clone()), at).await? {
                if let Some(c) = counts.get_mut(&name_key) {
                    *c -= n;
                }
            }
        }
        Ok(counts.into_iter().filter(|(_, n)| *n > 0).collect())
    }

    async fn unhealthy_resources(
        &self,
        scope: &ResourceId,
        name_key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let sub = scope.subscription().to_string();
        let rules = rules_of(self.reader(), &sub).await?;
        let [a, b, c] = range(scope.key());
        let sql = format!(
            "SELECT resource_key, resource_id FROM assessments WHERE subscription_id = $1 \
             AND name_key = $2 AND status = 'Unhealthy' AND ($3 OR {}) AND resource_key > $7 \
             ORDER BY resource_key LIMIT $8",
            below(4)
        );
        // Exempt rows are skipped in Rust (the one decision); read on until the page is full.
        let batch = limit.max(1).saturating_mul(2).min(5000);
        let mut out = Vec::with_capacity(limit);
        let mut cursor = after.unwrap_or("").to_owned();
        loop {
            let rows: Vec<(String, String)> = query_as(&sql)
                .bind(&sub)
                .bind(name_key)
                .bind(scope.kind() == ScopeKind::Subscription)
                .bind(&a)
                .bind(&b)
                .bind(&c)
                .bind(&cursor)
                .bind(i64::try_from(batch).unwrap_or(i64::MAX))
                .fetch_all(self.reader())
                .await?;
            let done = rows.len() < batch;
            for (key, id) in rows {
                cursor.clone_from(&key);
                if effective_of(&rules, &key, name_key, Some(Status::Unhealthy))
                    == Some(Status::Unhealthy)
                {
                    out.push((key, id));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }
}
