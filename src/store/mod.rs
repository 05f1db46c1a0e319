//! Storage: one [`Store`] handle over a crate-private [`Engine`] (SQLite, embedded; PostgreSQL,
//! shared by replicas), plus the read model the API serves from.
//!
//! - Every write goes through [`Store::apply`]: the engine updates assessments, the maintained
//!   per-control counters and the score history in **one transaction**, so a read never scans
//!   assessments and a crash never leaves counters and assessments out of step.
//! - Reads of scores are served from [`ScoreView`]s cached in memory. A local write drops the views
//!   it touched; writes by other processes (the CLI on the same data directory, other replicas) are
//!   noticed by polling the engine's generation counter ([`Store::watch_changes`]).
//! - Faults that pass by themselves (full disk, a writer holding the lock too long, I/O errors)
//!   are [`Unavailable`]: the API answers them 503 with Retry-After, and [`Store::ready`] reports
//!   not ready until a probe write commits again. No restart is needed after the cause is gone.
//! - The maintained state can be checked against the assessments and rewritten
//!   ([`Store::verify`], [`Store::repair`]), and is rebuilt on open when the built-in catalogue is
//!   not the one it was computed with (module `verify`).

pub mod automation;
mod batch;
mod changes;
mod engine;
mod exemptions;
mod identity;
mod management_groups;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod subscription;
pub mod transfer;
mod verify;
mod view;

#[cfg(test)]
mod conformance;

pub use automation::{AutomationRecord, Backlog, ChangeEvent, Delivery, EventKind, NewDelivery};
pub use batch::MAX_BATCH;
pub use changes::{ChangeCause, Order, StatusChange};
pub use engine::{
    Assessment, AssessmentInput, Change, HistoryPoint, HistoryReason, Outcome, SubAssessment,
    SubAssessmentKey, Subscription, Write,
};
pub use exemptions::{
    covers, effective_status, exempting, Category, Exemption, ExemptionFilter, ExemptionRule,
    EXEMPT_CAUSE,
};
pub use identity::{PendingCode, PrincipalKey, PrincipalKind, PrincipalRecord, RoleAssignment};
pub use management_groups::{
    group_score, resource_group_of, valid_group_name, Child, GroupInfo, Hierarchy, HierarchyError,
    ManagementGroup, Scope, ROOT_DISPLAY_NAME,
};
pub use sqlite::DB_FILE;
pub use verify::{CatalogVersions, Counters, Mismatch, RecordedScore, VerifyReport};
pub use view::{ControlView, ScoreView};

use anyhow::Result;
use engine::Engine;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::arm::{ApiError, ResourceId};
use crate::score::ControlCounts;

/// Where the data lives. Chosen from the command line (`--data-dir`, `--memory`).
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// SQLite in WAL mode at `DIR/securescore.db`.
    Sqlite { data_dir: PathBuf },
    /// A throw-away in-memory SQLite database.
    Memory,
    /// A PostgreSQL database (`postgres://…`), shared by any number of server replicas.
    Postgres { url: String },
}

/// How long a write waits for another writer's lock unless told otherwise.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A storage fault that is expected to pass without anyone touching the server: the request may
/// be retried later. Everything else a store reports is a server fault (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the storage is full")]
    Full,
    #[error("the database is locked by another writer")]
    Busy,
    #[error("the storage failed to read or write")]
    Io,
}

impl Unavailable {
    /// The passing fault behind an error of the store, if it is one.
    pub fn of(e: &anyhow::Error) -> Option<Unavailable> {
        e.chain().find_map(|cause| {
            cause
                .downcast_ref::<Unavailable>()
                .copied()
                .or_else(|| cause.downcast_ref::<sqlx::Error>().and_then(sql_fault))
        })
    }
}

/// A passing fault of either SQL engine (each reads its own error codes).
fn sql_fault(e: &sqlx::Error) -> Option<Unavailable> {
    if postgres::is_postgres(e) {
        postgres::fault(e)
    } else {
        sqlite::fault(e)
    }
}

/// Every failure of the store and other internals becomes an ARM error here: the one place that
/// tells a passing storage fault (503 + Retry-After) from a server fault (500). It lives with the
/// store, which knows its faults, so that `arm` knows nothing of storage.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match Unavailable::of(&e) {
            Some(fault) => {
                tracing::warn!(error = format!("{e:#}"), "storage unavailable");
                // A lock frees up quickly; space and I/O take an operator or a cleanup job.
                let retry_after = match fault {
                    Unavailable::Busy => 2,
                    Unavailable::Io => 10,
                    Unavailable::Full => 30,
                };
                ApiError::ServiceUnavailable { reason: fault.to_string(), retry_after }
            }
            None => ApiError::Internal(e),
        }
    }
}

/// Why `/readyz` says no.
#[derive(Debug, Clone)]
pub struct NotReady {
    pub fault: Option<Unavailable>,
    pub reason: String,
}

/// Whether writes are known to work. Engines report failed, abandoned and committed write
/// transactions; [`Store::ready`] probes while in doubt.
#[derive(Default)]
pub(crate) struct Health {
    /// A write transaction failed or was abandoned since the last one that committed.
    in_doubt: AtomicBool,
    /// The last probe write, for at most one probe per [`PROBE_INTERVAL`].
    last_probe: tokio::sync::Mutex<Option<(Instant, Result<(), NotReady>)>>,
    /// Fault injection ([`Store::limit_pages_for_tests`]): the most pages the database may grow
    /// to, 0 for no limit; only looked at once `page_limit_set`.
    pub(crate) page_limit: AtomicU32,
    pub(crate) page_limit_set: AtomicBool,
    /// What the integrity check found, when it found the database damaged after the server was
    /// already up (a check that outlasts the start-up budget goes on in the background): the
    /// store then refuses writes and is never ready again.
    damaged: std::sync::OnceLock<String>,
}

const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a probe write may take.
const PROBE_BUDGET: Duration = Duration::from_secs(2);

impl Health {
    pub(crate) fn suspect(&self) {
        self.in_doubt.store(true, Ordering::Release);
    }
    pub(crate) fn wrote(&self) {
        self.in_doubt.store(false, Ordering::Release);
    }
    pub(crate) fn found_damage(&self, what: String) {
        let _ = self.damaged.set(what);
    }
    pub(crate) fn damage(&self) -> Option<&str> {
        self.damaged.get().map(String::as_str)
    }
    #[cfg(test)]
    pub(crate) fn in_doubt_for_tests(&self) -> bool {
        self.in_doubt.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Box<dyn Engine>,
    health: Arc<Health>,
    views: RwLock<HashMap<Uuid, Arc<ScoreView>>>,
    /// Bumped whenever views are dropped, so that a view computed from data read before the drop
    /// is not cached after it.
    epoch: AtomicU64,
    seen_generation: AtomicI64,
    /// Management groups and the views of scopes other than a subscription.
    mg: management_groups::Cache,
    /// Woken when an exemption is written, so the expiry timer looks at the next expiry again.
    exemptions_changed: tokio::sync::Notify,
    /// Group commit of the API's single writes ([`Store::apply_one`]).
    batcher: batch::Batcher,
    /// Per subscription, held while its view is built from the database ([`Store::view`]).
    rebuilds: std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl Store {
    /// Open the store; when the built-in catalogue is not the one the counters were computed
    /// with, rebuild them first (so a server is never ready with counters of another catalogue).
    pub async fn open(config: &StoreConfig) -> Result<Store> {
        Store::open_with(config, DEFAULT_BUSY_TIMEOUT).await
    }

    /// Open with a given wait for other writers' locks (`serve --store-busy-timeout-ms`), then
    /// adopt the built-in catalogue as `open` does.
    pub async fn open_with(config: &StoreConfig, busy_timeout: Duration) -> Result<Store> {
        let store = Self::open_as_is(config, busy_timeout, true).await?;
        store.adopt_catalog().await?;
        Ok(store)
    }

    /// Open the store as it is, without adopting the built-in catalogue: `verify` reports a
    /// catalogue change instead of acting on it.
    pub async fn open_for_verify(config: &StoreConfig) -> Result<Store> {
        Self::open_as_is(config, DEFAULT_BUSY_TIMEOUT, false).await
    }

    /// `quick_check`: refuse a damaged file at once (see `SqliteEngine::open`).
    async fn open_as_is(
        config: &StoreConfig,
        busy_timeout: Duration,
        quick_check: bool,
    ) -> Result<Store> {
        let health = Arc::new(Health::default());
        let engine: Box<dyn Engine> = match config {
            StoreConfig::Sqlite { data_dir } => Box::new(
                sqlite::SqliteEngine::open(data_dir, busy_timeout, health.clone(), quick_check)
                    .await?,
            ),
            StoreConfig::Memory => Box::new(sqlite::SqliteEngine::memory(health.clone()).await?),
            StoreConfig::Postgres { url } => {
                Box::new(postgres::PgEngine::open(url, busy_timeout, health.clone()).await?)
            }
        };
        let seen = engine.generation().await?;
        Ok(Store {
            inner: Arc::new(Inner {
                engine,
                health,
                views: RwLock::new(HashMap::new()),
                epoch: AtomicU64::new(0),
                seen_generation: AtomicI64::new(seen),
                mg: management_groups::Cache::default(),
                exemptions_changed: tokio::sync::Notify::new(),
                batcher: batch::Batcher::default(),
                rebuilds: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    fn engine(&self) -> &dyn Engine {
        self.inner.engine.as_ref()
    }

    /// The score read model of a subscription; `None` when the subscription does not exist.
    pub async fn view(&self, subscription: Uuid) -> Result<Option<Arc<ScoreView>>> {
        if let Some(v) = self.cached_view(subscription) {
            return Ok(Some(v));
        }
        // One rebuild per subscription at a time: every write drops its subscription's view, and
        // under concurrent writes (group commit answers 32 requests at once) every request that
        // follows would otherwise read the same four tables to build the same view. The others
        // wait for the one rebuild and take its result; other subscriptions' rebuilds go on.
        let lock = self
            .inner
            .rebuilds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(subscription)
            .or_default()
            .clone();
        let _rebuilding = lock.lock().await;
        if let Some(v) = self.cached_view(subscription) {
            return Ok(Some(v));
        }
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let Some(sub) = self.engine().subscription(subscription).await? else { return Ok(None) };
        let counts = self.engine().control_counts(subscription).await?;
        let custom = self.engine().custom_metadata(subscription).await?;
        let mut view = ScoreView::build(sub, counts.into_iter().collect(), custom);
        view.exemptions = self.engine().exemption_rules(subscription).await?;
        let view = Arc::new(view);
        let mut views = self.inner.views.write().expect("views lock");
        if self.inner.epoch.load(Ordering::Acquire) == epoch {
            views.insert(subscription, view.clone());
        }
        Ok(Some(view))
    }

    /// A throw-away store holding one new subscription (the unit tests' starting point).
    #[cfg(test)]
    pub(crate) async fn memory_with_subscription() -> (Store, Uuid) {
        let store = Store::open(&StoreConfig::Memory).await.expect("an in-memory store");
        let id = Uuid::new_v4();
        let sub = Subscription {
            id,
            display_name: "t".into(),
            tenant_id: Uuid::nil(),
            state: "Enabled".into(),
        };
        store.put_subscription(&sub).await.expect("a subscription");
        (store, id)
    }

    fn cached_view(&self, subscription: Uuid) -> Option<Arc<ScoreView>> {
        self.inner.views.read().expect("views lock").get(&subscription).cloned()
    }

    fn invalidate(&self, subscriptions: impl IntoIterator<Item = Uuid>) {
        let mut views = self.inner.views.write().expect("views lock");
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        let subscriptions: Vec<Uuid> = subscriptions.into_iter().collect();
        for s in &subscriptions {
            views.remove(s);
        }
        self.inner.mg.invalidate(Some(&subscriptions));
    }

    fn invalidate_all(&self) {
        let mut views = self.inner.views.write().expect("views lock");
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        views.clear();
        self.inner.mg.invalidate(None);
    }

    /// Apply assessment writes in one transaction; scores and history move with them.
    pub async fn apply(&self, writes: &[Write]) -> Result<Vec<Outcome>> {
        let now = OffsetDateTime::now_utc();
        let result = self.engine().apply(writes, now).await;
        self.invalidate(writes.iter().map(|w| w.resource().subscription()));
        result
    }

    pub async fn assessment(
        &self,
        resource: &ResourceId,
        name: &str,
    ) -> Result<Option<Assessment>> {
        self.engine().assessment(resource.key(), &name.to_ascii_lowercase()).await
    }

    /// Assessments at or below `scope`, ordered by (resource key, name key), after the cursor.
    pub async fn assessments(
        &self,
        scope: &ResourceId,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<Assessment>> {
        self.engine().assessments(scope, after, limit).await
    }

    /// The counters as a full scan of the assessments computes them (verification only).
    pub async fn recompute_counts(
        &self,
        subscription: Uuid,
    ) -> Result<BTreeMap<String, ControlCounts>> {
        self.engine().recompute_counts(subscription).await
    }

    /// Create or replace a sub-assessment below `resource`; `None` when the subscription does not
    /// exist, else whether it was created. Sub-assessments never move a score, so no cached view
    /// is dropped.
    pub async fn put_sub_assessment(
        &self,
        resource: &ResourceId,
        sub: &SubAssessment,
    ) -> Result<Option<bool>> {
        self.engine().put_sub_assessment(resource, sub).await
    }

    pub async fn sub_assessment(
        &self,
        resource: &ResourceId,
        assessment: &str,
        name: &str,
    ) -> Result<Option<SubAssessment>> {
        let (a, n) = (assessment.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.engine().sub_assessment(resource, &a, &n).await
    }

    /// Sub-assessments at or below `scope` (only those of `assessment` when given), ordered by
    /// (resource key, assessment key, name key), after the cursor.
    pub async fn sub_assessments(
        &self,
        scope: &ResourceId,
        assessment: Option<&str>,
        after: Option<&SubAssessmentKey>,
        limit: usize,
    ) -> Result<Vec<SubAssessment>> {
        let assessment = assessment.map(str::to_ascii_lowercase);
        self.engine().sub_assessments(scope, assessment.as_deref(), after, limit).await
    }

    pub async fn delete_sub_assessment(
        &self,
        resource: &ResourceId,
        assessment: &str,
        name: &str,
    ) -> Result<bool> {
        let (a, n) = (assessment.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.engine().delete_sub_assessment(resource, &a, &n).await
    }

    /// The maintained counters, straight from the engine (no cache).
    pub async fn maintained_counts(
        &self,
        subscription: Uuid,
    ) -> Result<BTreeMap<String, ControlCounts>> {
        let counts = self.engine().control_counts(subscription).await?;
        Ok(counts.into_iter().filter(|(_, c)| c.is_assessed()).collect())
    }

    pub async fn subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        self.engine().subscription(id).await
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        self.engine().subscriptions().await
    }

    /// Create or update a subscription; true when created.
    pub async fn put_subscription(&self, sub: &Subscription) -> Result<bool> {
        let created = self.engine().put_subscription(sub).await?;
        self.invalidate([sub.id]);
        self.inner.mg.drop_hierarchy();
        Ok(created)
    }

    /// Remove a subscription and all its data; false when it did not exist.
    pub async fn remove_subscription(&self, id: Uuid) -> Result<bool> {
        let removed = self.engine().remove_subscription(id).await?;
        self.invalidate([id]);
        self.inner.mg.drop_hierarchy();
        Ok(removed)
    }

    pub async fn history(
        &self,
        subscription: Uuid,
        initiative: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<HistoryPoint>> {
        self.engine().history(subscription, initiative, from, to).await
    }

    /// The latest history point at or before `at` (the score in force then).
    pub async fn history_before(
        &self,
        subscription: Uuid,
        initiative: &str,
        at: OffsetDateTime,
    ) -> Result<Option<HistoryPoint>> {
        self.engine().history_before(subscription, initiative, at).await
    }

    pub async fn custom_metadata(
        &self,
        subscription: Uuid,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        self.engine().custom_metadata(subscription).await
    }

    pub async fn put_custom_metadata(
        &self,
        subscription: Uuid,
        name: &str,
        properties: &serde_json::Value,
    ) -> Result<()> {
        self.engine().put_custom_metadata(subscription, name, properties).await?;
        self.invalidate([subscription]);
        Ok(())
    }

    pub async fn delete_custom_metadata(&self, subscription: Uuid, name: &str) -> Result<bool> {
        let deleted = self.engine().delete_custom_metadata(subscription, name).await?;
        self.invalidate([subscription]);
        Ok(deleted)
    }

    /// A value of this data directory, created with `init` on first use (e.g. the default tenant).
    pub async fn meta_or_init(&self, key: &str, init: impl FnOnce() -> String) -> Result<String> {
        if let Some(v) = self.engine().meta(key).await? {
            return Ok(v);
        }
        self.engine().set_meta_if_absent(key, &init()).await
    }

    /// A value of the `meta` table, if set.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        self.engine().meta(key).await
    }

    /// Set a value unless one exists; the value in force.
    pub async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<String> {
        self.engine().set_meta_if_absent(key, value).await
    }

    /// Replace a value only if it still is `expected` (compare-and-swap); whether it was replaced.
    pub async fn swap_meta(&self, key: &str, expected: &str, new: &str) -> Result<bool> {
        self.engine().swap_meta(key, expected, new).await
    }

    /// Is the database shared by several servers (PostgreSQL)? Then state every server must
    /// agree on — signing keys, the local CA — lives in it rather than in a data directory.
    pub fn is_shared(&self) -> bool {
        self.engine().shared()
    }

    /// Drop cached views when another process wrote: from the engine's change feed when it has
    /// one (per subscription), else by polling its generation counter every `every` (everything).
    pub fn watch_changes(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            match store.engine().change_feed().await {
                Ok(Some(mut feed)) => {
                    while let Some(change) = feed.recv().await {
                        match change {
                            Change::Subscription { id, .. } => store.invalidate([id]),
                            Change::Everything => store.invalidate_all(),
                        }
                    }
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot follow the store's changes; polling instead"
                ),
            }
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.engine().generation().await {
                    Ok(g) if g != store.inner.seen_generation.swap(g, Ordering::AcqRel) => {
                        store.invalidate_all();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot poll the store's generation"
                    ),
                }
            }
        })
    }

    /// Fold the write-ahead log into the database and truncate it, so that bulk writes do not leave
    /// a log as large as themselves behind.
    pub async fn checkpoint(&self) -> Result<()> {
        self.engine().checkpoint().await
    }

    /// Is the store answering? (a read)
    pub async fn ping(&self) -> Result<()> {
        self.engine().generation().await.map(|_| ())
    }

    /// Fault injection for tests of a full disk where no small file system can be mounted: cap
    /// the database at `pages` pages (SQLite's `max_page_count`, applied to each write
    /// transaction's connection), so that writes needing more fail with a real SQLITE_FULL;
    /// `None` lifts the cap. No effect on the in-memory store's page budget beyond the same cap.
    #[doc(hidden)]
    pub fn limit_pages_for_tests(&self, pages: Option<u32>) {
        let health = &self.inner.health;
        health.page_limit.store(pages.unwrap_or(0), Ordering::Release);
        health.page_limit_set.store(true, Ordering::Release);
    }

    /// Can the store serve reads and writes? (`/readyz`) A read while writes are known to work;
    /// after a write failed, a probe write (at most one per second) until one commits.
    pub async fn ready(&self) -> Result<(), NotReady> {
        let not_ready =
            |e: anyhow::Error| NotReady { fault: Unavailable::of(&e), reason: format!("{e:#}") };
        let health = &self.inner.health;
        if let Some(what) = health.damage() {
            return Err(NotReady { fault: None, reason: what.to_owned() });
        }
        if !health.in_doubt.load(Ordering::Acquire) {
            return self.ping().await.map_err(not_ready);
        }
        let mut last = health.last_probe.lock().await;
        if let Some((at, result)) = &*last {
            if at.elapsed() < PROBE_INTERVAL {
                return result.clone();
            }
        }
        // A probe stuck behind another process's lock answers "not ready" rather than keep the
        // caller (an orchestrator with its own short timeout) waiting for the busy timeout.
        let result = match tokio::time::timeout(PROBE_BUDGET, self.engine().probe_write()).await {
            Ok(r) => r.map_err(not_ready),
            Err(_) => Err(NotReady {
                fault: Some(Unavailable::Busy),
                reason: format!("a probe write did not finish within {PROBE_BUDGET:?}"),
            }),
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

#[cfg(test)]
mod fault_tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn passing_faults_are_found_through_context() {
        let io = anyhow::Error::new(sqlx::Error::Io(std::io::Error::other("disk gone")))
            .context("cannot write the assessment");
        assert_eq!(Unavailable::of(&io), Some(Unavailable::Io));
        let pool = anyhow::Error::new(sqlx::Error::PoolTimedOut);
        assert_eq!(Unavailable::of(&pool), Some(Unavailable::Busy));
        let typed = anyhow::Error::new(Unavailable::Full).context("while importing");
        assert_eq!(Unavailable::of(&typed), Some(Unavailable::Full));
        assert_eq!(Unavailable::of(&anyhow::anyhow!("a bug")), None);
        assert_eq!(Unavailable::of(&anyhow::Error::new(sqlx::Error::RowNotFound)), None);
    }

    #[tokio::test]
    async fn a_constraint_violation_is_not_a_passing_fault() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)").execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO t VALUES ('k')").execute(&mut conn).await.unwrap();
        let e = sqlx::query("INSERT INTO t VALUES ('k')")
            .execute(&mut conn)
            .await
            .context("insert")
            .unwrap_err();
        assert_eq!(Unavailable::of(&e), None, "{e:#}");
    }

    #[test]
    fn passing_storage_faults_are_503_with_retry_after_and_others_500() {
        let busy = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("writing");
        let response = axum::response::IntoResponse::into_response(ApiError::from(busy));
        assert_eq!(response.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "2");
        let full = ApiError::from(anyhow::Error::new(Unavailable::Full));
        assert_eq!(full.code(), "ServiceUnavailable");
        assert!(full.to_string().contains("the storage is full"), "{full}");
        let bug = ApiError::from(anyhow::anyhow!("a bug"));
        assert_eq!(bug.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
