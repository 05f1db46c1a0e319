//! Typed ARM ids. A `{resourceId}` or `{scope}` path parameter is parsed once, at the edge, into a
//! [`ResourceId`]; handlers and the store never slice id strings.
//!
//! Matching is case-insensitive: [`ResourceId::key`] is the lowercase form used for lookups, while
//! [`ResourceId::as_str`] keeps the casing the client wrote.

use super::error::ApiError;
use uuid::Uuid;

/// What a resource id points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Subscription,
    ResourceGroup,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    /// Canonical text: leading slash, no trailing slash, the client's casing.
    text: String,
    key: String,
    subscription: Uuid,
    kind: ScopeKind,
}

/// Parse a subscription id path segment (a GUID), with ARM's error for anything else.
pub fn parse_subscription_id(segment: &str) -> Result<Uuid, ApiError> {
    // ARM accepts only the hyphenated 36-character form.
    if segment.len() == 36 {
        if let Ok(id) = Uuid::try_parse(segment) {
            return Ok(id);
        }
    }
    Err(ApiError::InvalidSubscriptionId(segment.to_string()))
}

impl ResourceId {
    /// Parse path segments such as `subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}/...`.
    pub fn from_segments(segments: &[&str]) -> Result<Self, ApiError> {
        let text = format!("/{}", segments.join("/"));
        let invalid = || {
            ApiError::BadRequest {
            target: Some("resourceId".into()),
            message: format!(
                "The resource id '{text}' is invalid: expected 'subscriptions/{{subscriptionId}}[/resourceGroups/{{name}}][/providers/{{namespace}}/{{type}}/{{name}}[/{{type}}/{{name}}]...]'."
            ),
        }
        };
        let [first, sub, rest @ ..] = segments else { return Err(invalid()) };
        if !first.eq_ignore_ascii_case("subscriptions") {
            return Err(invalid());
        }
        let subscription = parse_subscription_id(sub)?;
        let (kind, after_group) = match rest {
            [] => (ScopeKind::Subscription, rest),
            [rg, name, tail @ ..]
                if rg.eq_ignore_ascii_case("resourceGroups") && valid_name(name) =>
            {
                if tail.is_empty() {
                    (ScopeKind::ResourceGroup, tail)
                } else {
                    (ScopeKind::Resource, tail)
                }
            }
            _ => (ScopeKind::Resource, rest),
        };
        if kind == ScopeKind::Resource {
            // providers/{namespace}/{type}/{name} followed by {type}/{name} pairs, where a pair may
            // itself be `providers/{namespace}` (extension resources).
            let [p, ns, tail @ ..] = after_group else { return Err(invalid()) };
            if !p.eq_ignore_ascii_case("providers") || !valid_name(ns) || tail.is_empty() {
                return Err(invalid());
            }
            if tail.len() % 2 != 0 || !tail.iter().all(|s| valid_name(s)) {
                return Err(invalid());
            }
        }
        let key = text.to_ascii_lowercase();
        Ok(ResourceId { text, key, subscription, kind })
    }

    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let segments: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
        Self::from_segments(&segments)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn subscription(&self) -> Uuid {
        self.subscription
    }
    pub fn kind(&self) -> ScopeKind {
        self.kind
    }
}

/// A name segment: not empty, no characters ARM forbids in resource names.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, '<' | '>' | '%' | '&' | ':' | '\\' | '?' | '#') || c.is_control())
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";

    #[test]
    fn parses_every_scope() {
        let id = ResourceId::parse(&format!("subscriptions/{S}")).unwrap();
        assert_eq!(id.kind(), ScopeKind::Subscription);
        assert_eq!(id.as_str(), format!("/subscriptions/{S}"));
        let id = ResourceId::parse(&format!("/subscriptions/{S}/resourceGroups/myRg/")).unwrap();
        assert_eq!(id.kind(), ScopeKind::ResourceGroup);
        let id = ResourceId::parse(&format!(
            "subscriptions/{S}/resourceGroups/myRg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss2"
        ))
        .unwrap();
        assert_eq!(id.kind(), ScopeKind::Resource);
        assert_eq!(id.key(), id.as_str().to_ascii_lowercase());
        let nested = ResourceId::parse(&format!(
            "subscriptions/{S}/resourceGroups/rg/providers/Microsoft.Sql/servers/s1/databases/db1"
        ))
        .unwrap();
        assert_eq!(nested.kind(), ScopeKind::Resource);
        let sub_level =
            ResourceId::parse(&format!("subscriptions/{S}/providers/Microsoft.Web/sites/x"))
                .unwrap();
        assert_eq!(sub_level.kind(), ScopeKind::Resource);
    }

    #[test]
    fn rejects_malformed_ids() {
        assert!(matches!(
            ResourceId::parse("subscriptions/nope"),
            Err(ApiError::InvalidSubscriptionId(_))
        ));
        assert!(ResourceId::parse("tenants/x").is_err());
        assert!(ResourceId::parse(&format!("subscriptions/{S}/resourceGroups")).is_err());
        assert!(ResourceId::parse(&format!(
            "subscriptions/{S}/resourceGroups/rg/providers/Microsoft.Compute/vms"
        ))
        .is_err());
        assert!(ResourceId::parse(&format!("subscriptions/{S}/foo/bar")).is_err());
    }
}
