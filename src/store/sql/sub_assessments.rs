//! Sub-assessments in either SQL engine (the trait and record are [`crate::store::engine`]'s): one
//! table keyed by (resource, assessment, name), lowercase. The cascade from a deleted assessment
//! is a trigger of migration 0004, so every path that deletes assessments keeps it.

use anyhow::{Context, Result};
use async_trait::async_trait;

use super::{query, query_as, query_scalar, write_one, SqlBackend, WriteTx};
use crate::arm::resource_id::ScopeKind;
use crate::arm::ResourceId;
use crate::store::engine::{SubAssessment, SubAssessmentEngine, SubAssessmentKey};

const COLUMNS: &str = "resource_id, assessment_name, name, properties";

#[derive(sqlx::FromRow)]
struct Row {
    resource_id: String,
    assessment_name: String,
    name: String,
    properties: String,
}

impl TryFrom<Row> for SubAssessment {
    type Error = anyhow::Error;

    fn try_from(row: Row) -> Result<Self> {
        let properties = serde_json::from_str(&row.properties).with_context(|| {
            format!("stored properties of sub-assessment '{}' are not JSON", row.name)
        })?;
        Ok(SubAssessment {
            resource_id: row.resource_id,
            assessment: row.assessment_name,
            name: row.name,
            properties,
        })
    }
}

#[async_trait]
impl<B: SqlBackend> SubAssessmentEngine for B {
    async fn put_sub_assessment(
        &self,
        resource: &ResourceId,
        sub: &SubAssessment,
    ) -> Result<Option<bool>> {
        let mut tx = self.write_tx().await?;
        let subscription = resource.subscription().to_string();
        if tx.lock_subscriptions(vec![subscription.clone()]).await?.is_empty() {
            tx.finish_read().await?;
            return Ok(None);
        }
        let (assessment_key, name_key) =
            (sub.assessment.to_ascii_lowercase(), sub.name.to_ascii_lowercase());
        let existed: Option<i64> = query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM sub_assessments \
             WHERE resource_key = $1 AND assessment_key = $2 AND name_key = $3",
        )
        .bind(resource.key())
        .bind(&assessment_key)
        .bind(&name_key)
        .fetch_optional(tx.conn())
        .await?;
        // A replace keeps the casing of the first write, like assessments.
        query(
            "INSERT INTO sub_assessments (resource_key, assessment_key, name_key, subscription_id, \
             resource_id, assessment_name, name, properties) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (resource_key, assessment_key, name_key) \
             DO UPDATE SET properties = excluded.properties",
        )
        .bind(resource.key())
        .bind(&assessment_key)
        .bind(&name_key)
        .bind(&subscription)
        .bind(&sub.resource_id)
        .bind(&sub.assessment)
        .bind(&sub.name)
        .bind(serde_json::to_string(&sub.properties)?)
        .execute(tx.conn())
        .await?;
        tx.announce().await?;
        tx.commit().await?;
        Ok(Some(existed.is_none()))
    }

    async fn sub_assessment(
        &self,
        resource: &ResourceId,
        assessment_key: &str,
        name_key: &str,
    ) -> Result<Option<SubAssessment>> {
        query_as::<Row>(format!(
            "SELECT {COLUMNS} FROM sub_assessments \
             WHERE resource_key = $1 AND assessment_key = $2 AND name_key = $3"
        ))
        .bind(resource.key())
        .bind(assessment_key)
        .bind(name_key)
        .fetch_optional(self.reader())
        .await?
        .map(SubAssessment::try_from)
        .transpose()
    }

    async fn sub_assessments(
        &self,
        scope: &ResourceId,
        assessment_key: Option<&str>,
        after: Option<&SubAssessmentKey>,
        limit: usize,
    ) -> Result<Vec<SubAssessment>> {
        // The scope and everything below it, as for assessments ('0' follows '/').
        let (after_resource, after_assessment, after_name) = after.cloned().unwrap_or_default();
        let sql = format!(
            "SELECT {COLUMNS} FROM sub_assessments WHERE subscription_id = $1 \
             AND ($2 OR resource_key = $3 OR (resource_key >= $4 AND resource_key < $5)) \
             AND ($6 IS NULL OR assessment_key = $6) \
             AND (resource_key, assessment_key, name_key) > ($7, $8, $9) \
             ORDER BY resource_key, assessment_key, name_key LIMIT $10"
        );
        query_as::<Row>(&sql)
            .bind(scope.subscription().to_string())
            .bind(scope.kind() == ScopeKind::Subscription)
            .bind(scope.key())
            .bind(format!("{}/", scope.key()))
            .bind(format!("{}0", scope.key()))
            .bind(assessment_key)
            .bind(after_resource)
            .bind(after_assessment)
            .bind(after_name)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .map(SubAssessment::try_from)
            .collect()
    }

    async fn delete_sub_assessment(
        &self,
        resource: &ResourceId,
        assessment_key: &str,
        name_key: &str,
    ) -> Result<bool> {
        let deleted = write_one(
            self,
            Some(resource.subscription().to_string()),
            query(
                "DELETE FROM sub_assessments \
                     WHERE resource_key = $1 AND assessment_key = $2 AND name_key = $3",
            )
            .bind(resource.key())
            .bind(assessment_key)
            .bind(name_key),
        )
        .await?;
        Ok(deleted > 0)
    }
}
