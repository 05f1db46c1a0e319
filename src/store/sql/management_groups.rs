//! Management groups in either SQL engine (the trait and records are
//! [`crate::store::management_groups`]'s): groups and placements of subscriptions (migration
//! 0006), and the reads of the per-resource-group counters (`sql::resource_groups` moves them).
//! A change of the hierarchy moves the exemptions of management groups over subscriptions, so it
//! re-steps them in its own transaction (`sql::exemptions`).

use anyhow::Result;
use async_trait::async_trait;
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{exemptions, query, query_as, query_scalar, SqlBackend, WriteTx};
use crate::arm::{format_time, parse_time};
use crate::score::ControlCounts;
use crate::store::management_groups::{HierarchyError, ManagementGroup, ManagementGroupEngine};
use crate::store::rows::ControlCountsRow;

#[derive(sqlx::FromRow)]
struct GroupRow {
    name: String,
    display_name: String,
    parent_key: Option<String>,
    version: i64,
    updated_time: String,
    updated_by: String,
}

impl TryFrom<GroupRow> for ManagementGroup {
    type Error = anyhow::Error;
    fn try_from(row: GroupRow) -> Result<Self> {
        Ok(ManagementGroup {
            name: row.name,
            display_name: row.display_name,
            parent: row.parent_key,
            version: row.version,
            updated_time: parse_time(&row.updated_time)?,
            updated_by: row.updated_by,
        })
    }
}

#[async_trait]
impl<B: SqlBackend> ManagementGroupEngine for B {
    async fn management_groups(&self) -> Result<Vec<ManagementGroup>> {
        query_as::<GroupRow>(format!(
            "SELECT name, display_name, parent_key, version, updated_time, updated_by \
             FROM management_groups ORDER BY {}",
            B::GROUP_ORDER
        ))
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(ManagementGroup::try_from)
        .collect()
    }

    async fn placements(&self) -> Result<Vec<(Uuid, String)>> {
        let rows: Vec<(String, String)> =
            query_as("SELECT subscription_id, group_key FROM management_group_subscriptions")
                .fetch_all(self.reader())
                .await?;
        rows.into_iter().map(|(s, g)| Ok((Uuid::parse_str(&s)?, g))).collect()
    }

    async fn put_management_group(
        &self,
        group: &ManagementGroup,
    ) -> Result<std::result::Result<bool, HierarchyError>> {
        let mut tx = self.write_tx().await?;
        let key = group.key();
        if let Some(parent) = &group.parent {
            // The parent and every group above it, inside the write lock.
            let above: Vec<String> = query_scalar(
                "WITH RECURSIVE up(k) AS (SELECT name_key FROM management_groups WHERE name_key = $1 \
                 UNION SELECT g.parent_key FROM management_groups g JOIN up ON g.name_key = up.k \
                 WHERE g.parent_key IS NOT NULL) SELECT k FROM up",
            )
            .bind(parent)
            .fetch_all(tx.conn())
            .await?;
            let refused = if above.is_empty() {
                Some(HierarchyError::NoParent(parent.clone()))
            } else if above.contains(&key) {
                Some(HierarchyError::Cycle { group: group.name.clone(), parent: parent.clone() })
            } else {
                None
            };
            if let Some(refused) = refused {
                tx.finish_read().await?;
                return Ok(Err(refused));
            }
        }
        let existed: Option<Option<String>> =
            query_scalar("SELECT parent_key FROM management_groups WHERE name_key = $1")
                .bind(&key)
                .fetch_optional(tx.conn())
                .await?;
        // A group that moves takes its subscriptions below other groups.
        let moved = existed.as_ref().is_some_and(|parent| *parent != group.parent);
        let before = if moved {
            let below = exemptions::subscriptions_below(&mut tx, &key).await?;
            exemptions::before_hierarchy_change(&mut tx, below).await?
        } else {
            HashMap::new()
        };
        query(
            "INSERT INTO management_groups (name_key, name, display_name, parent_key, version, \
             updated_time, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name_key) DO UPDATE SET display_name = excluded.display_name, \
             parent_key = excluded.parent_key, version = excluded.version, \
             updated_time = excluded.updated_time, updated_by = excluded.updated_by",
        )
        .bind(&key)
        .bind(&group.name)
        .bind(&group.display_name)
        .bind(&group.parent)
        .bind(group.version)
        .bind(format_time(group.updated_time))
        .bind(&group.updated_by)
        .execute(tx.conn())
        .await?;
        exemptions::after_hierarchy_change(&mut tx, &before, group.updated_time).await?;
        tx.everything();
        tx.announce().await?;
        tx.commit().await?;
        Ok(Ok(existed.is_none()))
    }

    async fn delete_management_group(
        &self,
        key: &str,
    ) -> Result<std::result::Result<bool, HierarchyError>> {
        let mut tx = self.write_tx().await?;
        let children: i64 = query_scalar(
            "SELECT (SELECT count(*) FROM management_groups WHERE parent_key = $1) \
             + (SELECT count(*) FROM management_group_subscriptions WHERE group_key = $1)",
        )
        .bind(key)
        .fetch_one(tx.conn())
        .await?;
        if children > 0 {
            tx.finish_read().await?;
            return Ok(Err(HierarchyError::HasChildren(key.to_string())));
        }
        // Its exemptions go with it (nothing lies below it, so no score moves).
        query("DELETE FROM exemptions WHERE group_key = $1").bind(key).execute(tx.conn()).await?;
        let done = query("DELETE FROM management_groups WHERE name_key = $1")
            .bind(key)
            .execute(tx.conn())
            .await?;
        tx.everything();
        tx.announce().await?;
        tx.commit().await?;
        Ok(Ok(done.rows_affected() > 0))
    }

    async fn place_subscription(
        &self,
        subscription: Uuid,
        group: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<(), HierarchyError>> {
        let id = subscription.to_string();
        let mut tx = self.write_tx().await?;
        let before = exemptions::before_hierarchy_change(&mut tx, vec![id.clone()]).await?;
        let done = match group {
            // Only while both still exist (another process may have removed either).
            Some(g) => query(
                "INSERT INTO management_group_subscriptions (subscription_id, group_key) \
                 SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM subscriptions WHERE id = $1) \
                 AND EXISTS (SELECT 1 FROM management_groups WHERE name_key = $2) \
                 ON CONFLICT (subscription_id) DO UPDATE SET group_key = excluded.group_key",
            )
            .bind(&id)
            .bind(g.to_string()),
            None => query("DELETE FROM management_group_subscriptions WHERE subscription_id = $1")
                .bind(&id),
        }
        .execute(tx.conn())
        .await?
        .rows_affected();
        exemptions::after_hierarchy_change(&mut tx, &before, now).await?;
        tx.everything();
        tx.announce().await?;
        tx.commit().await?;
        Ok(match group {
            Some(g) if done == 0 => Err(HierarchyError::NoGroup(g.to_string())),
            _ => Ok(()),
        })
    }

    async fn resource_groups(&self, subscription: Uuid) -> Result<Vec<String>> {
        Ok(query_scalar(
            "SELECT DISTINCT resource_group FROM resource_group_counts WHERE subscription_id = $1 \
             ORDER BY resource_group",
        )
        .bind(subscription.to_string())
        .fetch_all(self.reader())
        .await?)
    }

    async fn resource_group_counts(
        &self,
        subscription: Uuid,
        resource_group: &str,
    ) -> Result<Vec<(String, ControlCounts)>> {
        Ok(query_as::<ControlCountsRow>(
            "SELECT control, healthy, unhealthy, not_applicable FROM resource_group_counts \
             WHERE subscription_id = $1 AND resource_group = $2",
        )
        .bind(subscription.to_string())
        .bind(resource_group.to_ascii_lowercase())
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(|row| (row.control, row.counts.into()))
        .collect())
    }
}
