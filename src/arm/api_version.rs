//! api-version rules of docs/ARM.md: which versions each resource family accepts, and the error a
//! request gets when its version is missing or unsupported.

use super::error::ApiError;

/// A family of endpoints that share their supported api-versions (newest first).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The Microsoft.Security resource type named in errors; `None` for ARM-owned endpoints.
    resource_type: Option<&'static str>,
    supported: &'static [&'static str],
}

pub const V2019_01_01_PREVIEW: &str = "2019-01-01-preview";
pub const V2020_01_01: &str = "2020-01-01";
pub const V2021_06_01: &str = "2021-06-01";
pub const V2015_06_01_PREVIEW: &str = "2015-06-01-preview";
pub const V2024_10_01_PREVIEW: &str = "2024-10-01-preview";
pub const V2025_10_01_PREVIEW: &str = "2025-10-01-preview";
pub const V2025_05_04: &str = "2025-05-04";
pub const V2023_12_01_PREVIEW: &str = "2023-12-01-preview";

const SECURE_SCORE_VERSIONS: &[&str] = &[V2020_01_01, "2020-01-01-preview"];
const SUB_ASSESSMENT_VERSIONS: &[&str] = &[V2019_01_01_PREVIEW];
/// Continuous export (automations); PATCH only exists at 2023-12-01-preview.
const AUTOMATION_VERSIONS: &[&str] = &[V2023_12_01_PREVIEW, V2019_01_01_PREVIEW];
const ASSESSMENT_VERSIONS: &[&str] = &[V2025_05_04, V2021_06_01, V2020_01_01, V2019_01_01_PREVIEW];
/// The operations list: what the Python SDK sends (2015-06-01-preview) and the spec's later ones.
const OPERATIONS_VERSIONS: &[&str] =
    &[V2025_10_01_PREVIEW, V2024_10_01_PREVIEW, V2015_06_01_PREVIEW];
/// What the SDKs and `az` send to ARM's own subscription and tenant endpoints.
const ARM_VERSIONS: &[&str] = &[
    "2022-12-01",
    "2022-09-01",
    "2021-01-01",
    "2020-01-01",
    "2019-11-01",
    "2019-06-01",
    "2018-06-01",
    "2016-06-01",
];

impl Family {
    pub const fn security(resource_type: &'static str, supported: &'static [&'static str]) -> Self {
        Family { resource_type: Some(resource_type), supported }
    }
    pub const SECURE_SCORES: Family = Family::security("secureScores", SECURE_SCORE_VERSIONS);
    pub const SECURE_SCORE_CONTROLS: Family =
        Family::security("secureScores/secureScoreControls", SECURE_SCORE_VERSIONS);
    pub const CONTROLS: Family = Family::security("secureScoreControls", SECURE_SCORE_VERSIONS);
    pub const DEFINITIONS: Family =
        Family::security("secureScoreControlDefinitions", SECURE_SCORE_VERSIONS);
    pub const ASSESSMENTS: Family = Family::security("assessments", ASSESSMENT_VERSIONS);
    pub const METADATA: Family = Family::security("assessmentMetadata", ASSESSMENT_VERSIONS);
    pub const OPERATIONS: Family = Family::security("operations", OPERATIONS_VERSIONS);
    pub const SUB_ASSESSMENTS: Family =
        Family::security("assessments/subAssessments", SUB_ASSESSMENT_VERSIONS);
    pub const AUTOMATIONS: Family = Family::security("automations", AUTOMATION_VERSIONS);
    pub const ARM: Family = Family { resource_type: None, supported: ARM_VERSIONS };

    /// Check the request's api-version; returns the canonical spelling of the version.
    pub fn check(self, requested: Option<&str>) -> Result<&'static str, ApiError> {
        let Some(requested) = requested.filter(|v| !v.is_empty()) else {
            return Err(ApiError::MissingApiVersion);
        };
        if let Some(v) = self.supported.iter().find(|v| v.eq_ignore_ascii_case(requested)) {
            return Ok(v);
        }
        let version = requested.to_string();
        Err(match self.resource_type {
            Some(resource_type) => ApiError::UnsupportedApiVersion {
                resource_type,
                version,
                supported: self.supported,
            },
            None => ApiError::InvalidApiVersion { version, supported: self.supported },
        })
    }
}

/// The response and request model of assessments and assessment metadata at one api-version:
/// the one place that knows what each version has. Handlers render one internal model and ask
/// this which parts the requested version shows and which request fields it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AssessmentModel {
    /// 2019-01-01-preview: no embedded metadata, no partner data, no status dates.
    V2019Preview,
    /// 2020-01-01: adds embedded `metadata` and `partnersData` / `partnerData`.
    V2020,
    /// 2021-06-01: responses split from requests; status dates; metadata publish dates and
    /// MITRE ATT&CK tactics and techniques.
    V2021,
    /// 2025-05-04: adds an assessment's `risk`; wider metadata enums.
    V2025,
}

impl AssessmentModel {
    /// The model of a version `Family::ASSESSMENTS`/`Family::METADATA` accepted. Anything else
    /// (only reachable from code that skipped the check) gets the newest model.
    pub fn of(api_version: &str) -> Self {
        match api_version {
            V2019_01_01_PREVIEW => AssessmentModel::V2019Preview,
            V2020_01_01 => AssessmentModel::V2020,
            V2021_06_01 => AssessmentModel::V2021,
            _ => AssessmentModel::V2025,
        }
    }

    /// `status.statusChangeDate` and `status.firstEvaluationDate` of an assessment.
    pub fn status_dates(self) -> bool {
        // The 2020-01-01 model leaves them out, but Azure sends them at 2020-01-01 too (its own
        // 2020-01-01 example with `$expand` has both); only 2019-01-01-preview predates them.
        self >= AssessmentModel::V2020
    }

    /// `$expand=metadata` embeds the metadata (2019-01-01-preview accepts the expand value but
    /// its model has no such property).
    pub fn embedded_metadata(self) -> bool {
        self >= AssessmentModel::V2020
    }

    /// `partnersData` of an assessment and `partnerData` of metadata.
    pub fn partner_data(self) -> bool {
        self >= AssessmentModel::V2020
    }

    /// `risk` of an assessment.
    pub fn risk(self) -> bool {
        self >= AssessmentModel::V2025
    }

    /// Metadata's `publishDates`, `plannedDeprecationDate`, `tactics` and `techniques`.
    pub fn metadata_response_extras(self) -> bool {
        self >= AssessmentModel::V2021
    }

    /// Metadata severities a request may use.
    pub fn severities(self) -> &'static [&'static str] {
        if self >= AssessmentModel::V2025 {
            &["Low", "Medium", "High", "Critical"]
        } else {
            &["Low", "Medium", "High"]
        }
    }

    /// Metadata categories a request may use.
    pub fn categories(self) -> &'static [&'static str] {
        if self >= AssessmentModel::V2025 {
            &[
                "Compute",
                "Networking",
                "Data",
                "IdentityAndAccess",
                "IoT",
                "Container",
                "AppServices",
            ]
        } else {
            &["Compute", "Networking", "Data", "IdentityAndAccess", "IoT"]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(Family::SECURE_SCORES.check(Some("2020-01-01")).unwrap(), "2020-01-01");
        assert_eq!(Family::ASSESSMENTS.check(Some("2021-06-01")).unwrap(), "2021-06-01");
        for v in ["2019-01-01-preview", "2020-01-01", "2025-05-04"] {
            assert_eq!(Family::ASSESSMENTS.check(Some(v)).unwrap(), v);
            assert_eq!(Family::METADATA.check(Some(v)).unwrap(), v);
        }
        let e = Family::METADATA.check(Some("2019-01-01")).unwrap_err();
        assert_eq!(e.to_string(), "The resource type 'assessmentMetadata' could not be found in the namespace 'Microsoft.Security' for api version '2019-01-01'. The supported api-versions are '2025-05-04,2021-06-01,2020-01-01,2019-01-01-preview'.");
        assert!(matches!(Family::SECURE_SCORES.check(None), Err(ApiError::MissingApiVersion)));
        let e = Family::SECURE_SCORES.check(Some("2021-06-01")).unwrap_err();
        assert_eq!(e.code(), "InvalidResourceType");
        assert_eq!(e.to_string(), "The resource type 'secureScores' could not be found in the namespace 'Microsoft.Security' for api version '2021-06-01'. The supported api-versions are '2020-01-01,2020-01-01-preview'.");
        let e = Family::ARM.check(Some("1999-01-01")).unwrap_err();
        assert_eq!(e.code(), "InvalidApiVersionParameter");
    }

    #[test]
    fn every_assessment_version_has_its_model() {
        use AssessmentModel::*;
        let models: Vec<_> = ASSESSMENT_VERSIONS.iter().map(|v| AssessmentModel::of(v)).collect();
        assert_eq!(models, [V2025, V2021, V2020, V2019Preview]);
        assert!(!V2019Preview.embedded_metadata() && V2020.embedded_metadata());
        assert!(!V2019Preview.status_dates() && V2021.status_dates() && V2025.status_dates());
        assert!(!V2021.risk() && V2025.risk());
        assert!(
            !V2021.severities().contains(&"Critical") && V2025.severities().contains(&"Critical")
        );
    }

    /// Every family of api-versions the server knows.
    const FAMILIES: [Family; 10] = [
        Family::AUTOMATIONS,
        Family::SECURE_SCORES,
        Family::SECURE_SCORE_CONTROLS,
        Family::CONTROLS,
        Family::DEFINITIONS,
        Family::ASSESSMENTS,
        Family::METADATA,
        Family::OPERATIONS,
        Family::SUB_ASSESSMENTS,
        Family::ARM,
    ];

    /// docs/ARM.md's table of api-versions says what `check` does.
    #[test]
    fn docs_arm_md_lists_every_supported_version() {
        let doc = include_str!("../../docs/ARM.md");
        for family in FAMILIES {
            let key = match family.resource_type {
                Some(t) => format!("`{}", t.rsplit('/').next().unwrap_or(t)),
                None => "`/tenants`".to_string(),
            };
            let row = doc.lines().find(|l| l.starts_with("| ") && l.contains(&key));
            let row = row.unwrap_or_else(|| panic!("docs/ARM.md has no api-version row for {key}"));
            for v in family.supported {
                assert!(row.contains(&format!("`{v}`")), "{key}: {v} missing from '{row}'");
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn family() -> impl Strategy<Value = Family> {
            prop::sample::select(FAMILIES.to_vec())
        }

        /// The error a family answers for a version it does not support.
        fn unsupported_code(family: Family) -> &'static str {
            if family.resource_type.is_some() {
                "InvalidResourceType"
            } else {
                "InvalidApiVersionParameter"
            }
        }

        /// Flip the ASCII case of some characters.
        fn recase(text: &str, flips: &[bool]) -> String {
            text.chars()
                .zip(flips.iter().chain(std::iter::repeat(&false)))
                .map(|(c, &f)| if f && c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_version_is_supported_or_a_400(family in family(), requested in ".{0,24}") {
                let supported = family.supported.iter().any(|v| v.eq_ignore_ascii_case(&requested));
                match family.check(Some(&requested)) {
                    Ok(v) => {
                        prop_assert!(supported, "{requested:?} accepted");
                        prop_assert!(v.eq_ignore_ascii_case(&requested));
                    }
                    Err(e) => {
                        prop_assert!(!supported, "{requested:?} refused: {e}");
                        prop_assert_eq!(e.status().as_u16(), 400);
                        let want = if requested.is_empty() {
                            "MissingApiVersionParameter"
                        } else {
                            unsupported_code(family)
                        };
                        prop_assert_eq!(e.code(), want);
                    }
                }
            }

            #[test]
            fn date_shaped_versions_outside_the_set_are_refused(
                family in family(),
                requested in "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9](-preview|-beta)?",
            ) {
                prop_assume!(!family.supported.iter().any(|v| v.eq_ignore_ascii_case(&requested)));
                let e = family.check(Some(&requested)).expect_err("not a supported version");
                prop_assert_eq!(e.code(), unsupported_code(family));
                // The message names what was asked and what would have worked.
                let message = e.to_string();
                prop_assert!(message.contains(&requested), "{message}");
                prop_assert!(family.supported.iter().all(|v| message.contains(v)), "{message}");
            }

            #[test]
            fn supported_versions_in_any_case_give_the_canonical_spelling(
                family in family(),
                pick in any::<prop::sample::Index>(),
                flips in proptest::collection::vec(any::<bool>(), 24),
            ) {
                let canonical = *pick.get(family.supported);
                let requested = recase(canonical, &flips);
                prop_assert_eq!(family.check(Some(&requested)).ok(), Some(canonical));
                // A version with anything around it is another version.
                for padded in [format!(" {requested}"), format!("{requested} "), format!("{requested}x")] {
                    prop_assert!(family.check(Some(&padded)).is_err(), "{padded:?}");
                }
            }
        }
    }
}
