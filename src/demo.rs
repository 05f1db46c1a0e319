//! `serve --demo`: a demo subscription whose assessments reproduce the worked example of
//! docs/SCORING.md, so that `GET .../secureScores/ascScore` answers the documented sample
//! (current 23.53, max 39, percentage 0.6033, weight 67) — computed, through the normal write path.

use anyhow::{bail, Result};
use serde_json::json;
use uuid::Uuid;

use crate::arm::ResourceId;
use crate::catalog;
use crate::score::Status;
use crate::store::{AssessmentInput, Store, Subscription, Write};

pub const DEMO_SUBSCRIPTION: Uuid = uuid::uuid!("20ff7fc3-e762-44dd-bd96-b71116dcdc23");
pub const DEMO_SUBSCRIPTION_NAME: &str = "securescore demo";

/// (control, healthy, unhealthy, not applicable) resources: the official example data.
pub const EXAMPLE: &[(&str, usize, usize, usize)] = &[
    ("a9909064-42b4-4d34-8143-275477afe18b", 0, 0, 1),
    ("34a42fb3-e6db-409c-b56b-7b1db6b8aee0", 1, 0, 0),
    ("76763537-9feb-42d3-b4f4-78c01117be80", 7, 0, 1),
    ("4db8d6cf-075b-4149-a813-da09ca2ae120", 0, 1, 0),
    ("27b24961-75ba-4fe4-8909-97286d5dd5ee", 1, 4, 0),
    ("2d85f639-0bea-4a4a-b6c6-608952a1414a", 1, 1, 0),
    ("99fc8df2-e0f5-40f8-9415-a7f7ca948b5a", 0, 1, 0),
    ("12136bd9-dc24-44f2-9587-7be3af6aac14", 0, 1, 0),
    ("61702b76-1fab-41f2-bcbc-50b7870dcf38", 0, 1, 0),
    ("0e55495e-034f-4abc-8293-767229250176", 5, 1, 0),
    ("f9d5432b-8f7b-45e9-b90c-e214a30f6a02", 1, 0, 0),
    ("8fd574ec-43cf-426e-a439-a67cbaf2d564", 1, 0, 0),
];

/// Assessment writes whose per-control counts are exactly `counts` on fresh resources of `sub`.
/// Each uses a scored recommendation that belongs to that control only, so counts don't leak.
pub fn writes_for_counts(sub: Uuid, counts: &[(&str, usize, usize, usize)]) -> Result<Vec<Write>> {
    let cat = catalog::builtin();
    let mut writes = Vec::new();
    for (n, &(control, h, u, na)) in counts.iter().enumerate() {
        let Some(assessment) = cat
            .assessments()
            .iter()
            .filter(|a| {
                a.counts_toward_score() && a.controls.len() == 1 && a.controls[0] == control
            })
            .max_by_key(|a| a.display_name.is_some())
        else {
            bail!("the catalogue has no recommendation that belongs to control {control} alone");
        };
        let statuses = std::iter::repeat_n(Status::Healthy, h)
            .chain(std::iter::repeat_n(Status::Unhealthy, u))
            .chain(std::iter::repeat_n(Status::NotApplicable, na));
        for (i, status) in statuses.enumerate() {
            let resource = ResourceId::parse(&format!(
                "/subscriptions/{sub}/resourceGroups/demo-rg-{n:02}/providers/Microsoft.Compute/virtualMachines/vm-{i:02}"
            ))?;
            writes.push(Write::Put(AssessmentInput {
                resource,
                name: assessment.name.clone(),
                status,
                cause: (status == Status::NotApplicable).then(|| "OffByPolicy".to_string()),
                description: None,
                resource_details: json!({"source": "Azure"}),
                additional_data: None,
                partner_name: None,
            }));
        }
    }
    Ok(writes)
}

/// Seed the demo subscription unless it exists (the demo keeps a user's changes across restarts).
pub async fn seed(store: &Store, tenant: Uuid) -> Result<bool> {
    if store.subscription(DEMO_SUBSCRIPTION).await?.is_some() {
        return Ok(false);
    }
    store
        .put_subscription(&Subscription {
            id: DEMO_SUBSCRIPTION,
            display_name: DEMO_SUBSCRIPTION_NAME.into(),
            tenant_id: tenant,
            state: "Enabled".into(),
        })
        .await?;
    store.apply(&writes_for_counts(DEMO_SUBSCRIPTION, EXAMPLE)?).await?;
    Ok(true)
}
