//! The shapes of the extension API's answers that its handlers build as JSON values, described
//! for the OpenAPI document (`api::openapi`). They live below the API and identity, whose handlers
//! name them in their annotations; the integration tests compare real answers with them, so a
//! field added to a handler and not here fails a test.

use utoipa::ToSchema;
use uuid::Uuid;

/// The reusable responses; a module of their own so that they can share their schemas' names.
pub mod responses {
    /// Every failure: the status says which kind, the body which error.
    #[derive(utoipa::ToResponse)]
    #[response(description = "An ARM CloudError", content_type = "application/json")]
    pub struct CloudError(pub super::CloudError);
}

/// An ARM CloudError.
#[derive(ToSchema)]
pub struct CloudError {
    pub error: CloudErrorBody,
}

#[derive(ToSchema)]
pub struct CloudErrorBody {
    /// The ARM error code, e.g. `SubscriptionNotFound`.
    pub code: String,
    pub message: String,
    /// The field or parameter at fault, when there is one.
    pub target: Option<String>,
}

/// A secure score.
#[derive(ToSchema)]
pub struct Score {
    /// The most points the subscription can reach.
    pub max: i64,
    /// The points reached.
    pub current: f64,
    /// `current / max`, from 0 to 1.
    pub percentage: f64,
}

/// `{"value": [...]}` of subscriptions.
#[derive(ToSchema)]
pub struct SubscriptionList {
    pub value: Vec<crate::wire::SubscriptionBody>,
}

/// The secure score's history of one subscription.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct History {
    pub subscription_id: Uuid,
    /// Always `ascScore`.
    pub initiative: String,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    pub value: Vec<HistoryPoint>,
}

/// The score at one point of a history: `at` in the every-change series, `date` in the daily
/// one.
#[derive(ToSchema)]
pub struct HistoryPoint {
    /// When the score changed (every-change series).
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// The UTC day whose end the score was in force at (daily series).
    #[schema(format = Date)]
    pub date: Option<String>,
    pub score: Score,
    /// The score's weight at that time, which aggregates over subscriptions use.
    pub weight: i64,
    /// Why the score moved when no assessment write moved it: `catalogChange`, `repair` or
    /// `exemption`; absent otherwise.
    pub reason: Option<String>,
}

/// One score over several subscriptions.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Aggregate {
    /// Always `ascScore`.
    pub initiative: String,
    /// `round4(sum(percentage_i * weight_i) / sum(weight_i))`; 0 when the weights sum to 0.
    pub percentage: f64,
    /// The sum of the subscriptions' weights.
    pub weight: i64,
    /// The formula of `percentage`, in words.
    pub formula: String,
    pub resource_graph: ResourceGraphScore,
    pub subscriptions: Vec<AggregateMember>,
}

/// The same subscriptions scored the way Microsoft's Resource Graph sample does it.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ResourceGraphScore {
    pub weighted_current: f64,
    pub formula: String,
}

/// One subscription in an aggregate.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AggregateMember {
    pub subscription_id: Uuid,
    pub display_name: String,
    pub score: Score,
    pub weight: i64,
}

/// How a principal signs in.
#[derive(ToSchema)]
pub enum PrincipalKind {
    /// An application, with client credentials.
    ServicePrincipal,
    /// A person, with a user name and password.
    User,
}

/// A principal of the built-in authority (never its secret).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Principal {
    /// The object id.
    pub id: Uuid,
    pub kind: PrincipalKind,
    pub display_name: String,
    /// Service principals: the client id.
    pub app_id: Option<Uuid>,
    /// Users: the sign-in name.
    pub user_name: Option<String>,
    pub tenant_id: Uuid,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A principal with the secret (service principal) or password (user) it was just given.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PrincipalWithSecret {
    #[schema(inline)]
    #[serde(flatten)]
    pub principal: Principal,
    /// Shown this once; stored only as a salted hash.
    pub secret: String,
}

#[derive(ToSchema)]
pub struct PrincipalList {
    pub value: Vec<Principal>,
}

/// A role granted to a principal at a scope, and inherited below it.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub id: Uuid,
    /// The object id of the principal (local or of a trusted authority).
    pub principal_id: String,
    /// The Azure built-in role definition GUID.
    pub role_definition_id: Uuid,
    pub role_name: String,
    /// `/` or `/subscriptions/{id}`.
    pub scope: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct RoleAssignmentList {
    pub value: Vec<RoleAssignment>,
}

/// A token signing key published in the JWKS.
#[derive(ToSchema)]
pub struct SigningKey {
    pub kid: String,
    /// Whether new tokens are signed with it.
    pub current: bool,
    #[schema(format = DateTime)]
    pub created: String,
    /// When it stopped signing; it stays published until its tokens expire.
    #[schema(format = DateTime)]
    pub retired: Option<String>,
}

#[derive(ToSchema)]
pub struct SigningKeyList {
    pub value: Vec<SigningKey>,
}

// --- What to fix first, what changed, exemptions (issue 11) ---

/// What fixing a control is worth.
#[derive(ToSchema)]
pub struct PotentialScoreIncrease {
    /// `max − current` of the control, rounded to 2 decimals.
    pub points: f64,
    /// `points` / the scope's maximum score × 100, rounded to 2 decimals.
    pub percentage: f64,
}

/// An unhealthy resource.
#[derive(ToSchema)]
pub struct ResourceRef {
    pub id: String,
}

/// A page of resource ids.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ResourceRefList {
    pub value: Vec<ResourceRef>,
    /// The next page, when there is one.
    pub next_link: Option<String>,
}

/// A recommendation to fix within a control, with its unhealthy resources.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Recommendation {
    /// The assessment metadata name (lower case).
    pub name: String,
    pub display_name: String,
    /// `High`, `Medium` or `Low`.
    pub severity: String,
    /// How to fix it, from the assessment metadata.
    pub remediation_description: Option<String>,
    /// How many resources are unhealthy for it in the scope (exempt ones are not).
    pub unhealthy_resource_count: i64,
    /// The first unhealthy resources, by id; `nextLink` pages through the rest.
    pub unhealthy_resources: ResourceRefList,
}

/// A control that can still gain points.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Improvement {
    /// The control name.
    pub control: String,
    pub display_name: String,
    pub potential_score_increase: PotentialScoreIncrease,
    pub current_score: f64,
    pub max_score: i64,
    pub healthy_resource_count: i64,
    pub unhealthy_resource_count: i64,
    pub not_applicable_resource_count: i64,
    pub recommendations: Vec<Recommendation>,
}

/// What to fix first in a scope, best first.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Improvements {
    /// The scope: the subscription or a resource group.
    pub scope: String,
    /// The scope's secure score.
    pub score: Score,
    pub value: Vec<Improvement>,
    pub next_link: Option<String>,
}

/// One assessment status transition.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Change {
    #[schema(format = DateTime)]
    pub at: String,
    pub resource_id: String,
    /// The assessment metadata name (lower case).
    pub assessment: String,
    pub display_name: String,
    /// `Healthy`, `Unhealthy` or `NotApplicable`; null for a first write.
    pub old_status: Option<String>,
    /// `Healthy`, `Unhealthy` or `NotApplicable`; null for a delete.
    pub new_status: Option<String>,
    /// `exemption` when an exemption began or ended; absent for an assessment write.
    pub cause: Option<String>,
    /// The subscription's secure score just before the transition.
    pub score_before: Score,
    /// ... and just after it.
    pub score_after: Score,
}

/// The transitions of a time window.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Changes {
    pub subscription_id: Uuid,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    /// `at desc` or `at asc`.
    pub orderby: String,
    pub value: Vec<Change>,
    pub next_link: Option<String>,
}

/// What an exemption says.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExemptionBodyProperties {
    /// A subscription, resource group or resource id, or a management group
    /// (`/providers/Microsoft.Management/managementGroups/{group}`).
    pub scope: String,
    /// The assessment metadata name to exempt.
    pub assessment: String,
    /// `Waiver` (risk accepted) or `Mitigated` (handled otherwise).
    pub category: String,
    /// When it ends by itself; in the future.
    #[schema(format = DateTime)]
    pub expires_on: Option<String>,
    /// Why.
    pub description: String,
}

/// The body of an exemption PUT.
#[derive(ToSchema)]
pub struct ExemptionBody {
    pub properties: ExemptionBodyProperties,
}

/// An exemption as stored.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExemptionProperties {
    pub scope: String,
    pub assessment: String,
    /// The recommendation's display name, when the metadata is built in.
    pub assessment_display_name: Option<String>,
    pub category: String,
    #[schema(format = DateTime)]
    pub expires_on: Option<String>,
    pub description: String,
    /// `Active` while it takes effect, `Expired` once its time is up.
    pub state: String,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(format = DateTime)]
    pub last_modified_on: String,
}

/// An exemption, shaped like an ARM resource.
#[derive(ToSchema)]
pub struct Exemption {
    /// `{scope}/providers/Microsoft.Security/exemptions/{name}`.
    pub id: String,
    pub name: String,
    /// `Microsoft.Security/exemptions`.
    #[schema(rename = "type")]
    pub kind: String,
    pub properties: ExemptionProperties,
}

#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ExemptionList {
    pub value: Vec<Exemption>,
    pub next_link: Option<String>,
}
