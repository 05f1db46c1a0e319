//! Exemptions (Defender's "exempt" action), engine-neutral: the records, the one decision of an
//! assessment's *effective status*, and the [`Store`] operations over the engine.
//!
//! While an exemption is active, every assessment it matches (same metadata name, resource at or
//! below its scope) counts as `NotApplicable` and reads as `NotApplicable` with cause `Exempt`;
//! the stored status is never touched, so removing or expiring the exemption restores it. The
//! maintained counters always reflect effective statuses: the engine re-steps the affected
//! assessments, in one transaction, whenever an exemption begins or ends, and an assessment write
//! steps from old to new effective status. Everything that counts (the write path, verification,
//! recomputation, rendering, resource-group scores) asks [`effective_status`] and [`exempting`].

use anyhow::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;
use crate::arm::{AnyScope, ResourceId};
use crate::score::Status;

/// Why an assessment is exempt, as Defender names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The risk is accepted.
    Waiver,
    /// The risk is handled by other means.
    Mitigated,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Waiver => "Waiver",
            Category::Mitigated => "Mitigated",
        }
    }

    /// Either spelling, in any case.
    pub fn parse(s: &str) -> Option<Category> {
        [Category::Waiver, Category::Mitigated]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// A stored exemption.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemption {
    pub name: String,
    /// The scope: a subscription, resource group or resource id, or a management group (which
    /// covers every subscription below it, wherever the hierarchy places them now).
    pub scope: AnyScope,
    /// The assessment metadata name it exempts.
    pub assessment: String,
    pub category: Category,
    pub expires_on: Option<OffsetDateTime>,
    pub description: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Whether the counters reflect it (false once the expiry sweep has ended it).
    pub active: bool,
}

impl Exemption {
    /// The subscription of a resource-scoped exemption; `None` at management-group scope.
    pub fn subscription(&self) -> Option<Uuid> {
        self.scope.subscription()
    }

    /// The rule as it applies within `subscription` (lowercase id), a subscription the exemption
    /// covers: a management group's covers the whole subscription.
    pub fn rule_in(&self, subscription: &str) -> ExemptionRule {
        let scope_key = match &self.scope {
            AnyScope::Arm(id) => id.key().to_owned(),
            AnyScope::ManagementGroup(_) => format!("/subscriptions/{subscription}"),
        };
        ExemptionRule {
            name: self.name.clone(),
            scope_key,
            assessment_key: self.assessment.to_ascii_lowercase(),
            category: self.category,
            description: self.description.clone(),
        }
    }
}

/// What the effective-status decision needs of an active exemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptionRule {
    pub name: String,
    /// Lowercase scope id.
    pub scope_key: String,
    /// Lowercase assessment name.
    pub assessment_key: String,
    pub category: Category,
    pub description: String,
}

impl ExemptionRule {
    /// How an exempt assessment's status description reads: the category, then the reason given.
    pub fn status_description(&self) -> String {
        format!("Exempt ({}): {}", self.category.as_str(), self.description)
    }
}

/// The longest the upkeep task sleeps.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// How often status transitions past their retention are dropped.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The status cause an exempt assessment reads with.
pub const EXEMPT_CAUSE: &str = "Exempt";

/// Is the resource `resource_key` at or below `scope_key` (both lowercase ids)?
pub fn covers(scope_key: &str, resource_key: &str) -> bool {
    resource_key
        .strip_prefix(scope_key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The active exemption (the first, by the order given) that exempts the assessment
/// `name_key` of `resource_key`, if any.
pub fn exempting<'a>(
    rules: &'a [ExemptionRule],
    resource_key: &str,
    name_key: &str,
) -> Option<&'a ExemptionRule> {
    rules.iter().find(|r| r.assessment_key == name_key && covers(&r.scope_key, resource_key))
}

/// THE decision: the status an assessment counts with. `None` (no assessment) stays `None`.
pub fn effective_status(stored: Option<Status>, exempt: bool) -> Option<Status> {
    match stored {
        Some(_) if exempt => Some(Status::NotApplicable),
        other => other,
    }
}

/// The effective status of one assessment against a set of active exemptions.
pub fn effective_of(
    rules: &[ExemptionRule],
    resource_key: &str,
    name_key: &str,
    stored: Option<Status>,
) -> Option<Status> {
    effective_status(stored, exempting(rules, resource_key, name_key).is_some())
}

/// A page of the exemption list: which exemptions, after which name key. An exemption is listed
/// when it matches either part: the resource-scoped part (`subscriptions` and `scope`) or the
/// management-group part (`groups`).
#[derive(Debug, Clone, Default)]
pub struct ExemptionFilter {
    /// Resource-scoped exemptions of these subscriptions only (`None`: all).
    pub subscriptions: Option<Vec<Uuid>>,
    /// Resource-scoped exemptions whose scope is at or below this id, or covers it, only.
    pub scope: Option<ResourceId>,
    /// Management-group exemptions of these groups (lowercase names) only (`None`: all).
    pub groups: Option<Vec<String>>,
    /// Only active (`true`) or only expired (`false`) exemptions.
    pub active: Option<bool>,
}

/// Storage of exemptions, and the reads of effective statuses improvements need.
#[async_trait]
pub(crate) trait ExemptionEngine: Send + Sync {
    /// Create or replace; re-steps the assessments whose effective status changes, in one
    /// transaction with a history point of reason `exemption`. True when created.
    async fn put_exemption(&self, exemption: &Exemption, now: OffsetDateTime) -> Result<bool>;
    async fn exemption(&self, name_key: &str) -> Result<Option<Exemption>>;
    /// Ordered by name key, after `after`.
    async fn exemptions(
        &self,
        filter: &ExemptionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Exemption>>;
    /// Remove (re-stepping as above); the removed exemption.
    async fn delete_exemption(
        &self,
        name_key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Exemption>>;
    /// End every active exemption whose expiry is at or before `now`; the subscriptions touched.
    async fn expire_exemptions(&self, now: OffsetDateTime) -> Result<Vec<Uuid>>;
    /// The earliest expiry of an active exemption.
    async fn next_expiry(&self) -> Result<Option<OffsetDateTime>>;
    /// The active exemptions of a subscription.
    async fn exemption_rules(&self, subscription: Uuid) -> Result<Vec<ExemptionRule>>;
    /// (resource key, name key, effective status) of the assessments at or below `scope`.
    async fn effective_statuses(&self, scope: &ResourceId)
        -> Result<Vec<(String, String, Status)>>;
    /// Per assessment name key: how many assessments at or below `scope` are effectively
    /// unhealthy.
    async fn unhealthy_counts(&self, scope: &ResourceId) -> Result<Vec<(String, i64)>>;
    /// The effectively unhealthy assessments of `name_key` at or below `scope`: (resource key,
    /// resource id) ordered by key, after `after`.
    async fn unhealthy_resources(
        &self,
        scope: &ResourceId,
        name_key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>>;
}

impl Store {
    /// Create or replace an exemption; the scores it moves move in the same transaction.
    pub async fn put_exemption(&self, exemption: &Exemption) -> Result<bool> {
        let previous = self.engine().exemption(&exemption.name.to_ascii_lowercase()).await?;
        let result = self.engine().put_exemption(exemption, OffsetDateTime::now_utc()).await;
        self.invalidate_exempted(previous.iter().chain([exemption]));
        self.inner.exemptions_changed.notify_one();
        result
    }

    pub async fn exemption(&self, name: &str) -> Result<Option<Exemption>> {
        self.engine().exemption(&name.to_ascii_lowercase()).await
    }

    pub async fn exemptions(
        &self,
        filter: &ExemptionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Exemption>> {
        self.engine().exemptions(filter, after, limit).await
    }

    /// Remove an exemption (the stored statuses it hid count again); the removed one.
    pub async fn delete_exemption(&self, name: &str) -> Result<Option<Exemption>> {
        let removed = self
            .engine()
            .delete_exemption(&name.to_ascii_lowercase(), OffsetDateTime::now_utc())
            .await?;
        self.invalidate_exempted(removed.iter());
        Ok(removed)
    }

    /// Drop the views these exemptions' changes may have moved: their subscriptions', or every
    /// view when one lies at a management group (rare, and its subscriptions are many).
    fn invalidate_exempted<'a>(&self, changed: impl Iterator<Item = &'a Exemption> + Clone) {
        if changed.clone().any(|e| e.subscription().is_none()) {
            self.invalidate_all();
        } else {
            self.invalidate(changed.filter_map(Exemption::subscription));
        }
    }

    /// End the exemptions whose time is up (the serve timer, and start-up); how many
    /// subscriptions moved.
    pub async fn expire_exemptions(&self) -> Result<usize> {
        let now = OffsetDateTime::now_utc();
        // A read first: the write lock only when something is due.
        if self.engine().next_expiry().await?.is_none_or(|t| t > now) {
            return Ok(0);
        }
        let touched = self.engine().expire_exemptions(now).await?;
        let n = touched.len();
        self.invalidate(touched);
        Ok(n)
    }

    /// The server's upkeep of issue 11's state, in one task: end exemptions when their time is up
    /// (at start-up, then woken at the next expiry or when an exemption is written; at least every
    /// `UPKEEP_INTERVAL`, which also catches exemptions other processes wrote), and drop status
    /// transitions older than `retention` (`None`: keep them all) once an hour.
    pub fn upkeep(&self, retention: Option<std::time::Duration>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut pruned: Option<std::time::Instant> = None;
            loop {
                let mut wait = UPKEEP_INTERVAL;
                if let Err(e) = store.expire_exemptions().await {
                    tracing::warn!(error = format!("{e:#}"), "cannot expire exemptions");
                    wait = std::time::Duration::from_secs(1);
                }
                if let Some(keep) = retention {
                    if pruned.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                        let before = OffsetDateTime::now_utc() - keep;
                        match store.prune_changes(before).await {
                            Ok(n) => {
                                pruned = Some(std::time::Instant::now());
                                if n > 0 {
                                    tracing::info!(
                                        removed = n,
                                        "pruned status changes past their retention"
                                    );
                                }
                            }
                            Err(e) => tracing::warn!(
                                error = format!("{e:#}"),
                                "cannot prune status changes"
                            ),
                        }
                    }
                }
                if let Ok(Some(next)) = store.next_exemption_expiry().await {
                    let until = next - OffsetDateTime::now_utc();
                    // A little after the instant, so the sweep finds it due.
                    let until = std::time::Duration::try_from(until).unwrap_or_default()
                        + std::time::Duration::from_millis(20);
                    wait = wait.min(until);
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = store.inner.exemptions_changed.notified() => {}
                }
            }
        })
    }

    pub async fn next_exemption_expiry(&self) -> Result<Option<OffsetDateTime>> {
        self.engine().next_expiry().await
    }

    pub async fn exemption_rules(&self, subscription: Uuid) -> Result<Vec<ExemptionRule>> {
        self.engine().exemption_rules(subscription).await
    }

    pub async fn effective_statuses(
        &self,
        scope: &ResourceId,
    ) -> Result<Vec<(String, String, Status)>> {
        self.engine().effective_statuses(scope).await
    }

    pub async fn unhealthy_counts(&self, scope: &ResourceId) -> Result<Vec<(String, i64)>> {
        self.engine().unhealthy_counts(scope).await
    }

    pub async fn unhealthy_resources(
        &self,
        scope: &ResourceId,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        self.engine().unhealthy_resources(scope, &name.to_ascii_lowercase(), after, limit).await
    }

    /// [`Store::unhealthy_counts`] summed over several subscriptions (a management group's).
    pub async fn unhealthy_counts_across(
        &self,
        subscriptions: &[Uuid],
    ) -> Result<BTreeMap<String, i64>> {
        let mut sum = BTreeMap::new();
        for sub in subscriptions {
            for (name, n) in self.unhealthy_counts(&ResourceId::subscription_scope(*sub)).await? {
                *sum.entry(name).or_insert(0) += n;
            }
        }
        Ok(sum)
    }

    /// [`Store::unhealthy_resources`] over several subscriptions, in one key order: a resource
    /// key starts with its subscription's, so the subscriptions are walked in key order and each
    /// one's keys lie in `["/subscriptions/{id}/", "/subscriptions/{id}0")`.
    pub async fn unhealthy_resources_across(
        &self,
        subscriptions: &[Uuid],
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let mut scopes: Vec<ResourceId> =
            subscriptions.iter().map(|s| ResourceId::subscription_scope(*s)).collect();
        scopes.sort_by(|a, b| a.key().cmp(b.key()));
        let mut out = Vec::with_capacity(limit);
        for scope in scopes {
            if out.len() >= limit {
                break;
            }
            if after.is_some_and(|a| a >= format!("{}0", scope.key()).as_str()) {
                continue; // every key of this subscription is at or before the cursor
            }
            let rows = self.unhealthy_resources(&scope, name, after, limit - out.len()).await?;
            out.extend(rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(scope: &str, assessment: &str) -> ExemptionRule {
        ExemptionRule {
            name: "e".into(),
            scope_key: scope.into(),
            assessment_key: assessment.into(),
            category: Category::Waiver,
            description: "d".into(),
        }
    }

    #[test]
    fn a_scope_covers_itself_and_what_is_below_it_only() {
        assert!(covers("/subscriptions/s", "/subscriptions/s"));
        assert!(covers("/subscriptions/s", "/subscriptions/s/resourcegroups/rg/providers/x/y/z"));
        assert!(covers(
            "/subscriptions/s/resourcegroups/rg",
            "/subscriptions/s/resourcegroups/rg/p"
        ));
        assert!(!covers(
            "/subscriptions/s/resourcegroups/rg",
            "/subscriptions/s/resourcegroups/rg2/p"
        ));
        assert!(!covers(
            "/subscriptions/s/resourcegroups/rg/p",
            "/subscriptions/s/resourcegroups/rg"
        ));
    }

    #[test]
    fn only_a_matching_exemption_makes_an_assessment_not_applicable() {
        let rules = [rule("/subscriptions/s/resourcegroups/rg", "a")];
        let vm = "/subscriptions/s/resourcegroups/rg/providers/m/v/vm";
        assert_eq!(
            effective_of(&rules, vm, "a", Some(Status::Unhealthy)),
            Some(Status::NotApplicable)
        );
        assert_eq!(effective_of(&rules, vm, "b", Some(Status::Unhealthy)), Some(Status::Unhealthy));
        assert_eq!(effective_of(&rules, vm, "a", None), None, "a deleted assessment stays deleted");
        assert_eq!(
            effective_of(
                &rules,
                "/subscriptions/s/resourcegroups/other/v",
                "a",
                Some(Status::Healthy)
            ),
            Some(Status::Healthy)
        );
    }

    #[test]
    fn categories_parse_in_any_case_only() {
        assert_eq!(Category::parse("waiver"), Some(Category::Waiver));
        assert_eq!(Category::parse("MITIGATED"), Some(Category::Mitigated));
        assert_eq!(Category::parse("Accepted"), None);
    }
}
