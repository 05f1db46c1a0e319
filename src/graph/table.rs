//! The tables a query can name and the shape of their rows. `securityresources` holds one row per
//! secure score, secure score control and assessment, with Resource Graph's columns; `resources`
//! (what a query without a table reads) and `resourcecontainers` (the subscriptions) exist so that
//! queries written for Azure run. Rows are made from the resources exactly as the API renders
//! them: the caller passes the rendered JSON in, this module only places it in columns.

use serde_json::Value;
use uuid::Uuid;

use super::{ErrorKind, Pos, QueryError, Table};

pub const SECURITY_RESOURCES: &str = "securityresources";
pub const RESOURCES: &str = "resources";
pub const RESOURCE_CONTAINERS: &str = "resourcecontainers";

/// Resource Graph's columns of a resource table, in its order.
pub const COLUMNS: [&str; 16] = [
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
];

/// The column type Resource Graph declares for a table column (used when a result column holds
/// only nulls, so its type cannot be seen from its values).
pub fn declared_type(column: &str) -> Option<&'static str> {
    match column {
        "sku" | "plan" | "properties" | "tags" | "identity" | "zones" | "extendedLocation" => {
            Some("object")
        }
        c if COLUMNS.contains(&c) => Some("string"),
        _ => None,
    }
}

/// The kinds of rows of `securityresources`, by their (lower-case, as ARG spells it) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SecureScore,
    Control,
    Assessment,
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::SecureScore => "microsoft.security/securescores",
            Kind::Control => "microsoft.security/securescores/securescorecontrols",
            Kind::Assessment => "microsoft.security/assessments",
        }
    }

    /// Can a row of this kind pass a query whose first `where` keeps only `types`?
    pub fn wanted(self, types: Option<&[String]>) -> bool {
        types.is_none_or(|t| t.iter().any(|t| t == self.type_name()))
    }
}

/// Is `name` (lower-case) a table a query may read?
pub fn check_table(name: &str, pos: Pos) -> Result<(), QueryError> {
    match name {
        SECURITY_RESOURCES | RESOURCES | RESOURCE_CONTAINERS => Ok(()),
        other => Err(QueryError::new(
            ErrorKind::Semantic,
            pos,
            other,
            format!(
                "the table '{other}' is not available here (securityresources, resources and resourcecontainers are)"
            ),
        )),
    }
}

/// An empty table with Resource Graph's columns.
pub fn empty() -> Table {
    Table { columns: COLUMNS.iter().map(|c| c.to_string()).collect(), rows: Vec::new() }
}

/// The resource group of a resource id, lower-cased as Resource Graph shows it; "" outside one.
pub fn resource_group(id: &str) -> String {
    let mut segs = id.split('/').filter(|s| !s.is_empty());
    while let Some(s) = segs.next() {
        if s.eq_ignore_ascii_case("resourceGroups") {
            return segs.next().unwrap_or("").to_ascii_lowercase();
        }
        if s.eq_ignore_ascii_case("providers") {
            break;
        }
    }
    String::new()
}

/// One `securityresources` row from a resource as the API renders it (`id`, `name`, `type`,
/// `properties`), in subscription `subscription` of tenant `tenant`. `located_at` is the id whose
/// resource group the row names (the assessed resource, for an assessment).
pub fn security_row(
    rendered: Value,
    subscription: Uuid,
    tenant: Uuid,
    located_at: &str,
) -> Vec<Value> {
    let Value::Object(mut map) = rendered else { return Vec::new() };
    let mut take = |k: &str| map.remove(k).unwrap_or(Value::Null);
    let id = take("id");
    let name = take("name");
    let kind = match take("type") {
        Value::String(t) => Value::String(t.to_ascii_lowercase()),
        other => other,
    };
    let properties = take("properties");
    vec![
        id,
        name,
        kind,
        Value::String(tenant.to_string()),
        Value::String(String::new()),
        Value::String(String::new()),
        Value::String(resource_group(located_at)),
        Value::String(subscription.to_string()),
        Value::String(String::new()),
        Value::Null,
        Value::Null,
        properties,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

/// One `resourcecontainers` row: a subscription, as Resource Graph lists it; `chain` is its
/// management groups, nearest first, as (name, display name).
pub fn subscription_row(
    id: Uuid,
    display_name: &str,
    state: &str,
    tenant: Uuid,
    chain: &[(String, String)],
) -> Vec<Value> {
    let chain: Vec<Value> = chain
        .iter()
        .map(|(name, display)| serde_json::json!({ "name": name, "displayName": display }))
        .collect();
    vec![
        Value::String(format!("/subscriptions/{id}")),
        Value::String(display_name.to_string()),
        Value::String("microsoft.resources/subscriptions".into()),
        Value::String(tenant.to_string()),
        Value::String(String::new()),
        Value::String(String::new()),
        Value::String(String::new()),
        Value::String(id.to_string()),
        Value::String(String::new()),
        Value::Null,
        Value::Null,
        serde_json::json!({ "state": state, "managementGroupAncestorsChain": chain }),
        Value::Object(serde_json::Map::new()),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_resource_graphs_columns_and_casing() {
        let sub = Uuid::nil();
        let rendered = serde_json::json!({
            "id": "/subscriptions/x/resourceGroups/MyRg/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.Security/assessments/a",
            "name": "a",
            "type": "Microsoft.Security/assessments",
            "properties": {"status": {"code": "Healthy"}},
        });
        let row = security_row(
            rendered,
            sub,
            sub,
            "/subscriptions/x/resourceGroups/MyRg/providers/Microsoft.Compute/virtualMachines/vm",
        );
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(row[2], "microsoft.security/assessments");
        assert_eq!(row[6], "myrg");
        assert_eq!(row[11]["status"]["code"], "Healthy");
        assert_eq!(
            resource_group("/subscriptions/x/providers/Microsoft.Security/secureScores/a"),
            ""
        );
        assert_eq!(subscription_row(sub, "n", "Enabled", sub, &[]).len(), COLUMNS.len());
    }

    #[test]
    fn type_hints_pick_the_kinds_to_build() {
        let only = vec!["microsoft.security/securescores".to_string()];
        assert!(Kind::SecureScore.wanted(Some(&only)));
        assert!(!Kind::Assessment.wanted(Some(&only)));
        assert!(Kind::Assessment.wanted(None));
        assert!(check_table("securityresources", Pos::default()).is_ok());
        assert!(check_table("alertsmanagementresources", Pos::default()).is_err());
    }
}
