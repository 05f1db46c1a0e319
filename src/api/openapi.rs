//! The extension API's OpenAPI document, generated from the code: the `#[utoipa::path]`
//! annotations on the handlers of [`super::ext`] and [`crate::identity::admin`], the `ToSchema`
//! derives on their request types, and here the shapes of the answers those handlers build as
//! JSON values. Served at `GET /securescore/v1/openapi.json` without authentication (it is
//! documentation); `docs/extension-openapi.json` is this document, checked by a test
//! (`UPDATE_OPENAPI=1 cargo test --lib openapi` rewrites it).
//!
//! The types below exist only to describe answers; the integration tests compare real answers
//! with them, so a field added to a handler and not here fails a test.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::AppState;
use crate::arm::error::JSON_CONTENT_TYPE;

/// Where the document is served.
pub const PATH: &str = "/securescore/v1/openapi.json";

/// The extension API, described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "securescore extension API",
        version = "v1",
        description = "What Azure lacks, apart from the Azure surface: subscription \
            administration, bulk NDJSON import, score history and aggregation over \
            subscriptions, and the administration of the built-in authority's principals, role \
            assignments and signing keys. Every error is an ARM CloudError. Paths live under \
            /securescore/v1. Administration (subscriptions, principals, role assignments, keys, \
            import) needs Owner at '/'; history and aggregate need read access to the \
            subscriptions involved.",
    ),
    paths(
        super::ext::list_subscriptions,
        super::ext::get_subscription,
        super::ext::put_subscription,
        super::ext::delete_subscription,
        super::ext::history,
        super::ext::aggregate,
        super::ext::import,
        crate::identity::admin::list_principals,
        crate::identity::admin::post_principal,
        crate::identity::admin::get_principal,
        crate::identity::admin::delete_principal,
        crate::identity::admin::post_reset_secret,
        crate::identity::admin::list_assignments,
        crate::identity::admin::post_assignment,
        crate::identity::admin::delete_assignment,
        crate::identity::admin::list_keys,
        crate::identity::admin::rotate_keys,
    ),
    components(schemas(CloudError), responses(responses::CloudError)),
    tags(
        (name = "Subscriptions", description = "The subscriptions the service knows"),
        (name = "Scores", description = "Secure scores over time and over several subscriptions"),
        (name = "Import", description = "Bulk ingest of assessments"),
        (name = "Principals", description = "The built-in authority's users and applications"),
        (name = "Role assignments", description = "Who may do what, where (Azure RBAC roles)"),
        (name = "Signing keys", description = "The keys the built-in authority signs tokens with"),
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
pub struct ExtensionApi;

/// The document as pretty JSON with a final newline, as `docs/extension-openapi.json` holds it.
pub fn document_json() -> String {
    let mut text = ExtensionApi::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize the document: {e}\"}}"));
    text.push('\n');
    text
}

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(serve))
}

async fn serve() -> Response {
    // Built once: the document only changes with the code.
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(document_json);
    let mut response = (StatusCode::OK, DOCUMENT.as_str()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}

/// Every operation takes a bearer token (a JWT from the built-in authority or a trusted one).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../../docs/extension-openapi.json");

    /// `docs/extension-openapi.json` is the generated document.
    #[test]
    fn committed_openapi_document_is_the_generated_one() {
        let generated = document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/extension-openapi.json");
            std::fs::write(path, &generated).expect("write docs/extension-openapi.json");
            return;
        }
        assert!(
            generated == COMMITTED,
            "docs/extension-openapi.json differs from the document generated from the code; \
             regenerate it with `UPDATE_OPENAPI=1 cargo test --lib openapi` and commit it"
        );
    }

    /// Every `$ref` in the document names a component it defines.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &serde_json::Value, doc: &serde_json::Value, seen: &mut usize) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                        let pointer = target.strip_prefix('#').expect("a local reference");
                        assert!(doc.pointer(pointer).is_some(), "{target} is not defined");
                        *seen += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, seen));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen)),
                _ => {}
            }
        }
        let doc: serde_json::Value = serde_json::from_str(&document_json()).expect("parses");
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 20, "only {seen} references");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }
}
