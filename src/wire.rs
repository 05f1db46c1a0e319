//! Documents that the server and the CLI both speak, defined once so that they cannot drift apart:
//! the bulk import's report and progress events, and a subscription of the extension API.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::Subscription;

/// The media type of NDJSON: an import's request body, and its streamed answer.
pub const NDJSON: &str = "application/x-ndjson";

/// What a bulk import did. Every line up to `lastLine` was either committed (counted in
/// `created`/`replaced`) or rejected (counted in `failed`); nothing after it was applied.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Non-blank lines (or elements of an input that is one array) read.
    pub lines: usize,
    pub created: usize,
    pub replaced: usize,
    /// Rejected lines (invalid, too long, unknown subscription); the others were applied.
    pub failed: usize,
    /// Committed transactions.
    #[serde(default)]
    pub batches: usize,
    /// The number of the last line read (blank lines count): every line up to it was committed
    /// or rejected.
    #[serde(default)]
    pub last_line: usize,
    /// Bytes of the input consumed.
    #[serde(default)]
    pub bytes: u64,
    /// False when the import stopped before the end of its input (see `stopped`).
    #[serde(default = "complete_by_default")]
    pub complete: bool,
    /// Why the import stopped early: what was committed before stays committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The first rejected lines (at most [`MAX_REPORTED_ERRORS`]; `failed` stays exact).
    pub errors: Vec<LineError>,
}

fn complete_by_default() -> bool {
    true
}

/// Report at most this many line errors in full.
pub const MAX_REPORTED_ERRORS: usize = 1000;

impl ImportReport {
    /// One sentence on what is committed, for logs and error messages.
    pub fn committed(&self) -> String {
        format!(
            "lines 1 to {} were read: {} created, {} replaced, {} rejected, in {} committed batches; no later line was applied",
            self.last_line, self.created, self.replaced, self.failed, self.batches
        )
    }
}

/// A rejected line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineError {
    pub line: usize,
    /// The CloudError code a PUT of the same document would answer.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    pub message: String,
}

/// One line of a streamed import answer (`Accept: application/x-ndjson`): a `progress` object
/// after every committed batch, then one `report`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ImportEvent {
    Progress(ImportProgress),
    Report(ImportReport),
}

/// The running totals after a committed batch.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportProgress {
    /// Every line up to this one is committed or rejected.
    pub last_line: usize,
    pub bytes: u64,
    pub lines: usize,
    pub created: usize,
    pub replaced: usize,
    pub failed: usize,
    pub batches: usize,
}

/// A subscription as the extension API shows and accepts it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Subscription)]
pub struct SubscriptionBody {
    /// Ignored in a PUT body: the path names the subscription.
    #[serde(default)]
    #[schema(read_only)]
    pub subscription_id: Option<Uuid>,
    pub display_name: String,
    /// Default: the data directory's default tenant.
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
    #[serde(default)]
    #[schema(default = "Enabled")]
    pub state: Option<String>,
}

impl SubscriptionBody {
    pub fn of(s: &Subscription) -> Self {
        SubscriptionBody {
            subscription_id: Some(s.id),
            display_name: s.display_name.clone(),
            tenant_id: Some(s.tenant_id),
            state: Some(s.state.clone()),
        }
    }

    pub fn into_subscription(self) -> Subscription {
        Subscription {
            id: self.subscription_id.unwrap_or_default(),
            display_name: self.display_name,
            tenant_id: self.tenant_id.unwrap_or_default(),
            state: self.state.unwrap_or_else(|| "Enabled".into()),
        }
    }
}
