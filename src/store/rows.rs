//! Row mapping shared by the SQL engines (SQLite, PostgreSQL): both store the same columns with
//! the same encodings (GUIDs and times as text, JSON as text), so each query reads into one small
//! `FromRow` struct of the stored column types and converts it into the record (parsing GUIDs,
//! statuses, times and JSON) with its own errors — the same code for either engine.

use anyhow::{Context, Result};
use uuid::Uuid;

use super::engine::{Assessment, HistoryPoint, HistoryReason, Subscription};
use crate::arm::parse_time;
use crate::score::{ControlCounts, ResourceTally, ScoreDetails, Status};

#[derive(sqlx::FromRow)]
pub(in crate::store) struct SubscriptionRow {
    id: String,
    display_name: String,
    tenant_id: String,
    state: String,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = anyhow::Error;
    fn try_from(row: SubscriptionRow) -> Result<Self> {
        Ok(Subscription {
            id: Uuid::parse_str(&row.id)?,
            display_name: row.display_name,
            tenant_id: Uuid::parse_str(&row.tenant_id)?,
            state: row.state,
        })
    }
}

pub(in crate::store) fn parse_status(s: &str) -> Result<Status> {
    Status::parse(s).with_context(|| format!("stored status '{s}' is not a status"))
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct AssessmentRow {
    resource_id: String,
    name: String,
    status: String,
    cause: Option<String>,
    description: Option<String>,
    resource_details: Option<String>,
    additional_data: Option<String>,
    partner_name: Option<String>,
    first_evaluation_date: String,
    status_change_date: String,
}

impl TryFrom<AssessmentRow> for Assessment {
    type Error = anyhow::Error;
    fn try_from(row: AssessmentRow) -> Result<Self> {
        let json = |text: Option<String>| -> Result<Option<serde_json::Value>> {
            Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
        };
        let additional_data = match json(row.additional_data)? {
            Some(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        };
        Ok(Assessment {
            resource_id: row.resource_id,
            name: row.name,
            status: parse_status(&row.status)?,
            cause: row.cause,
            description: row.description,
            resource_details: json(row.resource_details)?.unwrap_or(serde_json::Value::Null),
            additional_data,
            partner_name: row.partner_name,
            first_evaluation_date: parse_time(&row.first_evaluation_date)?,
            status_change_date: parse_time(&row.status_change_date)?,
        })
    }
}

/// An assessment row with its key (the batched read of `apply`).
#[derive(sqlx::FromRow)]
pub(in crate::store) struct KeyedAssessmentRow {
    pub(in crate::store) resource_key: String,
    pub(in crate::store) name_key: String,
    #[sqlx(flatten)]
    pub(in crate::store) row: AssessmentRow,
}

/// A `resource_tallies` row with its key within the subscription.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct TallyRow {
    pub(in crate::store) control: String,
    pub(in crate::store) resource_key: String,
    #[sqlx(flatten)]
    pub(in crate::store) counts: CountsRow,
}

/// The three counters of a `resource_tallies` or `control_counts` row.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct CountsRow {
    healthy: i64,
    unhealthy: i64,
    not_applicable: i64,
}

impl From<CountsRow> for ControlCounts {
    fn from(row: CountsRow) -> Self {
        ControlCounts {
            healthy: row.healthy,
            unhealthy: row.unhealthy,
            not_applicable: row.not_applicable,
        }
    }
}

impl From<CountsRow> for ResourceTally {
    fn from(row: CountsRow) -> Self {
        ResourceTally {
            healthy: row.healthy,
            unhealthy: row.unhealthy,
            not_applicable: row.not_applicable,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct ControlCountsRow {
    pub(in crate::store) control: String,
    #[sqlx(flatten)]
    pub(in crate::store) counts: CountsRow,
}

/// A recorded secure score (`score_history` without its time).
#[derive(sqlx::FromRow)]
pub(in crate::store) struct ScoreRow {
    current: f64,
    max: i64,
    percentage: f64,
    pub(in crate::store) weight: i64,
}

impl ScoreRow {
    pub(in crate::store) fn details(&self) -> ScoreDetails {
        ScoreDetails { current: self.current, max: self.max, percentage: self.percentage }
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct HistoryRow {
    at: String,
    #[sqlx(flatten)]
    score: ScoreRow,
    reason: Option<String>,
}

impl TryFrom<HistoryRow> for HistoryPoint {
    type Error = anyhow::Error;
    fn try_from(row: HistoryRow) -> Result<Self> {
        Ok(HistoryPoint {
            at: parse_time(&row.at)?,
            score: row.score.details(),
            weight: row.score.weight,
            reason: row.reason.as_deref().map(HistoryReason::parse).transpose()?,
        })
    }
}

pub(in crate::store) const HISTORY_COLUMNS: &str = "at, current, max, percentage, weight, reason";

/// What scoring needs of one stored assessment.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct StatusRow {
    pub(in crate::store) resource_key: String,
    pub(in crate::store) name_key: String,
    pub(in crate::store) status: String,
}

pub(in crate::store) const ASSESSMENT_COLUMNS: &str =
    "resource_id, name, status, cause, description, resource_details, \
     additional_data, partner_name, first_evaluation_date, status_change_date";
