//! The built-in catalogue: the 16 secure score controls (with their assessment memberships) and the
//! 557 built-in assessment metadata they reference. The data files in `data/` hold facts from public
//! sources; `data/PROVENANCE.md` says where every field comes from, and each entry whose fields were
//! filled after the first transcription names its sources in `filled`.
//!
//! The catalogue is parsed once, on first use, and then shared as `&'static` by the store (to know
//! which controls an assessment counts toward) and the API (to render definitions and metadata).

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

/// The one built-in secure score (initiative): all built-in controls.
pub const ASC_SCORE: &str = "ascScore";
pub const ASC_SCORE_DISPLAY_NAME: &str = "ASC score";

const CONTROLS_JSON: &str = include_str!("data/controls.json");
const ASSESSMENTS_JSON: &str = include_str!("data/assessments.json");

/// A built-in secure score control (`secureScoreControlDefinitions` item).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlDef {
    /// Lowercase GUID.
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub max_score: i64,
    pub source_type: String,
    /// Assessment metadata keys, in the recorded order.
    pub assessment_definitions: Vec<String>,
}

/// Built-in assessment metadata as the catalogue knows it. Fields no source gives are `None`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssessmentDef {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// Always present: the spec requires it. Where no public source gives one, the data says so in
    /// `filled` (source `default-severity`).
    pub severity: String,
    pub categories: Option<Vec<String>>,
    pub user_impact: Option<String>,
    pub implementation_effort: Option<String>,
    pub threats: Option<Vec<String>>,
    pub remediation_description: Option<String>,
    pub policy_definition_id: Option<String>,
    pub assessment_type: String,
    pub preview: Option<bool>,
    /// The controls this assessment belongs to (lowercase GUIDs).
    pub controls: Vec<String>,
    /// Where the first transcription's sources (`sources` in the data) name the entry.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Fields filled later, and the sources (ids explained in `data/PROVENANCE.md`) they came from.
    pub filled: Option<Filled>,
}

/// Provenance of the fields filled after the first transcription of the catalogue.
#[derive(Debug, Deserialize)]
pub struct Filled {
    /// Wire names of the filled fields (`displayName`, `severity`, ...).
    pub fields: Vec<String>,
    /// Source ids, each a row of the source table in `data/PROVENANCE.md`.
    pub sources: Vec<String>,
}

impl AssessmentDef {
    /// Only built-in, non-preview recommendations move the score (docs/SCORING.md).
    pub fn counts_toward_score(&self) -> bool {
        self.assessment_type == "BuiltIn" && self.preview != Some(true)
    }

    /// The name to show. Where no public source names a key we say so rather than invent a name.
    pub fn display_name(&self) -> String {
        match &self.display_name {
            Some(name) => name.clone(),
            None => format!("Built-in assessment {} (no public name known)", self.name),
        }
    }
}

pub struct Catalog {
    controls: Vec<ControlDef>,
    assessments: Vec<AssessmentDef>,
    control_index: HashMap<String, usize>,
    assessment_index: HashMap<String, usize>,
}

static BUILTIN: LazyLock<Catalog> = LazyLock::new(|| {
    // The files are compiled in and covered by tests: a parse failure is a build defect.
    let controls: Vec<ControlDef> =
        serde_json::from_str(CONTROLS_JSON).expect("embedded controls.json parses");
    let assessments: Vec<AssessmentDef> =
        serde_json::from_str(ASSESSMENTS_JSON).expect("embedded assessments.json parses");
    Catalog::new(controls, assessments)
});

/// The built-in catalogue.
pub fn builtin() -> &'static Catalog {
    &BUILTIN
}

static VERSION: LazyLock<String> = LazyLock::new(|| {
    // Length-prefixed so that moving bytes from one file to the other changes the hash too.
    let mut hasher = Sha256::new();
    for data in [CONTROLS_JSON, ASSESSMENTS_JSON] {
        hasher.update((data.len() as u64).to_be_bytes());
        hasher.update(data.as_bytes());
    }
    hasher.finalize().iter().fold(String::from("sha256:"), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
});

/// The version of the built-in catalogue: a hash of its embedded data. The store records the
/// version its counters were computed with and rebuilds them when a build brings another one.
pub fn version() -> &'static str {
    &VERSION
}

impl Catalog {
    fn new(mut controls: Vec<ControlDef>, mut assessments: Vec<AssessmentDef>) -> Self {
        for c in &mut controls {
            c.name.make_ascii_lowercase();
            for a in &mut c.assessment_definitions {
                a.make_ascii_lowercase();
            }
        }
        for a in &mut assessments {
            a.name.make_ascii_lowercase();
            for c in &mut a.controls {
                c.make_ascii_lowercase();
            }
        }
        let control_index = controls.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        let assessment_index =
            assessments.iter().enumerate().map(|(i, a)| (a.name.clone(), i)).collect();
        Catalog { controls, assessments, control_index, assessment_index }
    }

    /// Controls in catalogue order (the order of the recorded Azure response).
    pub fn controls(&self) -> &[ControlDef] {
        &self.controls
    }

    pub fn control(&self, name: &str) -> Option<&ControlDef> {
        self.control_index.get(&name.to_ascii_lowercase()).map(|&i| &self.controls[i])
    }

    pub fn assessments(&self) -> &[AssessmentDef] {
        &self.assessments
    }

    pub fn assessment(&self, name: &str) -> Option<&AssessmentDef> {
        self.assessment_index.get(&name.to_ascii_lowercase()).map(|&i| &self.assessments[i])
    }

    /// The controls an assessment of metadata `name` counts toward: empty for unknown, custom and
    /// preview recommendations, which appear in the API but never move the score.
    pub fn scored_controls(&self, name: &str) -> &[String] {
        match self.assessment(name) {
            Some(a) if a.counts_toward_score() => &a.controls,
            _ => &[],
        }
    }

    pub fn max_score(&self, control: &str) -> i64 {
        self.control(control).map_or(0, |c| c.max_score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_complete_and_consistent() {
        let cat = builtin();
        assert_eq!(cat.controls().len(), 16);
        assert_eq!(cat.assessments().len(), 557);
        assert_eq!(cat.controls().iter().map(|c| c.max_score).sum::<i64>(), 58);
        // Every membership is kept, in both directions.
        for c in cat.controls() {
            for a in &c.assessment_definitions {
                let def = cat.assessment(a).expect("member assessment exists");
                assert!(def.controls.contains(&c.name), "{a} lists {}", c.name);
            }
        }
        let refs: usize = cat.assessments().iter().map(|a| a.controls.len()).sum();
        let members: usize = cat.controls().iter().map(|c| c.assessment_definitions.len()).sum();
        assert_eq!(refs, members);
    }

    #[test]
    fn unnamed_assessments_say_so() {
        let unnamed = builtin().assessments().iter().find(|a| a.display_name.is_none()).unwrap();
        assert!(unnamed.display_name().contains("no public name known"));
    }

    const PROVENANCE: &str = include_str!("data/PROVENANCE.md");
    const SEVERITIES: [&str; 3] = ["Low", "Medium", "High"];

    /// The GUIDs that PROVENANCE.md lists as still without a public name.
    fn documented_unnamed() -> Vec<String> {
        let section = PROVENANCE
            .split("### Keys still without a public name")
            .nth(1)
            .and_then(|rest| rest.split("\n### ").next())
            .expect("PROVENANCE.md lists the unnamed keys");
        let mut keys: Vec<String> = section
            .split('`')
            .filter(|t| t.len() == 36 && uuid::Uuid::parse_str(t).is_ok())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn every_builtin_entry_has_a_spec_severity() {
        for a in builtin().assessments() {
            assert!(SEVERITIES.contains(&a.severity.as_str()), "{}: {}", a.name, a.severity);
        }
    }

    #[test]
    fn the_remaining_placeholders_are_exactly_the_documented_ones() {
        let mut unnamed: Vec<String> = builtin()
            .assessments()
            .iter()
            .filter(|a| a.display_name.is_none())
            .map(|a| a.name.clone())
            .collect();
        unnamed.sort();
        assert_eq!(unnamed.len(), 84);
        assert_eq!(unnamed, documented_unnamed());
        for a in builtin().assessments().iter().filter(|a| a.display_name.is_none()) {
            // Their severity is the documented default, never passed off as sourced.
            let filled = a.filled.as_ref().expect("a default severity says so");
            assert_eq!(filled.sources, ["default-severity"], "{}", a.name);
            assert_eq!(filled.fields, ["severity"], "{}", a.name);
            assert!(a.description.is_none(), "{}", a.name);
        }
    }

    #[test]
    fn every_filled_field_names_documented_sources() {
        let mut filled = 0;
        for a in builtin().assessments() {
            assert!(
                !a.sources.is_empty(),
                "{}: the first transcription's sources are kept",
                a.name
            );
            let Some(f) = &a.filled else { continue };
            filled += 1;
            assert!(!f.fields.is_empty() && !f.sources.is_empty(), "{}", a.name);
            for source in &f.sources {
                assert!(PROVENANCE.contains(&format!("| `{source}` |")), "{}: {source}", a.name);
            }
            for field in &f.fields {
                let present = match field.as_str() {
                    "displayName" => a.display_name.is_some(),
                    "description" => a.description.is_some(),
                    "severity" => true,
                    "categories" => a.categories.is_some(),
                    "userImpact" => a.user_impact.is_some(),
                    "implementationEffort" => a.implementation_effort.is_some(),
                    "threats" => a.threats.is_some(),
                    "remediationDescription" => a.remediation_description.is_some(),
                    "policyDefinitionId" => a.policy_definition_id.is_some(),
                    "preview" => a.preview.is_some(),
                    other => panic!("{}: unknown filled field {other}", a.name),
                };
                assert!(present, "{}: {field} is listed as filled but absent", a.name);
            }
        }
        // 203 from the listings (202 placeholders and one correction) + 84 default severities.
        assert_eq!(filled, 203 + 84);
    }

    #[test]
    fn the_newest_evidence_decides_preview_and_severity() {
        let cat = builtin();
        // Preview in June 2020, GA with severity Low in the later listings: it counts now.
        let sql = cat.assessment("b0df6f56-862d-4730-8597-38c0fd4ebd59").unwrap();
        assert_eq!((sql.preview, sql.severity.as_str()), (Some(false), "Low"));
        assert_eq!(cat.scored_controls(&sql.name), ["2d63c496-0d49-4288-9a1b-e65cd9ac0e1e"]);
        // Preview in December 2020, GA in August 2021.
        let ports = cat.assessment("5f88450f-9546-4b78-a181-a2d9162bb441").unwrap();
        assert_eq!(ports.preview, Some(false));
        assert!(ports.counts_toward_score());
        // A multicloud key both listings mark preview no longer moves "Enable MFA".
        let aws = cat.assessment("1f24d55a-df0f-4772-9090-4629c2d6bfff").unwrap();
        assert_eq!(aws.preview, Some(true));
        assert!(cat.scored_controls(&aws.name).is_empty());
        // The two Defender plan keys of "Enable enhanced security features", as the API named them.
        let k8s = cat.assessment("86ea1a79-29d3-4eac-a9f4-3541ace4e718").unwrap();
        assert_eq!(k8s.display_name(), "Azure Defender for Kubernetes should be enabled");
        let acr = cat.assessment("53572822-d3fc-4363-bfb9-248645841612").unwrap();
        assert_eq!(acr.display_name(), "Azure Defender for container registries should be enabled");
    }

    #[test]
    fn version_is_a_stable_sha256_of_the_data() {
        let v = version();
        assert!(v.starts_with("sha256:"), "{v}");
        assert_eq!(v.len(), "sha256:".len() + 64);
        assert!(v["sha256:".len()..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(v, version(), "computed once");
    }

    #[test]
    fn lookups_are_case_insensitive() {
        let cat = builtin();
        assert!(cat.control("34A42FB3-E6DB-409C-B56B-7B1DB6B8AEE0").is_some());
        assert_eq!(cat.max_score("34a42fb3-e6db-409c-b56b-7b1db6b8aee0"), 10);
        assert!(cat.scored_controls("00000000-0000-0000-0000-000000000000").is_empty());
    }
}
