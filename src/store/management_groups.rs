//! Management groups and scopes above and below the subscription: the engine-neutral records and
//! trait (implemented once for both SQL engines: `store::sql::management_groups`),
//! the in-memory [`Hierarchy`] every scope question is answered from, and the score read models
//! of a resource group and a management group.
//!
//! The hierarchy is small (groups and placements, not assessments), read whole and cached; a
//! write of a group, a placement or a subscription drops it, and so does a write by another
//! process (the generation poll drops every cache). The tenant root group is not stored: its name
//! is the tenant id, and every group without a parent and every subscription not placed elsewhere
//! hangs below it.
//!
//! The small API other features use (improvements, exemptions): [`Store::subscriptions_below`],
//! [`Store::ancestors_of_subscription`], [`Store::counts_at`] and [`Store::score_view_at`].

use anyhow::Result;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;
use uuid::Uuid;

use super::subscription::Subscription;
use super::view::ScoreView;
use super::Store;
use crate::score::{self, ControlCounts};

/// Is `name` a management group name ARM accepts (letters, digits, `-_().`, at most 90)?
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 90
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_().".contains(c))
        && !name.ends_with('.')
}

/// The display name Azure gives the tenant root group.
pub const ROOT_DISPLAY_NAME: &str = "Tenant Root Group";

/// A stored management group (never the root group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementGroup {
    /// The group id (`name`), with the casing of its first write.
    pub name: String,
    pub display_name: String,
    /// The parent's lowercase name; `None`: below the tenant root group.
    pub parent: Option<String>,
    /// Bumped by every change of the group.
    pub version: i64,
    pub updated_time: OffsetDateTime,
    /// The object id of the principal that made the last change.
    pub updated_by: String,
}

impl ManagementGroup {
    pub fn key(&self) -> String {
        self.name.to_ascii_lowercase()
    }
}

/// A scope a score can be asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Subscription(Uuid),
    /// A subscription and a resource group name (any casing).
    ResourceGroup(Uuid, String),
    /// A management group name (any casing; the tenant id names the root group).
    ManagementGroup(String),
}

impl Scope {
    /// A scope from its ARM id: `/subscriptions/{s}`, `/subscriptions/{s}/resourceGroups/{rg}`
    /// or `/providers/Microsoft.Management/managementGroups/{g}` (keywords in any case, a
    /// trailing slash allowed). `None` for anything else.
    pub fn parse(id: &str) -> Option<Scope> {
        let segs: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let sub = |s: &str| Uuid::try_parse(s).ok().filter(|_| s.len() == 36);
        match segs.as_slice() {
            [s, id] if eq(s, "subscriptions") => sub(id).map(Scope::Subscription),
            [s, id, r, rg]
                if eq(s, "subscriptions") && eq(r, "resourceGroups") && !rg.is_empty() =>
            {
                sub(id).map(|s| Scope::ResourceGroup(s, rg.to_string()))
            }
            [p, ns, t, g]
                if eq(p, "providers")
                    && eq(ns, "Microsoft.Management")
                    && eq(t, "managementGroups")
                    && valid_group_name(g) =>
            {
                Some(Scope::ManagementGroup(g.to_string()))
            }
            _ => None,
        }
    }

    /// The scope's ARM id (names as given).
    pub fn id(&self) -> String {
        match self {
            Scope::Subscription(s) => format!("/subscriptions/{s}"),
            Scope::ResourceGroup(s, rg) => format!("/subscriptions/{s}/resourceGroups/{rg}"),
            Scope::ManagementGroup(g) => {
                format!("/providers/Microsoft.Management/managementGroups/{g}")
            }
        }
    }
}

/// A node of the hierarchy as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub display_name: String,
    /// `None` only for the root group.
    pub parent: Option<String>,
    pub version: i64,
    pub updated_time: Option<OffsetDateTime>,
    pub updated_by: Option<String>,
    pub root: bool,
}

/// A child of a group: a group or a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Child {
    Group(String),
    Subscription(Uuid),
}

/// The whole tree: groups, placements and the subscriptions, as one consistent read.
#[derive(Debug)]
pub struct Hierarchy {
    /// The tenant id: the root group's name.
    pub tenant: Uuid,
    root_key: String,
    groups: BTreeMap<String, ManagementGroup>,
    /// Group keys in the order the groups were created (children are listed in this order).
    created: Vec<String>,
    /// Subscription → the lowercase name of the group it is placed in (absent: the root group).
    placements: HashMap<Uuid, String>,
    subscriptions: BTreeMap<Uuid, Subscription>,
}

impl Hierarchy {
    pub fn new(
        tenant: Uuid,
        groups: Vec<ManagementGroup>,
        placements: Vec<(Uuid, String)>,
        subscriptions: Vec<Subscription>,
    ) -> Self {
        Hierarchy {
            tenant,
            root_key: tenant.to_string(),
            created: groups.iter().map(ManagementGroup::key).collect(),
            groups: groups.into_iter().map(|g| (g.key(), g)).collect(),
            placements: placements.into_iter().collect(),
            subscriptions: subscriptions.into_iter().map(|s| (s.id, s)).collect(),
        }
    }

    /// The lowercase key of a group name, if the group exists (the root group included).
    pub fn key_of(&self, name: &str) -> Option<String> {
        let key = name.to_ascii_lowercase();
        (key == self.root_key || self.groups.contains_key(&key)).then_some(key)
    }

    /// A group and the groups above it, nearest first: where a role assignment that applies to
    /// the group may be. A group that does not exist (yet: a PUT creating it, or a typo the
    /// handler answers 404) is the root group's.
    pub fn chain_of(&self, group: &str) -> Vec<String> {
        match self.key_of(group) {
            Some(key) => {
                let mut chain = vec![key.clone()];
                chain.extend(self.ancestors_of_group(&key));
                chain
            }
            None => vec![self.root_key.clone()],
        }
    }

    pub fn is_root(&self, key: &str) -> bool {
        key == self.root_key
    }

    pub fn root_key(&self) -> &str {
        &self.root_key
    }

    /// A group as the API shows it (the root group included).
    pub fn info(&self, name: &str) -> Option<GroupInfo> {
        let key = name.to_ascii_lowercase();
        if key == self.root_key {
            return Some(GroupInfo {
                name: self.tenant.to_string(),
                display_name: ROOT_DISPLAY_NAME.to_string(),
                parent: None,
                version: 1,
                updated_time: None,
                updated_by: None,
                root: true,
            });
        }
        let g = self.groups.get(&key)?;
        Some(GroupInfo {
            name: g.name.clone(),
            display_name: g.display_name.clone(),
            parent: Some(self.parent_of(&key).unwrap_or(&self.root_key).to_string()),
            version: g.version,
            updated_time: Some(g.updated_time),
            updated_by: Some(g.updated_by.clone()),
            root: false,
        })
    }

    /// The stored group (never the root).
    pub fn group(&self, name: &str) -> Option<&ManagementGroup> {
        self.groups.get(&name.to_ascii_lowercase())
    }

    /// Every group, the root first, then in the order they were created.
    pub fn all(&self) -> Vec<GroupInfo> {
        let mut out: Vec<GroupInfo> = self.info(&self.root_key).into_iter().collect();
        out.extend(self.created.iter().filter_map(|k| self.info(k)));
        out
    }

    /// The key of a group's parent; `None` for the root group (or an unknown group).
    fn parent_of(&self, key: &str) -> Option<&str> {
        let g = self.groups.get(key)?;
        Some(g.parent.as_deref().filter(|p| self.groups.contains_key(*p)).unwrap_or(&self.root_key))
    }

    /// The groups above `name`, nearest first, the root group last (empty for the root group).
    pub fn ancestors_of_group(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = name.to_ascii_lowercase();
        while let Some(parent) = self.parent_of(&at) {
            // A stored cycle (only by hand-edited data) must not loop forever.
            if out.iter().any(|p| p == parent) || out.len() > self.groups.len() {
                break;
            }
            out.push(parent.to_string());
            at = parent.to_string();
        }
        out
    }

    /// The group a subscription is placed in (the root group unless placed elsewhere).
    pub fn group_of_subscription(&self, subscription: Uuid) -> String {
        self.placements
            .get(&subscription)
            .filter(|g| self.groups.contains_key(*g))
            .cloned()
            .unwrap_or_else(|| self.root_key.clone())
    }

    /// The groups a subscription lies below, nearest first, the root group last.
    pub fn ancestors_of_subscription(&self, subscription: Uuid) -> Vec<String> {
        let group = self.group_of_subscription(subscription);
        let mut out = vec![group.clone()];
        out.extend(self.ancestors_of_group(&group));
        out
    }

    /// The direct children of a group: groups in the order they were created, then
    /// subscriptions by id.
    pub fn children(&self, name: &str) -> Vec<Child> {
        let key = name.to_ascii_lowercase();
        let mut out: Vec<Child> = self
            .created
            .iter()
            .filter(|g| self.parent_of(g) == Some(key.as_str()))
            .map(|g| Child::Group(g.clone()))
            .collect();
        out.extend(
            self.subscriptions
                .keys()
                .filter(|s| self.group_of_subscription(**s) == key)
                .map(|s| Child::Subscription(*s)),
        );
        out
    }

    /// Everything below a group, depth first (a group before its children).
    pub fn descendants(&self, name: &str) -> Vec<Child> {
        let mut out = Vec::new();
        for child in self.children(name) {
            let nested = match &child {
                Child::Group(g) => Some(g.clone()),
                Child::Subscription(_) => None,
            };
            out.push(child);
            if let Some(g) = nested {
                out.extend(self.descendants(&g));
            }
        }
        out
    }

    /// The subscriptions below a group, nested groups included, by id.
    pub fn subscriptions_below(&self, name: &str) -> Vec<Uuid> {
        let key = name.to_ascii_lowercase();
        let mut out: Vec<Uuid> = self
            .subscriptions
            .keys()
            .filter(|s| self.ancestors_of_subscription(**s).contains(&key))
            .copied()
            .collect();
        out.sort();
        out
    }

    pub fn subscription(&self, id: Uuid) -> Option<&Subscription> {
        self.subscriptions.get(&id)
    }

    /// Would making `parent` the parent of `group` close a cycle?
    pub fn would_cycle(&self, group: &str, parent: &str) -> bool {
        let (group, parent) = (group.to_ascii_lowercase(), parent.to_ascii_lowercase());
        group == parent || self.ancestors_of_group(&parent).contains(&group)
    }
}

/// Why a change of the hierarchy is refused (the API words each as ARM does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyError {
    #[error("the management group '{0}' does not exist")]
    NoGroup(String),
    #[error("the parent management group '{0}' does not exist")]
    NoParent(String),
    #[error("the subscription '{0}' does not exist")]
    NoSubscription(Uuid),
    #[error("moving '{group}' below '{parent}' would make it its own ancestor")]
    Cycle { group: String, parent: String },
    #[error("the management group '{0}' has children")]
    HasChildren(String),
    #[error("the tenant root group cannot be changed or deleted")]
    Root,
    #[error("the subscription '{subscription}' is not below the management group '{group}'")]
    NotInGroup { group: String, subscription: Uuid },
}

/// Storage of management groups, placements and resource group counters.
#[async_trait]
pub(crate) trait ManagementGroupEngine: Send + Sync {
    async fn management_groups(&self) -> Result<Vec<ManagementGroup>>;
    /// (subscription, lowercase group name) of every placed subscription.
    async fn placements(&self) -> Result<Vec<(Uuid, String)>>;
    /// Create or replace a group; true when created.
    /// Create or replace a group; true when created. Refused (in the same transaction, so that
    /// another process's concurrent change cannot slip between check and write) when the parent
    /// does not exist or would close a cycle.
    async fn put_management_group(
        &self,
        group: &ManagementGroup,
    ) -> Result<std::result::Result<bool, HierarchyError>>;
    /// Delete a group; refused while it has children (groups or subscriptions).
    async fn delete_management_group(
        &self,
        key: &str,
    ) -> Result<std::result::Result<bool, HierarchyError>>;
    /// Place a subscription in a group (`None`: back below the root group).
    /// Refused when the group or the subscription is gone (checked in the write).
    async fn place_subscription(
        &self,
        subscription: Uuid,
        group: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<(), HierarchyError>>;
    /// The resource groups of a subscription with maintained counters, by name.
    async fn resource_groups(&self, subscription: Uuid) -> Result<Vec<String>>;
    /// The maintained counters of one resource group (lowercase name).
    async fn resource_group_counts(
        &self,
        subscription: Uuid,
        resource_group: &str,
    ) -> Result<Vec<(String, ControlCounts)>>;
}

/// The caches of this module, held by the store: dropped with the subscription views.
#[derive(Default)]
pub(super) struct Cache {
    hierarchy: RwLock<Option<Arc<Hierarchy>>>,
    views: RwLock<HashMap<Scope, Arc<ScoreView>>>,
    /// Serialises hierarchy changes within this process, so a check and its write see the same
    /// tree.
    writes: tokio::sync::Mutex<()>,
    /// Bumped whenever the hierarchy is dropped, so that a tree read before the drop is not
    /// cached after it (the store's own epoch covers the subscription views).
    epoch: std::sync::atomic::AtomicU64,
}

impl Cache {
    /// Drop what a write to these subscriptions (or `None`: to anything) may have changed.
    pub(super) fn invalidate(&self, subscriptions: Option<&[Uuid]>) {
        let mut views = self.views.write().expect("scope views lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match subscriptions {
            None => {
                views.clear();
                *self.hierarchy.write().expect("hierarchy lock") = None;
            }
            // A group's view depends on every subscription below it: drop all group views.
            Some(subs) => views.retain(|scope, _| match scope {
                Scope::ResourceGroup(s, _) => !subs.contains(s),
                Scope::ManagementGroup(_) => false,
                Scope::Subscription(_) => false,
            }),
        }
    }

    pub(super) fn drop_hierarchy(&self) {
        let mut tree = self.hierarchy.write().expect("hierarchy lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        *tree = None;
        drop(tree);
        self.views
            .write()
            .expect("scope views lock")
            .retain(|s, _| !matches!(s, Scope::ManagementGroup(_)));
    }
}

/// Resource group of a lowercase resource key (`/subscriptions/{s}/resourcegroups/{rg}/...`).
pub fn resource_group_of(resource_key: &str) -> Option<&str> {
    let mut segs = resource_key.trim_start_matches('/').split('/');
    let (_, _, rg, name) = (segs.next()?, segs.next()?, segs.next()?, segs.next()?);
    rg.eq_ignore_ascii_case("resourcegroups").then_some(name).filter(|n| !n.is_empty())
}

/// Per-control counts summed over several scopes (a management group's controls).
pub fn sum_counts<'a>(
    parts: impl IntoIterator<Item = &'a ScoreView>,
) -> HashMap<String, ControlCounts> {
    let mut out: HashMap<String, ControlCounts> = HashMap::new();
    for view in parts {
        for c in &view.controls {
            let e = out.entry(c.def.name.clone()).or_default();
            e.healthy += c.counts.healthy;
            e.unhealthy += c.counts.unhealthy;
            e.not_applicable += c.counts.not_applicable;
        }
    }
    out
}

impl Store {
    fn mg(&self) -> &Cache {
        &self.inner.mg
    }

    /// A change of the hierarchy moves the exemptions of management groups over subscriptions,
    /// and with them subscription scores: every view goes (such changes are rare).
    fn hierarchy_changed(&self) {
        self.invalidate_all();
    }

    /// The hierarchy, from the cache or read whole.
    pub async fn hierarchy(&self) -> Result<Arc<Hierarchy>> {
        if let Some(h) = self.mg().hierarchy.read().expect("hierarchy lock").as_ref() {
            return Ok(h.clone());
        }
        let epoch = self.epochs();
        let h = Arc::new(self.read_hierarchy().await?);
        let mut cached = self.mg().hierarchy.write().expect("hierarchy lock");
        if self.epochs() == epoch {
            *cached = Some(h.clone());
        }
        Ok(h)
    }

    /// The store's and this module's cache epochs: a view or tree computed while either moved
    /// is not cached.
    fn epochs(&self) -> (u64, u64) {
        (self.inner.epoch.load(Ordering::Acquire), self.mg().epoch.load(Ordering::Acquire))
    }

    async fn read_hierarchy(&self) -> Result<Hierarchy> {
        let tenant = self.default_tenant().await?;
        let groups = self.engine().management_groups().await?;
        let placements = self.engine().placements().await?;
        let subscriptions = self.engine().subscriptions().await?;
        Ok(Hierarchy::new(tenant, groups, placements, subscriptions))
    }

    /// The subscriptions below a management group (nested groups included); `None` when the group
    /// does not exist.
    pub async fn subscriptions_below(&self, group: &str) -> Result<Option<Vec<Uuid>>> {
        let h = self.hierarchy().await?;
        Ok(h.key_of(group).map(|k| h.subscriptions_below(&k)))
    }

    /// The management groups a subscription lies below, nearest first, the root group last.
    pub async fn ancestors_of_subscription(&self, subscription: Uuid) -> Result<Vec<String>> {
        Ok(self.hierarchy().await?.ancestors_of_subscription(subscription))
    }

    /// The resource groups of a subscription that have scored assessments (lowercase names).
    pub async fn resource_groups(&self, subscription: Uuid) -> Result<Vec<String>> {
        self.engine().resource_groups(subscription).await
    }

    /// The per-control counts at a scope (assessed controls only); `None` when the scope does
    /// not exist.
    pub async fn counts_at(
        &self,
        scope: &Scope,
    ) -> Result<Option<BTreeMap<String, ControlCounts>>> {
        Ok(self
            .score_view_at(scope)
            .await?
            .map(|v| v.controls.iter().map(|c| (c.def.name.clone(), c.counts)).collect()))
    }

    /// The score read model of any scope; `None` when the scope does not exist. A resource group
    /// exists when its subscription does (one without assessments scores 0 of 0). A management
    /// group's controls sum the counts below it; its secure score is the weighted aggregate of
    /// its subscriptions' (docs/SCORING.md). The view of a management group has no subscription
    /// of its own: its `subscription` is a placeholder (nil id, the group's display name, the
    /// tenant), never to be used as a subscription.
    pub async fn score_view_at(&self, scope: &Scope) -> Result<Option<Arc<ScoreView>>> {
        let key = match scope {
            Scope::Subscription(s) => return self.view(*s).await,
            Scope::ResourceGroup(s, rg) => Scope::ResourceGroup(*s, rg.to_ascii_lowercase()),
            Scope::ManagementGroup(g) => Scope::ManagementGroup(g.to_ascii_lowercase()),
        };
        if let Some(v) = self.mg().views.read().expect("scope views lock").get(&key) {
            return Ok(Some(v.clone()));
        }
        let epoch = self.epochs();
        let view = match &key {
            Scope::ResourceGroup(s, rg) => {
                let Some(sub) = self.view(*s).await? else { return Ok(None) };
                let counts = self.engine().resource_group_counts(*s, rg).await?;
                ScoreView::build(sub.subscription.clone(), counts.into_iter().collect(), Vec::new())
            }
            Scope::ManagementGroup(g) => {
                let h = self.hierarchy().await?;
                let Some(info) = h.info(g) else { return Ok(None) };
                let mut views = Vec::new();
                for s in h.subscriptions_below(g) {
                    if let Some(v) = self.view(s).await? {
                        views.push(v);
                    }
                }
                let placeholder = Subscription {
                    id: Uuid::nil(),
                    display_name: info.display_name,
                    tenant_id: h.tenant,
                    state: "Enabled".into(),
                };
                let mut view = ScoreView::build(
                    placeholder,
                    sum_counts(views.iter().map(|v| &**v)),
                    Vec::new(),
                );
                let scores: Vec<_> = views.iter().map(|v| v.secure_score).collect();
                view.secure_score = group_score(&scores, view.secure_score.score.max);
                view
            }
            Scope::Subscription(_) => unreachable!("answered above"),
        };
        let view = Arc::new(view);
        let mut views = self.mg().views.write().expect("scope views lock");
        if self.epochs() == epoch {
            views.insert(key, view.clone());
        }
        Ok(Some(view))
    }

    /// Create or update a group (`parent`: a group name, `None` for the root group); checks that
    /// the parent exists and that no cycle forms. True when created.
    pub async fn put_management_group(
        &self,
        name: &str,
        display_name: Option<&str>,
        parent: Option<Option<&str>>,
        by: &str,
    ) -> Result<std::result::Result<(bool, GroupInfo), HierarchyError>> {
        let _serial = self.mg().writes.lock().await;
        let h = self.read_hierarchy().await?;
        if h.is_root(&name.to_ascii_lowercase()) {
            return Ok(Err(HierarchyError::Root));
        }
        let existing = h.group(name).cloned();
        let parent_key = match parent {
            // Not given: unchanged (a new group goes below the root).
            None => existing.as_ref().and_then(|g| g.parent.clone()),
            Some(None) => None,
            Some(Some(p)) => {
                let Some(key) = h.key_of(p) else {
                    return Ok(Err(HierarchyError::NoParent(p.to_string())));
                };
                if h.would_cycle(name, &key) {
                    return Ok(Err(HierarchyError::Cycle {
                        group: name.to_string(),
                        parent: p.to_string(),
                    }));
                }
                (!h.is_root(&key)).then_some(key)
            }
        };
        let group = ManagementGroup {
            name: existing.as_ref().map_or_else(|| name.to_string(), |g| g.name.clone()),
            display_name: display_name
                .map(str::to_string)
                .or_else(|| existing.as_ref().map(|g| g.display_name.clone()))
                .unwrap_or_else(|| name.to_string()),
            parent: parent_key,
            version: existing.as_ref().map_or(1, |g| g.version + 1),
            updated_time: OffsetDateTime::now_utc(),
            updated_by: by.to_string(),
        };
        let created = match self.engine().put_management_group(&group).await? {
            Ok(created) => created,
            Err(refused) => return Ok(Err(refused)),
        };
        self.hierarchy_changed();
        let h = self.hierarchy().await?;
        let info = h.info(name).ok_or_else(|| anyhow::anyhow!("the group just written is gone"))?;
        Ok(Ok((created, info)))
    }

    /// Delete a group without children; `Ok(false)` when it did not exist.
    pub async fn delete_management_group(
        &self,
        name: &str,
    ) -> Result<std::result::Result<bool, HierarchyError>> {
        let _serial = self.mg().writes.lock().await;
        let h = self.read_hierarchy().await?;
        let key = name.to_ascii_lowercase();
        if h.is_root(&key) {
            return Ok(Err(HierarchyError::Root));
        }
        if h.group(&key).is_none() {
            return Ok(Ok(false));
        }
        if !h.children(&key).is_empty() {
            return Ok(Err(HierarchyError::HasChildren(name.to_string())));
        }
        let deleted = self.engine().delete_management_group(&key).await?;
        self.hierarchy_changed();
        Ok(deleted)
    }

    /// Move a subscription into a group (from wherever it was).
    pub async fn place_subscription(
        &self,
        group: &str,
        subscription: Uuid,
    ) -> Result<std::result::Result<(), HierarchyError>> {
        let _serial = self.mg().writes.lock().await;
        let h = self.read_hierarchy().await?;
        let Some(key) = h.key_of(group) else {
            return Ok(Err(HierarchyError::NoGroup(group.to_string())));
        };
        if h.subscription(subscription).is_none() {
            return Ok(Err(HierarchyError::NoSubscription(subscription)));
        }
        let target = (!h.is_root(&key)).then_some(key.as_str());
        let placed = self
            .engine()
            .place_subscription(subscription, target, OffsetDateTime::now_utc())
            .await?;
        self.hierarchy_changed();
        Ok(placed)
    }

    /// Take a subscription out of a group: it goes back below the root group.
    pub async fn unplace_subscription(
        &self,
        group: &str,
        subscription: Uuid,
    ) -> Result<std::result::Result<(), HierarchyError>> {
        let _serial = self.mg().writes.lock().await;
        let h = self.read_hierarchy().await?;
        let Some(key) = h.key_of(group) else {
            return Ok(Err(HierarchyError::NoGroup(group.to_string())));
        };
        if h.group_of_subscription(subscription) != key {
            return Ok(Err(HierarchyError::NotInGroup { group: group.to_string(), subscription }));
        }
        let placed =
            self.engine().place_subscription(subscription, None, OffsetDateTime::now_utc()).await?;
        self.hierarchy_changed();
        Ok(placed)
    }
}

/// A management group's secure score from its subscriptions' scores: the percentage and weight
/// of the weighted aggregate (`score::aggregate`, as `/securescore/v1/aggregate` reports it), over
/// `max` points (the maximum of the controls assessed below the group), so that current / max is
/// the percentage.
pub fn group_score(scores: &[score::SecureScore], max: i64) -> score::SecureScore {
    let agg = score::aggregate(scores);
    let current = crate::score::round_dotnet(agg.percentage * max as f64, 2);
    score::SecureScore {
        score: score::ScoreDetails { max, current, percentage: agg.percentage },
        weight: agg.weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, parent: Option<&str>) -> ManagementGroup {
        ManagementGroup {
            name: name.into(),
            display_name: name.into(),
            parent: parent.map(str::to_ascii_lowercase),
            version: 1,
            updated_time: OffsetDateTime::UNIX_EPOCH,
            updated_by: "t".into(),
        }
    }

    fn sub(id: Uuid) -> Subscription {
        Subscription {
            id,
            display_name: "s".into(),
            tenant_id: Uuid::nil(),
            state: "Enabled".into(),
        }
    }

    #[test]
    fn ancestry_children_descendants_and_cycles() {
        let tenant = Uuid::new_v4();
        let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let h = Hierarchy::new(
            tenant,
            vec![group("A", None), group("B", Some("a")), group("C", Some("b"))],
            vec![(s1, "c".into())],
            vec![sub(s1), sub(s2)],
        );
        let root = tenant.to_string();
        assert_eq!(h.ancestors_of_subscription(s1), vec!["c", "b", "a", root.as_str()]);
        assert_eq!(h.ancestors_of_subscription(s2), vec![root.clone()]);
        assert_eq!(h.children(&root), vec![Child::Group("a".into()), Child::Subscription(s2)]);
        assert_eq!(
            h.descendants("A"),
            vec![Child::Group("b".into()), Child::Group("c".into()), Child::Subscription(s1)]
        );
        assert_eq!(h.subscriptions_below("b"), vec![s1]);
        assert_eq!(h.subscriptions_below(&root), vec![s1, s2]);
        assert!(h.would_cycle("a", "c") && h.would_cycle("a", "A") && !h.would_cycle("c", "a"));
        assert_eq!(h.info(&root).map(|i| i.display_name), Some(ROOT_DISPLAY_NAME.into()));
        assert_eq!(h.info("c").and_then(|i| i.parent), Some("b".into()));
    }

    #[test]
    fn scopes_parse_from_their_ids_and_back() {
        let s = Uuid::from_u128(7);
        for scope in [
            Scope::Subscription(s),
            Scope::ResourceGroup(s, "Web".into()),
            Scope::ManagementGroup("Prod".into()),
        ] {
            assert_eq!(Scope::parse(&scope.id()), Some(scope.clone()));
            assert!(Scope::parse(&format!("{}/", scope.id().to_uppercase())).is_some());
        }
        for bad in [
            "",
            "/",
            "/subscriptions/x",
            "/subscriptions/x/resourceGroups/y",
            "/providers/Microsoft.Management/managementGroups/a b",
            "/subscriptions/00000000-0000-0000-0000-000000000007/resourceGroups/rg/providers/x/y/z",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Build a tree by moves: each (group, parent) move is applied unless it would close a
        /// cycle (as the store refuses it); subscriptions are placed at random groups or root.
        fn tree(moves: &[(usize, Option<usize>)], subs: &[Option<usize>]) -> Hierarchy {
            let names: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
            let mut parents: Vec<Option<usize>> = vec![None; names.len()];
            for &(g, p) in moves {
                let built = Hierarchy::new(
                    Uuid::nil(),
                    (0..names.len())
                        .map(|i| group(&names[i], parents[i].map(|p| names[p].as_str())))
                        .collect(),
                    Vec::new(),
                    Vec::new(),
                );
                match p {
                    Some(p) if built.would_cycle(&names[g], &names[p]) => {}
                    _ => parents[g] = p,
                }
            }
            let placements = subs
                .iter()
                .enumerate()
                .filter_map(|(i, g)| g.map(|g| (Uuid::from_u128(i as u128 + 1), names[g].clone())))
                .collect();
            let all = (0..subs.len()).map(|i| sub(Uuid::from_u128(i as u128 + 1))).collect();
            Hierarchy::new(
                Uuid::nil(),
                (0..names.len())
                    .map(|i| group(&names[i], parents[i].map(|p| names[p].as_str())))
                    .collect(),
                placements,
                all,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            /// Whatever the moves, the tree has no cycle, and "below" means the same thing read
            /// from either end: descendants, ancestors and the subscriptions below a group agree.
            #[test]
            fn ancestry_and_descent_agree(
                moves in prop::collection::vec((0usize..6, prop::option::of(0usize..6)), 0..20),
                subs in prop::collection::vec(prop::option::of(0usize..6), 0..6),
            ) {
                let h = tree(&moves, &subs);
                let root = h.root_key().to_string();
                let mut keys: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
                keys.push(root.clone());
                for g in &keys {
                    let below = h.descendants(g);
                    for k in &keys {
                        let under = below.contains(&Child::Group(k.clone()));
                        prop_assert_eq!(under, h.ancestors_of_group(k).contains(g), "{} {}", g, k);
                    }
                    for i in 0..subs.len() {
                        let s = Uuid::from_u128(i as u128 + 1);
                        let via_descent = below.contains(&Child::Subscription(s));
                        let via_ancestry = h.ancestors_of_subscription(s).contains(g);
                        prop_assert_eq!(via_descent, via_ancestry);
                        prop_assert_eq!(h.subscriptions_below(g).contains(&s), via_ancestry);
                    }
                    prop_assert!(!h.ancestors_of_group(g).contains(g), "no cycle through {}", g);
                }
                prop_assert_eq!(h.subscriptions_below(&root).len(), subs.len());
                prop_assert_eq!(h.descendants(&root).len(), 6 + subs.len());
            }
        }
    }

    #[test]
    fn resource_groups_of_keys() {
        let s = "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23";
        assert_eq!(
            resource_group_of(&format!("{s}/resourcegroups/rg1/providers/x/y/z")),
            Some("rg1")
        );
        assert_eq!(resource_group_of(&format!("{s}/resourcegroups/rg1")), Some("rg1"));
        assert_eq!(resource_group_of(&format!("{s}/providers/x/y/z")), None);
        assert_eq!(resource_group_of(s), None);
    }
}
