//! The engine abstraction (crate-private) and the records it stores. An engine owns SQL and
//! transactions; the scoring arithmetic it applies on every write is `score::step`, so every
//! engine maintains exactly the same state.

use anyhow::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

pub use super::subscription::Subscription;
pub use super::verify::HistoryReason;
use crate::arm::ResourceId;
use crate::score::{ControlCounts, ScoreDetails, Status};

/// What a client writes for one assessment (already validated).
#[derive(Debug, Clone, PartialEq)]
pub struct AssessmentInput {
    pub resource: ResourceId,
    pub name: String,
    pub status: Status,
    pub cause: Option<String>,
    pub description: Option<String>,
    pub resource_details: serde_json::Value,
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
    pub partner_name: Option<String>,
}

/// A stored assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The resource id with the casing of its first write.
    pub resource_id: String,
    pub name: String,
    pub status: Status,
    pub cause: Option<String>,
    pub description: Option<String>,
    pub resource_details: serde_json::Value,
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
    pub partner_name: Option<String>,
    pub first_evaluation_date: OffsetDateTime,
    pub status_change_date: OffsetDateTime,
}

#[derive(Debug, Clone)]
// Writes are short-lived batch items; boxing the common variant would only add allocations.
#[allow(clippy::large_enum_variant)]
pub enum Write {
    Put(AssessmentInput),
    Delete { resource: ResourceId, name: String },
}

impl Write {
    pub fn resource(&self) -> &ResourceId {
        match self {
            Write::Put(a) => &a.resource,
            Write::Delete { resource, .. } => resource,
        }
    }

    /// The assessment's name, as the write spells it.
    pub fn name(&self) -> &str {
        match self {
            Write::Put(a) => &a.name,
            Write::Delete { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created(Assessment),
    Replaced(Assessment),
    Deleted,
    /// Delete of an assessment that did not exist.
    Absent,
    /// The resource's subscription does not exist: nothing was written.
    NoSubscription,
}

/// A change another process committed, as an engine's change feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A write to this subscription (its assessments, its record, its settings); `version` counts
    /// the subscription's writes, so a replica can tell the order of what it hears.
    Subscription { id: Uuid, version: i64 },
    /// Anything else — or the feed reconnected and may have missed notifications: drop all views.
    Everything,
}

/// A secure score as it was from `at` on.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    pub at: OffsetDateTime,
    pub score: ScoreDetails,
    pub weight: i64,
    /// Why the point was recorded, when not by an assessment write.
    pub reason: Option<HistoryReason>,
}

#[async_trait]
pub(crate) trait Engine:
    super::identity::IdentityEngine
    + super::verify::MaintenanceEngine
    + SubAssessmentEngine
    + super::exemptions::ExemptionEngine
    + super::changes::ChangeEngine
    + super::automation::AutomationEngine
    + super::management_groups::ManagementGroupEngine
    + Send
    + Sync
    + 'static
{
    /// A tiny committed write that changes nothing anyone reads (`/readyz` after write failures).
    async fn probe_write(&self) -> Result<()>;
    /// Move the write-ahead log into the database and truncate it (after bulk writes). Engines
    /// without a local log have nothing to do.
    async fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
    /// A counter bumped by every write transaction, by any process.
    async fn generation(&self) -> Result<i64>;
    /// What other processes write, as it commits, when the engine can tell (PostgreSQL's
    /// LISTEN/NOTIFY); `None`: the store polls [`Engine::generation`] instead.
    async fn change_feed(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        Ok(None)
    }
    async fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Set a value unless one exists; returns the value in force.
    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<String>;
    /// Replace a value only if it still is `expected`, atomically; whether it was replaced.
    async fn swap_meta(&self, key: &str, expected: &str, new: &str) -> Result<bool>;
    /// Several server processes share this database (on other machines, too): what they must
    /// agree on is kept in it, not in a data directory.
    fn shared(&self) -> bool {
        false
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<bool>;
    async fn subscription(&self, id: Uuid) -> Result<Option<Subscription>>;
    async fn subscriptions(&self) -> Result<Vec<Subscription>>;
    async fn remove_subscription(&self, id: Uuid) -> Result<bool>;

    /// Apply writes in one transaction, maintaining tallies, counts and history.
    async fn apply(&self, writes: &[Write], now: OffsetDateTime) -> Result<Vec<Outcome>>;
    async fn assessment(&self, resource_key: &str, name_key: &str) -> Result<Option<Assessment>>;
    async fn assessments(
        &self,
        scope: &ResourceId,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<Assessment>>;

    async fn control_counts(&self, subscription: Uuid) -> Result<Vec<(String, ControlCounts)>>;
    async fn recompute_counts(&self, subscription: Uuid)
        -> Result<BTreeMap<String, ControlCounts>>;

    async fn history(
        &self,
        subscription: Uuid,
        initiative: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<HistoryPoint>>;
    async fn history_before(
        &self,
        subscription: Uuid,
        initiative: &str,
        at: OffsetDateTime,
    ) -> Result<Option<HistoryPoint>>;

    async fn custom_metadata(&self, subscription: Uuid)
        -> Result<Vec<(String, serde_json::Value)>>;
    async fn put_custom_metadata(
        &self,
        subscription: Uuid,
        name: &str,
        properties: &serde_json::Value,
    ) -> Result<()>;
    async fn delete_custom_metadata(&self, subscription: Uuid, name: &str) -> Result<bool>;
}

/// A sub-assessment: one finding below an assessment of a resource. Its `properties` are kept as
/// the client wrote them (validated before they reach the store); they never move a score.
#[derive(Debug, Clone, PartialEq)]
pub struct SubAssessment {
    /// The parent assessment's resource id, with the casing of its first write.
    pub resource_id: String,
    /// The parent assessment's name, with the casing of its first write.
    pub assessment: String,
    pub name: String,
    pub properties: serde_json::Value,
}

/// Where a sub-assessment list resumes: after this (resource key, assessment key, name key).
pub type SubAssessmentKey = (String, String, String);

/// Storage of sub-assessments. Deleting an assessment or a subscription deletes the
/// sub-assessments below it, whichever path deletes it.
#[async_trait]
pub(crate) trait SubAssessmentEngine: Send + Sync {
    /// Create or replace; `None` when the resource's subscription does not exist, else whether
    /// it was created.
    async fn put_sub_assessment(
        &self,
        resource: &ResourceId,
        sub: &SubAssessment,
    ) -> Result<Option<bool>>;
    async fn sub_assessment(
        &self,
        resource: &ResourceId,
        assessment_key: &str,
        name_key: &str,
    ) -> Result<Option<SubAssessment>>;
    /// Sub-assessments at or below `scope` (of one assessment name when given), ordered by key.
    async fn sub_assessments(
        &self,
        scope: &ResourceId,
        assessment_key: Option<&str>,
        after: Option<&SubAssessmentKey>,
        limit: usize,
    ) -> Result<Vec<SubAssessment>>;
    async fn delete_sub_assessment(
        &self,
        resource: &ResourceId,
        assessment_key: &str,
        name_key: &str,
    ) -> Result<bool>;
}
