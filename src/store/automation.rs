//! Continuous export's storage, engine-neutral: the stored automations, the outbox of changes
//! (written by the engine inside the transaction of the change), and the deliveries still to
//! make. The SQL lives in `store::sqlite::outbox`; what an automation means is `crate::automation`'s.

use anyhow::Result;
use async_trait::async_trait;
use uuid::Uuid;

use super::Store;

/// A stored `Microsoft.Security/automations` resource.
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationRecord {
    pub subscription: Uuid,
    /// Casing of the first write.
    pub resource_group: String,
    pub name: String,
    pub etag: String,
    /// location, kind, tags, properties (secrets included), as `crate::automation::Spec` stores them.
    pub spec: serde_json::Value,
    /// Unix ms of the last periodic snapshot, `None` when one is due at once.
    pub last_snapshot_at: Option<i64>,
}

impl AutomationRecord {
    /// The ARM id, with the casing of the first write.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Security/automations/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// Where an automation list resumes: after this (resource group key, name key).
pub type AutomationKey = (String, String);

/// What changed, as the outbox records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Assessment,
    SecureScore,
    SecureScoreControl,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Assessment => "assessment",
            EventKind::SecureScore => "secureScore",
            EventKind::SecureScoreControl => "secureScoreControl",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        [EventKind::Assessment, EventKind::SecureScore, EventKind::SecureScoreControl]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub seq: i64,
    pub event_id: Uuid,
    pub subscription: Uuid,
    pub kind: EventKind,
    /// `created`, `updated` or `deleted`.
    pub change: String,
    /// Lowercase id of the resource the event is about (for assessments: the assessed resource).
    pub resource_key: String,
    /// The record at the time of the change (see `store::sqlite::outbox` for the shapes).
    pub payload: serde_json::Value,
}

/// A delivery to make: one event for one action of one automation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub event_id: Uuid,
    pub subscription: Uuid,
    /// The automation's ARM id.
    pub automation_id: String,
    pub action_index: usize,
    /// Lowercase id of the resource: with the automation and the action, the ordering lane.
    pub resource_key: String,
    pub event_source: String,
    pub change: String,
    /// The action as written (secrets included).
    pub target: serde_json::Value,
    /// The resource's JSON as a GET returns it.
    pub body: serde_json::Value,
}

/// A delivery waiting for its (next) attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub seq: i64,
    pub attempts: i64,
    pub new: NewDelivery,
}

/// How many events wait: changes not yet routed, and deliveries not yet made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub changes: i64,
    pub deliveries: i64,
}

#[async_trait]
pub(crate) trait AutomationEngine: Send + Sync {
    /// Create or replace (the casing of the first write stays); `None` when the subscription
    /// does not exist, else whether it was created. A replace keeps the snapshot schedule.
    async fn put_automation(&self, record: &AutomationRecord) -> Result<Option<bool>>;
    async fn automation(
        &self,
        subscription: Uuid,
        group_key: &str,
        name_key: &str,
    ) -> Result<Option<AutomationRecord>>;
    /// A subscription's automations (of one resource group when given), ordered by key.
    async fn automations(
        &self,
        subscription: Uuid,
        group_key: Option<&str>,
        after: Option<&AutomationKey>,
        limit: usize,
    ) -> Result<Vec<AutomationRecord>>;
    /// Every automation of every subscription (the worker's snapshot schedule).
    async fn all_automations(&self) -> Result<Vec<AutomationRecord>>;
    /// Delete, with the deliveries still waiting for it.
    async fn delete_automation(
        &self,
        subscription: Uuid,
        group_key: &str,
        name_key: &str,
    ) -> Result<bool>;
    async fn set_snapshot_at(
        &self,
        subscription: Uuid,
        group_key: &str,
        name_key: &str,
        at_ms: i64,
    ) -> Result<()>;

    /// The oldest outbox rows.
    async fn change_events(&self, limit: usize) -> Result<Vec<ChangeEvent>>;
    /// Route outbox rows: insert their deliveries and delete the rows, in one transaction.
    async fn route_changes(
        &self,
        seqs: &[i64],
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<()>;
    /// Insert deliveries (snapshots).
    async fn enqueue(&self, deliveries: &[NewDelivery], now_ms: i64) -> Result<()>;
    /// Deliveries due at `now_ms` that head their lane, oldest first.
    async fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>>;
    async fn delivered(&self, seq: i64) -> Result<()>;
    async fn retry_later(&self, seq: i64, next_attempt_ms: i64, error: &str) -> Result<()>;
    async fn backlog(&self) -> Result<Backlog>;
}

/// Continuous export's part of the [`Store`] handle. Automations never move a score, so no
/// cached view is dropped.
impl Store {
    pub async fn put_automation(&self, record: &AutomationRecord) -> Result<Option<bool>> {
        self.engine().put_automation(record).await
    }

    pub async fn automation(
        &self,
        subscription: Uuid,
        group: &str,
        name: &str,
    ) -> Result<Option<AutomationRecord>> {
        let (g, n) = (group.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.engine().automation(subscription, &g, &n).await
    }

    pub async fn automations(
        &self,
        subscription: Uuid,
        group: Option<&str>,
        after: Option<&AutomationKey>,
        limit: usize,
    ) -> Result<Vec<AutomationRecord>> {
        let group = group.map(str::to_ascii_lowercase);
        self.engine().automations(subscription, group.as_deref(), after, limit).await
    }

    pub async fn all_automations(&self) -> Result<Vec<AutomationRecord>> {
        self.engine().all_automations().await
    }

    pub async fn delete_automation(
        &self,
        subscription: Uuid,
        group: &str,
        name: &str,
    ) -> Result<bool> {
        let (g, n) = (group.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.engine().delete_automation(subscription, &g, &n).await
    }

    pub async fn set_snapshot_at(&self, record: &AutomationRecord, at_ms: i64) -> Result<()> {
        let (g, n) = (record.resource_group.to_ascii_lowercase(), record.name.to_ascii_lowercase());
        self.engine().set_snapshot_at(record.subscription, &g, &n, at_ms).await
    }

    pub async fn change_events(&self, limit: usize) -> Result<Vec<ChangeEvent>> {
        self.engine().change_events(limit).await
    }

    pub async fn route_changes(
        &self,
        seqs: &[i64],
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<()> {
        self.engine().route_changes(seqs, deliveries, now_ms).await
    }

    pub async fn enqueue_deliveries(&self, deliveries: &[NewDelivery], now_ms: i64) -> Result<()> {
        self.engine().enqueue(deliveries, now_ms).await
    }

    pub async fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>> {
        self.engine().due_deliveries(now_ms, limit).await
    }

    pub async fn delivered(&self, seq: i64) -> Result<()> {
        self.engine().delivered(seq).await
    }

    pub async fn retry_later(&self, seq: i64, next_attempt_ms: i64, error: &str) -> Result<()> {
        self.engine().retry_later(seq, next_attempt_ms, error).await
    }

    pub async fn export_backlog(&self) -> Result<Backlog> {
        self.engine().backlog().await
    }
}

/// The outbox payload of an assessment: the stored record, so the worker renders what a GET
/// answered at the time of the change.
pub fn assessment_payload(a: &super::Assessment) -> serde_json::Value {
    serde_json::json!({
        "resourceId": a.resource_id,
        "name": a.name,
        "status": a.status.as_str(),
        "cause": a.cause,
        "description": a.description,
        "resourceDetails": a.resource_details,
        "additionalData": a.additional_data,
        "partnerName": a.partner_name,
        "firstEvaluationDate": crate::arm::format_time(a.first_evaluation_date),
        "statusChangeDate": crate::arm::format_time(a.status_change_date),
    })
}

/// The record back from [`assessment_payload`].
pub fn assessment_from_payload(v: &serde_json::Value) -> Result<super::Assessment> {
    use anyhow::Context;
    let text = |key: &str| v.get(key).and_then(serde_json::Value::as_str).map(str::to_string);
    let required = |key: &str| text(key).with_context(|| format!("outbox payload lacks '{key}'"));
    let status = required("status")?;
    Ok(super::Assessment {
        resource_id: required("resourceId")?,
        name: required("name")?,
        status: crate::score::Status::parse(&status)
            .with_context(|| format!("outbox status '{status}' is not a status"))?,
        cause: text("cause"),
        description: text("description"),
        resource_details: v.get("resourceDetails").cloned().unwrap_or_default(),
        additional_data: v.get("additionalData").and_then(|d| d.as_object().cloned()),
        partner_name: text("partnerName"),
        first_evaluation_date: crate::arm::parse_time(&required("firstEvaluationDate")?)?,
        status_change_date: crate::arm::parse_time(&required("statusChangeDate")?)?,
    })
}
