//! The extension API's OpenAPI document, generated from the code: the `#[utoipa::path]`
//! annotations on the handlers of [`super::ext`] (and the issue-11 modules it merges:
//! improvements, changes, exemptions) and [`crate::identity::admin`], the `ToSchema`
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
use utoipa::{Modify, OpenApi};

use super::AppState;
use crate::arm::error::JSON_CONTENT_TYPE;
use crate::wire::schema::*;

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
            subscriptions, what to fix first, what changed, exemptions, and the administration of \
            the built-in authority's principals, role assignments and signing keys. Every error is an ARM CloudError. Paths live under \
            /securescore/v1. Administration (subscriptions, principals, role assignments, keys, \
            import) needs Owner at '/'; history, aggregate, improvements and changes need read \
            access to the subscriptions involved; exemptions need \
            Microsoft.Security/exemptions/write (Security Admin, Contributor, Owner) over their \
            scope to write and read access to read.",
    ),
    paths(
        super::ext::list_subscriptions,
        super::ext::get_subscription,
        super::ext::put_subscription,
        super::ext::delete_subscription,
        super::ext::history,
        super::ext::aggregate,
        super::ext::import,
        super::improvements::improvements,
        super::improvements::resources,
        super::changes::changes,
        super::exemptions::list,
        super::exemptions::get_one,
        super::exemptions::put,
        super::exemptions::delete,
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
        (name = "Improvements", description = "What to fix first: controls ranked by potential score increase"),
        (name = "Changes", description = "What changed: assessment status transitions with the score before and after"),
        (name = "Exemptions", description = "Assessments exempted from the score (Waiver, Mitigated)"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The extension API's OpenAPI document (generated from the annotations here and in
    /// `identity::admin`) describes every route the routers serve.
    #[test]
    fn openapi_document_lists_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(&document_json()).expect("the document parses");
        let paths = doc["paths"].as_object().expect("paths");
        let source = [
            include_str!("ext.rs"),
            include_str!("../identity/admin.rs"),
            include_str!("improvements.rs"),
            include_str!("changes.rs"),
            include_str!("exemptions.rs"),
        ]
        .concat();
        for line in source.lines().filter(|l| {
            l.trim_start().starts_with(".route(\"")
                || l.trim_start().starts_with("\"/securescore/v1")
        }) {
            let path = line.split('"').nth(1).expect("a quoted path");
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        assert_eq!(paths.len(), 17);
    }

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
