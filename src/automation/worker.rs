//! The delivery worker of the serve process. Each round it
//!
//! 1. routes the outbox: renders each change as a GET would show it (`api::automations`), picks
//!    the enabled automations whose scope, event source and rule sets take it, and writes one
//!    delivery per action while deleting the outbox rows, in one transaction;
//! 2. takes the snapshots that are due (`…Snapshot` sources: on creation, then every
//!    `snapshot_interval`);
//! 3. attempts the deliveries that are due and head their lane (one automation action and one
//!    resource, so a resource's events arrive in order): a 2xx answer deletes the row, anything
//!    else schedules the next attempt after a capped exponential backoff.
//!
//! Everything waiting lives in the database, read in bounded batches: a restart loses nothing
//! and a long outage costs disk, not memory. Delivery is at-least-once; every event carries its
//! id (header `x-securescore-event-id`, field `EventId` in export files) for de-duplication.

use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::model::{Action, Spec, PRODUCED_SOURCES};
use super::{files, in_scope, source_matches, ExportConfig};
use crate::store::{AutomationRecord, Delivery, EventKind, NewDelivery, Store};

/// Outbox rows routed per transaction.
const ROUTE_BATCH: usize = 200;
/// Deliveries attempted per round (at most this many webhook requests in flight).
const DELIVERY_BATCH: usize = 32;
/// Resources rendered per snapshot page.
const SNAPSHOT_PAGE: usize = 200;

/// The running worker: stop it with [`Worker::stop`] (waits for the round in progress).
pub struct Worker {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Worker {
    pub fn spawn(store: Store, config: ExportConfig) -> Worker {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let handle = tokio::spawn(async move {
            // No redirects: a webhook answers where it was asked; a 3xx is a failed attempt.
            let http = match reqwest::Client::builder()
                .timeout(config.request_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "continuous export is off: no HTTP client");
                    return;
                }
            };
            let state = Arc::new(State { store, config, http });
            run(state, token).await;
        });
        Worker { cancel, handle }
    }

    /// Stop after the round in progress; rows not yet delivered stay for the next start.
    pub async fn stop(self, grace: Duration) {
        self.cancel.cancel();
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(grace, self.handle).await.is_err() {
            tracing::warn!("the export worker did not stop within {grace:?}; its deliveries in flight are retried at the next start");
            abort.abort();
        }
    }
}

struct State {
    store: Store,
    config: ExportConfig,
    http: reqwest::Client,
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// How often the snapshot schedule is looked at (a snapshot is due on creation, then after
/// `snapshot_interval`: a second late is no loss, and idle rounds stay one query lighter).
const SNAPSHOT_CHECK: Duration = Duration::from_secs(1);

async fn run(state: Arc<State>, cancel: CancellationToken) {
    let mut last_check: Option<std::time::Instant> = None;
    loop {
        let check = last_check.is_none_or(|t| t.elapsed() >= SNAPSHOT_CHECK);
        if check {
            last_check = Some(std::time::Instant::now());
        }
        let busy = tokio::select! {
            busy = round(&state, check) => busy,
            () = cancel.cancelled() => return,
        };
        if cancel.is_cancelled() {
            return;
        }
        if !busy {
            tokio::select! {
                () = tokio::time::sleep(state.config.poll_interval) => {}
                () = cancel.cancelled() => return,
            }
        }
    }
}

/// One round; true when there may be more to do at once.
async fn round(state: &State, check_snapshots: bool) -> bool {
    let mut busy = false;
    match route(state).await {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot route the export outbox"),
    }
    if check_snapshots {
        if let Err(e) = snapshots(state).await {
            tracing::warn!(error = format!("{e:#}"), "cannot take export snapshots");
        }
    }
    match deliver(state).await {
        Ok(n) => busy |= n > 0,
        Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the export deliveries"),
    }
    if let Ok(b) = state.store.export_backlog().await {
        metrics::gauge!("securescore_export_backlog", "stage" => "routing").set(b.changes as f64);
        metrics::gauge!("securescore_export_backlog", "stage" => "delivery")
            .set(b.deliveries as f64);
    }
    busy
}

fn source_of(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Assessment => "Assessments",
        EventKind::SecureScore => "SecureScores",
        EventKind::SecureScoreControl => "SecureScoreControls",
    }
}

/// The deliveries of one event to the automations that take it.
fn deliveries_for(
    automations: &[(AutomationRecord, Spec)],
    event_source: &str,
    change: &str,
    event_id: Uuid,
    resource_key: &str,
    body: &Value,
    out: &mut Vec<NewDelivery>,
) {
    for (record, spec) in automations {
        if !spec.properties.is_enabled || !in_scope(spec, resource_key) {
            continue;
        }
        let takes = spec
            .properties
            .sources
            .iter()
            .filter(|s| s.event_source == event_source)
            .any(|s| source_matches(s, body));
        if !takes {
            continue;
        }
        for (i, action) in spec.properties.actions.iter().enumerate() {
            out.push(NewDelivery {
                event_id,
                subscription: record.subscription,
                automation_id: record.id(),
                action_index: i,
                resource_key: resource_key.to_string(),
                event_source: event_source.to_string(),
                change: change.to_string(),
                target: serde_json::to_value(action).unwrap_or_default(),
                body: body.clone(),
            });
        }
    }
}

async fn automations_of(
    store: &Store,
    subscription: Uuid,
) -> Result<Vec<(AutomationRecord, Spec)>> {
    let records = store.automations(subscription, None, None, usize::MAX).await?;
    Ok(records
        .into_iter()
        .filter_map(|r| match Spec::from_record(&r) {
            Ok(spec) => Some((r, spec)),
            Err(e) => {
                tracing::warn!(automation = r.id(), error = %e, "a stored automation does not parse; skipped");
                None
            }
        })
        .collect())
}

async fn route(state: &State) -> Result<usize> {
    let events = state.store.change_events(ROUTE_BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut by_sub: HashMap<Uuid, Vec<(AutomationRecord, Spec)>> = HashMap::new();
    let mut seqs = Vec::with_capacity(events.len());
    let mut out = Vec::new();
    for ev in &events {
        seqs.push(ev.seq);
        let automations = match by_sub.entry(ev.subscription) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(automations_of(&state.store, ev.subscription).await?)
            }
        };
        let source = source_of(ev.kind);
        let wanted = automations.iter().any(|(_, s)| {
            s.properties.is_enabled
                && in_scope(s, &ev.resource_key)
                && s.properties.sources.iter().any(|src| src.event_source == source)
        });
        if !wanted {
            continue;
        }
        let Some(body) = crate::api::automations::render_change(&state.store, ev).await? else {
            continue;
        };
        deliveries_for(
            automations,
            source,
            &ev.change,
            ev.event_id,
            &ev.resource_key,
            &body,
            &mut out,
        );
    }
    state.store.route_changes(&seqs, &out, now_ms()).await?;
    Ok(events.len())
}

async fn snapshots(state: &State) -> Result<()> {
    let now = now_ms();
    let interval = i64::try_from(state.config.snapshot_interval.as_millis()).unwrap_or(i64::MAX);
    for record in state.store.all_automations().await? {
        if record.last_snapshot_at.is_some_and(|at| now.saturating_sub(at) < interval) {
            continue;
        }
        let Ok(spec) = Spec::from_record(&record) else { continue };
        let sources: Vec<&str> = spec
            .properties
            .sources
            .iter()
            .map(|s| s.event_source.as_str())
            .filter(|s| s.ends_with("Snapshot") && PRODUCED_SOURCES.contains(s))
            .collect();
        if spec.properties.is_enabled {
            let pair = [(record.clone(), spec.clone())];
            for source in sources {
                let mut pages =
                    crate::api::automations::Snapshot::new(record.subscription, &spec, source);
                while let Some(page) = pages.next_page(&state.store, SNAPSHOT_PAGE).await? {
                    let mut out = Vec::new();
                    for (key, body) in page {
                        deliveries_for(
                            &pair,
                            source,
                            "snapshot",
                            Uuid::new_v4(),
                            &key,
                            &body,
                            &mut out,
                        );
                    }
                    state.store.enqueue_deliveries(&out, now).await?;
                }
            }
        }
        state.store.set_snapshot_at(&record, now).await?;
    }
    Ok(())
}

async fn deliver(state: &State) -> Result<usize> {
    let due = state.store.due_deliveries(now_ms(), DELIVERY_BATCH).await?;
    let (hooks, local): (Vec<&Delivery>, Vec<&Delivery>) = due
        .iter()
        .partition(|d| d.new.target.get("actionType").and_then(Value::as_str) == Some("LogicApp"));
    let results = futures::future::join_all(hooks.iter().map(|d| post(state, d))).await;
    let mut outcomes: Vec<(&Delivery, std::result::Result<(), String>)> =
        hooks.into_iter().zip(results).collect();
    // Files one after another: two records of one file never interleave.
    for d in local {
        outcomes.push((d, append(state, d).await));
    }
    for (d, result) in outcomes {
        let action = d.new.target.get("actionType").and_then(Value::as_str).unwrap_or("unknown");
        let action: &'static str = match action {
            "LogicApp" => "LogicApp",
            "EventHub" => "EventHub",
            "Workspace" => "Workspace",
            _ => "unknown",
        };
        if d.attempts > 0 {
            metrics::counter!("securescore_export_retries_total", "action" => action).increment(1);
        }
        match result {
            Ok(()) => {
                metrics::counter!("securescore_export_deliveries_total", "action" => action)
                    .increment(1);
                state.store.delivered(d.seq).await?;
            }
            Err(why) => {
                metrics::counter!("securescore_export_failures_total", "action" => action)
                    .increment(1);
                let wait = state.config.backoff(d.attempts + 1);
                tracing::debug!(automation = d.new.automation_id, event = %d.new.event_id, attempts = d.attempts + 1, ?wait, error = why, "export delivery failed; retrying later");
                let next =
                    now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                state.store.retry_later(d.seq, next, &why).await?;
            }
        }
    }
    Ok(due.len())
}

async fn post(state: &State, d: &Delivery) -> std::result::Result<(), String> {
    let action: Action = serde_json::from_value(d.new.target.clone()).map_err(|e| e.to_string())?;
    let Action::LogicApp { uri: Some(uri), .. } = action else {
        return Err("the action has no URI".into());
    };
    let response = state
        .http
        .post(&uri)
        .header("x-securescore-event-id", d.new.event_id.to_string())
        .header("x-securescore-event-source", &d.new.event_source)
        .header("x-securescore-change", &d.new.change)
        .header("x-securescore-automation", &d.new.automation_id)
        .header("x-securescore-delivery-attempt", (d.attempts + 1).to_string())
        .json(&d.new.body)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

async fn append(state: &State, d: &Delivery) -> std::result::Result<(), String> {
    let Some(dir) = state.config.exports_dir.clone() else {
        return Err("no data directory for export files (--memory)".into());
    };
    let file = files::path(&dir, &d.new.automation_id, d.new.action_index);
    let record = files::la_record(
        &d.new.event_source,
        &d.new.event_id.to_string(),
        &d.new.subscription.to_string(),
        &d.new.body,
    );
    let max = state.config.max_file_bytes;
    tokio::task::spawn_blocking(move || files::append(&file, &record, max))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
