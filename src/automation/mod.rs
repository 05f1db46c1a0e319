//! Continuous export: `Microsoft.Security/automations` and their delivery (docs/EXPORT.md).
//!
//! - [`model`]: what a valid automation is (body checks with the offending property's path), how it
//!   is stored and shown (secrets write-only).
//! - [`rules`]: JPath and the typed rule operators.
//! - [`worker`]: the delivery worker of the serve process: routes the outbox (written by the store
//!   in the transaction of each change) to matching automations, takes periodic snapshots, POSTs
//!   to LogicApp URIs with retries and capped exponential backoff, appends Workspace / EventHub
//!   events to NDJSON files ([`files`]).

pub mod files;
pub mod model;
pub mod rules;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use model::Spec;

/// Settings of the delivery worker (`serve --export-*` flags).
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// How often the worker looks for new changes and due retries when idle.
    pub poll_interval: Duration,
    /// The wait after a first failed attempt; doubled after each further failure...
    pub backoff_initial: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// The period of `…Snapshot` event sources (Defender: weekly).
    pub snapshot_interval: Duration,
    /// Where Workspace and EventHub actions' NDJSON files go (`DATA_DIR/exports`); `None`
    /// (`--memory` without a data directory): those events are counted as failures and retried.
    pub exports_dir: Option<PathBuf>,
    /// An export file larger than this is rotated before the next record.
    pub max_file_bytes: u64,
    /// The longest wait for one webhook answer.
    pub request_timeout: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            poll_interval: Duration::from_millis(250),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            snapshot_interval: Duration::from_secs(7 * 24 * 3600),
            exports_dir: None,
            max_file_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl ExportConfig {
    /// The wait before attempt `attempts + 1`, after `attempts` failures (≥ 1).
    pub fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.backoff_initial.saturating_mul(1u32 << doublings).min(self.backoff_max)
    }
}

/// Does an event about `resource_key` (lowercase id) fall in one of the automation's scopes?
pub fn in_scope(spec: &Spec, resource_key: &str) -> bool {
    spec.properties.scopes.iter().any(|s| {
        let scope = s.scope_path.trim_end_matches('/').to_ascii_lowercase();
        resource_key == scope
            || resource_key.strip_prefix(&scope).is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Does the source take this resource JSON? OR of rule sets, AND of rules; no rule sets: all.
pub fn source_matches(source: &model::Source, resource: &serde_json::Value) -> bool {
    source.rule_sets.is_empty()
        || source.rule_sets.iter().any(|set| {
            set.rules.iter().all(|rule| {
                let Ok(steps) = rules::parse_jpath(&rule.property_jpath) else { return false };
                let Ok(expected) = rules::Expected::parse(rule.property_type, &rule.expected_value)
                else {
                    return false;
                };
                expected.test(rule.operator, rules::resolve(resource, &steps))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let c = ExportConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..ExportConfig::default()
        };
        let waits: Vec<u128> = (1..=6).map(|a| c.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(c.backoff(i64::MAX), Duration::from_millis(1000));
    }

    fn source(sets: serde_json::Value) -> model::Source {
        serde_json::from_value(json!({"eventSource": "SecureScores", "ruleSets": sets})).unwrap()
    }

    #[test]
    fn rule_sets_or_and_rules_and() {
        let score = json!({"properties": {"score": {"percentage": 0.5, "max": 10}}});
        let rule = |path: &str, t: &str, v: &str, op: &str| json!({"propertyJPath": path, "propertyType": t, "expectedValue": v, "operator": op});
        let low = rule("properties.score.percentage", "Number", "0.6", "LesserThan");
        let high = rule("properties.score.percentage", "Number", "0.9", "GreaterThan");
        let max10 = rule("properties.score.max", "Integer", "10", "Equals");
        assert!(source_matches(&source(json!([])), &score), "no rule sets: everything");
        assert!(source_matches(&source(json!([{"rules": [low.clone(), max10.clone()]}])), &score));
        assert!(!source_matches(
            &source(json!([{"rules": [high.clone(), max10.clone()]}])),
            &score
        ));
        assert!(source_matches(
            &source(json!([{"rules": [high.clone()]}, {"rules": [low]}])),
            &score
        ));
        assert!(!source_matches(&source(json!([{"rules": [high]}])), &score));
    }

    #[test]
    fn scopes_are_id_prefixes_on_segment_boundaries() {
        let spec: Spec = serde_json::from_value(json!({
            "location": "x",
            "properties": {"isEnabled": true, "sources": [], "actions": [],
                "scopes": [{"scopePath": "/subscriptions/S/resourceGroups/RG"}]}
        }))
        .unwrap();
        assert!(in_scope(&spec, "/subscriptions/s/resourcegroups/rg"));
        assert!(in_scope(&spec, "/subscriptions/s/resourcegroups/rg/providers/x/y/z"));
        assert!(!in_scope(&spec, "/subscriptions/s/resourcegroups/rg2/providers/x/y/z"));
        assert!(!in_scope(&spec, "/subscriptions/s"));
    }
}
