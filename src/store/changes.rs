//! What changed, engine-neutral: the record of one assessment status transition and the
//! [`Store`] reads over it.
//!
//! Engines record a transition in the transaction of the write that made it (an assessment write,
//! bulk import included, or an exemption beginning or ending), with the subscription's secure
//! score just before and just after it, so the log and the scores cannot disagree. The log is
//! bounded by age: [`Store::prune_changes`] drops what is older than the retention the server
//! runs with (`serve --changes-retention-days`), a bounded chunk per transaction.

use anyhow::Result;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;
use crate::score::{ScoreDetails, Status};

/// The most transitions one pruning transaction removes.
pub const PRUNE_CHUNK: usize = 5000;

/// Why a status moved when no assessment write moved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// An exemption began or ended: the effective status moved, the stored one did not.
    Exemption,
}

impl ChangeCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeCause::Exemption => "exemption",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "exemption" => Ok(ChangeCause::Exemption),
            other => anyhow::bail!("stored change cause '{other}' is not a cause"),
        }
    }
}

/// One status transition of one assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// Position in the log (increasing with time).
    pub seq: i64,
    pub at: OffsetDateTime,
    /// The resource id, with the casing of the assessment's first write.
    pub resource_id: String,
    /// The assessment (metadata) name, with the casing of its first write.
    pub assessment: String,
    /// `None`: the assessment did not exist before (a first write).
    pub old: Option<Status>,
    /// `None`: the assessment was deleted.
    pub new: Option<Status>,
    /// `None` for an assessment write.
    pub cause: Option<ChangeCause>,
    /// The subscription's secure score just before and just after the transition.
    pub before: ScoreDetails,
    pub after: ScoreDetails,
}

/// Which way a page of changes runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

#[async_trait]
pub(crate) trait ChangeEngine: Send + Sync {
    /// Transitions of a subscription with `from <= at <= to`, in `order`, strictly after the
    /// sequence number `after` (in that order).
    async fn changes(
        &self,
        subscription: Uuid,
        from: OffsetDateTime,
        to: OffsetDateTime,
        order: Order,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StatusChange>>;
    /// Drop at most `limit` of the oldest transitions recorded before `before`, in one
    /// transaction; how many.
    async fn prune_changes(&self, before: OffsetDateTime, limit: usize) -> Result<u64>;
}

impl Store {
    pub async fn changes(
        &self,
        subscription: Uuid,
        from: OffsetDateTime,
        to: OffsetDateTime,
        order: Order,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StatusChange>> {
        self.engine().changes(subscription, from, to, order, after, limit).await
    }

    /// Apply the retention: drop transitions older than `before`; how many. A large backlog
    /// (a first prune after a bulk import) goes in transactions of [`PRUNE_CHUNK`] rows, with a
    /// pause between them, so that writers never wait long behind it.
    pub async fn prune_changes(&self, before: OffsetDateTime) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.engine().prune_changes(before, PRUNE_CHUNK).await?;
            total += n;
            if n < PRUNE_CHUNK as u64 {
                return Ok(total);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AssessmentInput, Category, Exemption, ExemptionFilter, Write};
    use super::*;
    use crate::arm::ResourceId;

    async fn store_with_a_transition() -> (Store, Uuid, ResourceId) {
        let (store, id) = Store::memory_with_subscription().await;
        let resource = ResourceId::parse(&format!(
            "/subscriptions/{id}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        ))
        .unwrap();
        let write = Write::Put(AssessmentInput {
            resource: resource.clone(),
            name: "21300918-b2e3-0346-785f-c77ff57d243b".into(),
            status: Status::Unhealthy,
            cause: None,
            description: None,
            resource_details: serde_json::json!({"source": "Azure"}),
            additional_data: None,
            partner_name: None,
        });
        store.apply(&[write]).await.unwrap();
        (store, id, resource)
    }

    async fn all(store: &Store, id: Uuid) -> Vec<StatusChange> {
        let (from, to) = (OffsetDateTime::UNIX_EPOCH, OffsetDateTime::now_utc());
        store.changes(id, from, to, Order::OldestFirst, None, 100).await.unwrap()
    }

    #[tokio::test]
    async fn retention_drops_only_what_is_older() {
        let (store, id, _) = store_with_a_transition().await;
        let at = all(&store, id).await[0].at;
        assert_eq!(store.prune_changes(at).await.unwrap(), 0, "not older than itself");
        assert_eq!(all(&store, id).await.len(), 1);
        let later = at + time::Duration::milliseconds(1);
        assert_eq!(store.prune_changes(later).await.unwrap(), 1);
        assert!(all(&store, id).await.is_empty());
    }

    #[tokio::test]
    async fn removing_a_subscription_removes_its_log_and_exemptions() {
        let (store, id, resource) = store_with_a_transition().await;
        let now = OffsetDateTime::now_utc();
        let exemption = Exemption {
            name: "e".into(),
            scope: crate::arm::AnyScope::Arm(resource),
            assessment: "21300918-b2e3-0346-785f-c77ff57d243b".into(),
            category: Category::Mitigated,
            expires_on: None,
            description: "d".into(),
            created_at: now,
            updated_at: now,
            active: true,
        };
        store.put_exemption(&exemption).await.unwrap();
        assert_eq!(all(&store, id).await.len(), 2, "the write and the exemption's effect");
        assert!(store.remove_subscription(id).await.unwrap());
        assert!(all(&store, id).await.is_empty());
        assert!(store.exemption("e").await.unwrap().is_none());
        let listed = store.exemptions(&ExemptionFilter::default(), None, 10).await.unwrap();
        assert!(listed.is_empty());
    }
}
