//! The export files of Workspace and EventHub actions: one NDJSON file per action under
//! `DATA_DIR/exports/<subscription>.<resource group>.<automation>/<action index>.ndjson`, one
//! record per line in the shape of the Log Analytics table Defender exports that event source
//! to (`SecureScores`, `SecureScoreControls`, `SecurityRecommendation`; docs/EXPORT.md has the
//! mapping). A file over the size limit is renamed `<index>.<unix ms>.ndjson` before the next
//! record; rotated files are the operator's to ship and prune.

use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file of one automation action.
pub fn path(dir: &Path, automation_id: &str, action_index: usize) -> PathBuf {
    // id: /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Security/automations/{n}
    let parts: Vec<&str> = automation_id.split('/').filter(|s| !s.is_empty()).collect();
    let pick = |i: usize| parts.get(i).copied().unwrap_or("unknown");
    let folder = format!("{}.{}.{}", pick(1), pick(3), pick(7)).to_ascii_lowercase();
    dir.join(folder).join(format!("{action_index}.ndjson"))
}

/// Append one line, rotating the file first when it is over `max_bytes`. Blocking: run it on a
/// blocking thread. The line is written with one `write_all` on an append-mode file and synced,
/// so a record is whole or, after a crash, re-delivered.
pub fn append(file: &Path, record: &Value, max_bytes: u64) -> std::io::Result<()> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::metadata(file).is_ok_and(|m| m.len() >= max_bytes) {
        let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("export");
        // Two rotations in one millisecond must not overwrite each other.
        let mut n = 0;
        let mut target = file.with_file_name(format!("{stem}.{millis}.ndjson"));
        while target.exists() {
            n += 1;
            target = file.with_file_name(format!("{stem}.{millis}-{n}.ndjson"));
        }
        std::fs::rename(file, target)?;
    }
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// The Log Analytics record of an event: `body` is the resource as a GET returns it.
pub fn la_record(event_source: &str, event_id: &str, subscription: &str, body: &Value) -> Value {
    let now = crate::arm::format_time(time::OffsetDateTime::now_utc());
    let snapshot = event_source.ends_with("Snapshot");
    let p = &body["properties"];
    let id = body["id"].as_str().unwrap_or_default();
    match event_source.trim_end_matches("Snapshot") {
        "SecureScores" => json!({
            "Type": "SecureScores",
            "TimeGenerated": now,
            "EventId": event_id,
            "IsSnapshot": snapshot,
            "SecureScoresSubscriptionId": subscription,
            "AssessedResourceId": id,
            "DisplayName": p["displayName"],
            "CurrentScore": p["score"]["current"],
            "MaxScore": p["score"]["max"],
            "PercentageScore": p["score"]["percentage"],
            "Weight": p["weight"],
            "Environment": "Azure",
            "Properties": p,
        }),
        "SecureScoreControls" => json!({
            "Type": "SecureScoreControls",
            "TimeGenerated": now,
            "EventId": event_id,
            "IsSnapshot": snapshot,
            "SecureScoresSubscriptionId": subscription,
            "AssessedResourceId": id,
            "ControlId": body["name"],
            "ControlName": p["displayName"],
            "ControlType": "BuiltIn",
            "HealthyResources": p["healthyResourceCount"],
            "UnhealthyResources": p["unhealthyResourceCount"],
            "NotApplicableResources": p["notApplicableResourceCount"],
            "CurrentScore": p["score"]["current"],
            "MaxScore": p["score"]["max"],
            "PercentageScore": p["score"]["percentage"],
            "Weight": p["weight"],
            "Environment": "Azure",
            "Properties": p,
        }),
        _ => {
            let resource =
                id.split("/providers/Microsoft.Security/assessments/").next().unwrap_or(id);
            let meta = &p["metadata"];
            let status = &p["status"];
            json!({
                "Type": "SecurityRecommendation",
                "TimeGenerated": now,
                "EventId": event_id,
                "IsSnapshot": snapshot,
                "SubscriptionId": subscription,
                "AssessedResourceId": resource,
                "RecommendationId": id,
                "RecommendationName": body["name"],
                "RecommendationDisplayName": p["displayName"],
                "Description": meta["description"],
                "RemediationDescription": meta["remediationDescription"],
                "RecommendationSeverity": meta["severity"],
                "RecommendationState": status["code"],
                "NotApplicableReason": if status["code"] == "NotApplicable" { status["cause"].clone() } else { Value::Null },
                "FirstEvaluationDate": status["firstEvaluationDate"],
                "StatusChangeDate": status["statusChangeDate"],
                "Environment": "Azure",
                "Properties": p,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_per_action_and_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let id = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Security/automations/A";
        let file = path(dir.path(), id, 1);
        assert!(file.ends_with("s.rg.a/1.ndjson"), "{}", file.display());
        for i in 0..3 {
            append(&file, &json!({"i": i}), 8).unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "each record over the limit rotated: {names:?}");
        let current = std::fs::read_to_string(&file).unwrap();
        assert_eq!(current.lines().last(), Some(r#"{"i":2}"#));
    }

    #[test]
    fn score_records_have_the_log_analytics_columns() {
        let body = json!({"id": "/subscriptions/s/providers/Microsoft.Security/secureScores/ascScore", "name": "ascScore",
            "properties": {"displayName": "ASC score", "score": {"max": 10, "current": 5.0, "percentage": 0.5}, "weight": 3}});
        let r = la_record("SecureScoresSnapshot", "e1", "s", &body);
        assert_eq!(r["Type"], "SecureScores");
        assert_eq!(r["IsSnapshot"], true);
        assert_eq!(
            (r["CurrentScore"].clone(), r["MaxScore"].clone(), r["PercentageScore"].clone()),
            (json!(5.0), json!(10), json!(0.5))
        );
        assert_eq!(r["EventId"], "e1");
    }
}
