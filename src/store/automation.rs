//! Continuous export's storage, engine-neutral: the stored automations, the outbox of changes
//! (written by the engine inside the transaction of the change), and the deliveries still to
//! make. The SQL lives in `store::sql::automation`; what an automation means is `crate::automation`'s.

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
    /// The record at the time of the change (see `store::sql::automation` for the shapes).
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

/// The storage contract of continuous export, run against every engine.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::ResourceId;
    use crate::score::Status;
    use crate::store::{AssessmentInput, StoreConfig, Subscription, Write};
    use serde_json::json;

    async fn engines() -> Vec<(Store, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sqlite = Store::open(&StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() })
            .await
            .expect("sqlite opens");
        let memory = Store::open(&StoreConfig::Memory).await.expect("memory opens");
        vec![(sqlite, Some(dir)), (memory, None)]
    }

    async fn subscription(store: &Store) -> Uuid {
        let id = Uuid::new_v4();
        store
            .put_subscription(&Subscription {
                id,
                display_name: "t".into(),
                tenant_id: Uuid::nil(),
                state: "Enabled".into(),
            })
            .await
            .unwrap();
        id
    }

    fn record(sub: Uuid, name: &str) -> AutomationRecord {
        AutomationRecord {
            subscription: sub,
            resource_group: "RG".into(),
            name: name.into(),
            etag: "e".into(),
            spec: json!({"location": "x", "properties": {"isEnabled": true, "scopes": [], "sources": [], "actions": []}}),
            last_snapshot_at: None,
        }
    }

    fn put(sub: Uuid, status: Status) -> Write {
        Write::Put(AssessmentInput {
            resource: ResourceId::parse(&format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")).unwrap(),
            name: "21300918-b2e3-0346-785f-c77ff57d243b".into(),
            status,
            cause: None,
            description: None,
            resource_details: json!({"source": "Azure"}),
            additional_data: None,
            partner_name: None,
        })
    }

    fn kinds(events: &[ChangeEvent]) -> Vec<(EventKind, String)> {
        events.iter().map(|e| (e.kind, e.change.clone())).collect()
    }

    #[tokio::test]
    async fn changes_reach_the_outbox_with_their_transaction_and_only_where_automations_are() {
        for (store, _dir) in engines().await {
            let quiet = subscription(&store).await;
            let watched = subscription(&store).await;
            assert_eq!(store.put_automation(&record(watched, "a")).await.unwrap(), Some(true));
            store
                .apply(&[put(quiet, Status::Unhealthy), put(watched, Status::Unhealthy)])
                .await
                .unwrap();
            let events = store.change_events(100).await.unwrap();
            assert!(events.iter().all(|e| e.subscription == watched), "{events:?}");
            use EventKind::*;
            assert_eq!(
                kinds(&events),
                [
                    (Assessment, "created".into()),
                    (SecureScoreControl, "updated".into()),
                    (SecureScore, "updated".into())
                ]
            );
            let a = assessment_from_payload(&events[0].payload).unwrap();
            assert_eq!(a.status, Status::Unhealthy);
            assert!(events[0].resource_key.ends_with("/virtualmachines/vm/providers/microsoft.security/assessments/21300918-b2e3-0346-785f-c77ff57d243b"));
            assert_eq!(events[1].payload["unhealthy"], 1);
            assert_eq!(events[2].payload["percentage"], 0.0);

            // Routing deletes the outbox rows; the same content again is no change.
            let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
            store.route_changes(&seqs, &[], 0).await.unwrap();
            store.apply(&[put(watched, Status::Unhealthy)]).await.unwrap();
            assert!(store.change_events(100).await.unwrap().is_empty());
            // A status change moves the assessment, its control and the score; a delete too.
            store.apply(&[put(watched, Status::Healthy)]).await.unwrap();
            let w = put(watched, Status::Healthy);
            store
                .apply(&[Write::Delete {
                    resource: w.resource().clone(),
                    name: "21300918-b2e3-0346-785f-c77ff57d243b".into(),
                }])
                .await
                .unwrap();
            let events = store.change_events(100).await.unwrap();
            assert_eq!(kinds(&events)[0], (Assessment, "updated".into()));
            assert_eq!(kinds(&events)[3], (Assessment, "deleted".into()));
            assert_eq!(events.len(), 6, "{:?}", kinds(&events));
            assert_eq!(
                store.export_backlog().await.unwrap(),
                Backlog { changes: 6, deliveries: 0 }
            );
        }
    }

    fn delivery(sub: Uuid, automation: &str, resource: &str) -> NewDelivery {
        NewDelivery {
            event_id: Uuid::new_v4(),
            subscription: sub,
            automation_id: automation.into(),
            action_index: 0,
            resource_key: resource.into(),
            event_source: "Assessments".into(),
            change: "created".into(),
            target: json!({"actionType": "LogicApp"}),
            body: json!({"n": resource}),
        }
    }

    #[tokio::test]
    async fn only_the_head_of_a_lane_is_due_and_a_retry_holds_its_lane() {
        for (store, _dir) in engines().await {
            let sub = subscription(&store).await;
            let a = record(sub, "a");
            store.put_automation(&a).await.unwrap();
            let id = a.id();
            let (r1a, r1b, r2) =
                (delivery(sub, &id, "/r1"), delivery(sub, &id, "/r1"), delivery(sub, &id, "/r2"));
            store.enqueue_deliveries(&[r1a.clone(), r1b.clone(), r2.clone()], 0).await.unwrap();
            let due = |d: Vec<Delivery>| d.into_iter().map(|d| d.new.event_id).collect::<Vec<_>>();
            assert_eq!(
                due(store.due_deliveries(10, 10).await.unwrap()),
                [r1a.event_id, r2.event_id]
            );
            let head = store.due_deliveries(10, 10).await.unwrap()[0].seq;
            store.retry_later(head, 1_000, "down").await.unwrap();
            assert_eq!(
                due(store.due_deliveries(10, 10).await.unwrap()),
                [r2.event_id],
                "r1 waits for its head"
            );
            let later = store.due_deliveries(1_000, 10).await.unwrap();
            assert_eq!(later[0].attempts, 1);
            assert_eq!(later[0].new, r1a, "a delivery reads back as written");
            store.delivered(head).await.unwrap();
            assert_eq!(
                due(store.due_deliveries(1_000, 10).await.unwrap()),
                [r1b.event_id, r2.event_id]
            );
            assert_eq!(store.export_backlog().await.unwrap().deliveries, 2);
            // A deleted automation takes its deliveries along.
            assert!(store.delete_automation(sub, "rg", "A").await.unwrap());
            assert_eq!(store.export_backlog().await.unwrap().deliveries, 0);
        }
    }
}
