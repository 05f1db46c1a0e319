//! The reads of the status-transition log (`status_changes`, [`ChangeEngine`]); what writes it
//! is each engine's `tracker`.

use anyhow::Result;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{query, query_as, SqlBackend, WriteTx};
use crate::arm::{format_time, parse_time};
use crate::score::ScoreDetails;
use crate::store::changes::{ChangeCause, ChangeEngine, Order, StatusChange};
use crate::store::rows::parse_status;

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: String,
    resource_id: String,
    assessment: String,
    old_status: Option<String>,
    new_status: Option<String>,
    cause: Option<String>,
    before_current: f64,
    before_max: i64,
    before_percentage: f64,
    after_current: f64,
    after_max: i64,
    after_percentage: f64,
}

impl TryFrom<Row> for StatusChange {
    type Error = anyhow::Error;
    fn try_from(row: Row) -> Result<Self> {
        Ok(StatusChange {
            seq: row.seq,
            at: parse_time(&row.at)?,
            resource_id: row.resource_id,
            assessment: row.assessment,
            old: row.old_status.as_deref().map(parse_status).transpose()?,
            new: row.new_status.as_deref().map(parse_status).transpose()?,
            cause: row.cause.as_deref().map(ChangeCause::parse).transpose()?,
            before: ScoreDetails {
                current: row.before_current,
                max: row.before_max,
                percentage: row.before_percentage,
            },
            after: ScoreDetails {
                current: row.after_current,
                max: row.after_max,
                percentage: row.after_percentage,
            },
        })
    }
}

#[async_trait]
impl<B: SqlBackend> ChangeEngine for B {
    async fn changes(
        &self,
        subscription: Uuid,
        from: OffsetDateTime,
        to: OffsetDateTime,
        order: Order,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StatusChange>> {
        // Times are fixed-width UTC text, so text order is time order; seq breaks ties (and is
        // what a page resumes after).
        let (cmp, dir) = match order {
            Order::NewestFirst => ("<", "DESC"),
            Order::OldestFirst => (">", "ASC"),
        };
        let sql = format!(
            "SELECT seq, at, resource_id, assessment, old_status, new_status, cause, before_current, \
             before_max, before_percentage, after_current, after_max, after_percentage \
             FROM status_changes WHERE subscription_id = $1 AND at >= $2 AND at <= $3 \
             AND ($4 IS NULL OR seq {cmp} $4) ORDER BY seq {dir} LIMIT $5"
        );
        query_as::<Row>(&sql)
            .bind(subscription.to_string())
            .bind(format_time(from))
            .bind(format_time(to))
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(StatusChange::try_from)
            .collect()
    }

    async fn prune_changes(&self, before: OffsetDateTime, limit: usize) -> Result<u64> {
        // Oldest first by `seq` (the primary key, in time order), so each chunk finds its rows
        // at the start of the key range instead of scanning the whole log. Not announced: no
        // process keeps the log in memory.
        let mut tx = self.write_tx().await?;
        let done = query(
            "DELETE FROM status_changes WHERE seq IN (SELECT seq FROM status_changes \
             WHERE at < $1 ORDER BY seq LIMIT $2)",
        )
        .bind(format_time(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
