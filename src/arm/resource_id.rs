//! Typed ARM ids. A `{resourceId}` or `{scope}` path parameter is parsed once, at the edge, into a
//! [`ResourceId`]; handlers and the store never slice id strings.
//!
//! Matching is case-insensitive: [`ResourceId::key`] is the lowercase form used for lookups, while
//! [`ResourceId::as_str`] is ARM's canonical spelling: the keywords `subscriptions`,
//! `resourceGroups` and `providers` as ARM writes them and the subscription GUID in lower case
//! (whatever casing the client used), every name as the client wrote it. Ids are canonicalised
//! here, when parsed, so the store keeps and every answer shows the canonical form.
//!
//! Identity is exact: a path segment is percent-decoded once, by [`decode_segment`], and whatever
//! could make two different requests name the same resource, or one resource answer under two
//! ids (a `/` inside a name, bytes that are not UTF-8, `.`/`..`, control characters), is refused
//! there rather than repaired.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::error::ApiError;
use uuid::Uuid;

/// Longest name segment, in bytes once decoded (decision: ARM's longest resource names are 260).
pub const MAX_NAME_BYTES: usize = 260;
/// Longest resource id, in bytes (decision: leaves room for the provider suffix within the URI limit).
pub const MAX_ID_BYTES: usize = 2048;

/// Decode one raw path segment (between two `/`), or say which naming rule it breaks.
pub fn decode_segment(raw: &str) -> Result<Cow<'_, str>, ApiError> {
    let invalid = |reason| ApiError::InvalidResourceName { name: shown(raw), reason };
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid("once percent-decoded it is not valid UTF-8."))?;
    if decoded.contains('/') {
        return Err(invalid("it contains a '/' (encoded as %2F), which separates path segments."));
    }
    if decoded.chars().any(char::is_control) {
        return Err(invalid("it contains control characters."));
    }
    if decoded == "." || decoded == ".." {
        return Err(invalid("'.' and '..' are not resource names."));
    }
    if decoded.len() > MAX_NAME_BYTES {
        return Err(invalid("it is longer than 260 bytes."));
    }
    Ok(decoded)
}

/// A raw segment as an error message shows it: as the client sent it, shortened.
fn shown(raw: &str) -> String {
    match raw.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &raw[..at]),
        None => raw.to_string(),
    }
}

/// What a resource id points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Subscription,
    ResourceGroup,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    /// Canonical text: leading slash, no trailing slash, ARM's keywords and a lower-case GUID,
    /// names in the client's casing.
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
        if text.len() > MAX_ID_BYTES {
            return Err(ApiError::BadRequest {
                target: Some("resourceId".into()),
                message: format!(
                    "The resource id is {} bytes long; the limit is {MAX_ID_BYTES} bytes.",
                    text.len()
                ),
            });
        }
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
        let text = canonical(subscription, &rest[..rest.len() - after_group.len()], after_group);
        let key = text.to_ascii_lowercase();
        Ok(ResourceId { text, key, subscription, kind })
    }

    /// The id of a subscription itself (`/subscriptions/{id}`).
    pub fn subscription_scope(subscription: Uuid) -> Self {
        let text = format!("/subscriptions/{subscription}");
        ResourceId { key: text.clone(), text, subscription, kind: ScopeKind::Subscription }
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

/// The canonical text of a validated id: `group` is `[resourceGroups, name]` or empty, `resource`
/// is `[providers, namespace, (type, name)...]` or empty. Only the keywords and the GUID change
/// spelling; changing only ASCII case keeps the lookup key the same.
fn canonical(subscription: Uuid, group: &[&str], resource: &[&str]) -> String {
    let mut text = format!("/subscriptions/{}", subscription.as_hyphenated());
    if let [_, name] = group {
        text.push_str("/resourceGroups/");
        text.push_str(name);
    }
    if let [_, namespace, pairs @ ..] = resource {
        text.push_str("/providers/");
        text.push_str(namespace);
        for pair in pairs.chunks(2) {
            // An extension resource's `providers` is a keyword too; other types keep their casing.
            let kind = match pair[0] {
                t if t.eq_ignore_ascii_case("providers") => "providers",
                t => t,
            };
            text.push('/');
            text.push_str(kind);
            for name in &pair[1..] {
                text.push('/');
                text.push_str(name);
            }
        }
    }
    text
}

/// A name segment: not empty, not `.`/`..`, not over-long, no characters ARM forbids in resource
/// names. (Paths were checked segment by segment already; ids from other sources, such as import
/// lines, are checked here.)
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= MAX_NAME_BYTES
        && !s
            .chars()
            .any(|c| matches!(c, '<' | '>' | '%' | '&' | ':' | '\\' | '?' | '#') || c.is_control())
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A scope as the extension API names one (an improvement's `?scope=`, an exemption's
/// `properties.scope`): an ARM resource id (subscription, resource group or resource), or a
/// management group, whose name is kept as written (the tenant id names the root group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyScope {
    Arm(ResourceId),
    ManagementGroup(String),
}

impl AnyScope {
    /// `/providers/Microsoft.Management/managementGroups/{group}` (keywords in any case), else a
    /// resource id; the resource id's error for anything else.
    pub fn parse(text: &str) -> Result<AnyScope, ApiError> {
        let segments: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
        if let [p, ns, groups, group] = segments.as_slice() {
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Management")
                && groups.eq_ignore_ascii_case("managementGroups")
            {
                return Ok(AnyScope::ManagementGroup((*group).to_owned()));
            }
        }
        ResourceId::from_segments(&segments).map(AnyScope::Arm)
    }

    /// The canonical id.
    pub fn id(&self) -> String {
        match self {
            AnyScope::Arm(id) => id.as_str().to_owned(),
            AnyScope::ManagementGroup(g) => {
                format!("/providers/Microsoft.Management/managementGroups/{g}")
            }
        }
    }

    /// The lowercase id, for lookups.
    pub fn key(&self) -> String {
        match self {
            AnyScope::Arm(id) => id.key().to_owned(),
            AnyScope::ManagementGroup(_) => self.id().to_ascii_lowercase(),
        }
    }

    /// The subscription of a resource id; `None` for a management group.
    pub fn subscription(&self) -> Option<Uuid> {
        match self {
            AnyScope::Arm(id) => Some(id.subscription()),
            AnyScope::ManagementGroup(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";

    #[test]
    fn any_scope_is_a_group_or_a_resource_id() {
        let g = AnyScope::parse("/PROVIDERS/microsoft.management/ManagementGroups/Prod").unwrap();
        assert_eq!(g, AnyScope::ManagementGroup("Prod".into()));
        assert_eq!(g.id(), "/providers/Microsoft.Management/managementGroups/Prod");
        assert_eq!(g.key(), "/providers/microsoft.management/managementgroups/prod");
        assert_eq!(g.subscription(), None);
        let sub = "/subscriptions/20FF7FC3-E762-44DD-BD96-B71116DCDC23/resourceGroups/RG";
        let r = AnyScope::parse(sub).unwrap();
        assert_eq!(r.id(), "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/RG");
        assert!(r.subscription().is_some());
        assert!(AnyScope::parse("/providers/Microsoft.Management/managementGroups").is_err());
    }

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
    fn keywords_and_the_guid_are_canonical_names_keep_their_casing() {
        let upper = S.to_ascii_uppercase();
        let id = ResourceId::parse(&format!(
            "/SUBSCRIPTIONS/{upper}/RESOURCEGROUPS/MyRg/PROVIDERS/microsoft.compute/VirtualMachines/Vm1/PROVIDERS/Microsoft.Sql/servers/S1"
        ))
        .unwrap();
        assert_eq!(
            id.as_str(),
            format!("/subscriptions/{S}/resourceGroups/MyRg/providers/microsoft.compute/VirtualMachines/Vm1/providers/Microsoft.Sql/servers/S1")
        );
        let sub = ResourceId::parse(&format!("SubScriptions/{upper}")).unwrap();
        assert_eq!(sub.as_str(), format!("/subscriptions/{S}"));
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
        assert!(ResourceId::parse(&format!("subscriptions/{S}/resourceGroups/..")).is_err());
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(ResourceId::parse(&format!("subscriptions/{S}/resourceGroups/{long}")).is_err());
        let deep = "/providers/Microsoft.Compute/virtualMachines/vm".repeat(60);
        let e =
            ResourceId::parse(&format!("subscriptions/{S}/resourceGroups/rg{deep}")).unwrap_err();
        assert_eq!(e.code(), "BadRequest");
    }

    #[test]
    fn segments_decode_once_and_exactly() {
        assert_eq!(decode_segment("my%20vm").unwrap(), "my vm");
        assert_eq!(decode_segment("%252F").unwrap(), "%2F", "decoded once, not twice");
        for bad in ["a%2Fb", "a%2fb", "alias%FFb", "%2E", "..", ".", "a%00b", "tab%09"] {
            let e = decode_segment(bad).unwrap_err();
            assert_eq!((e.code(), e.status().as_u16()), ("InvalidResourceName", 400), "{bad}");
            assert!(e.to_string().contains(bad), "the message names the segment: {e}");
        }
        assert!(decode_segment(&"n".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(decode_segment(&"n".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A name ARM allows: no `/` (it would be two segments), none of the forbidden
        /// characters, not a dot segment; anything else, Unicode included.
        fn name() -> impl Strategy<Value = String> {
            "[^/<>%&:\\\\?#\\p{Cc}]{1,12}"
                .prop_filter("'.' and '..' are not names", |n| n != "." && n != "..")
        }

        /// `/subscriptions/{guid}[/resourceGroups/{rg}][/providers/{ns}/{type}/{name}[/{type}/{name}]…]`,
        /// keywords in any ASCII case.
        fn valid_id() -> impl Strategy<Value = (String, ScopeKind)> {
            valid_id_with_canonical().prop_map(|(text, _, kind)| (text, kind))
        }

        /// [`valid_id`] with the canonical spelling of the same id.
        fn valid_id_with_canonical() -> impl Strategy<Value = (String, String, ScopeKind)> {
            let keyword = |k: &'static str| {
                proptest::collection::vec(any::<bool>(), k.len()).prop_map(move |upper| {
                    k.chars()
                        .zip(upper)
                        .map(
                            |(c, u)| {
                                if u {
                                    c.to_ascii_uppercase()
                                } else {
                                    c.to_ascii_lowercase()
                                }
                            },
                        )
                        .collect::<String>()
                })
            };
            (
                keyword("subscriptions"),
                any::<u128>(),
                any::<bool>(),
                proptest::option::of((keyword("resourceGroups"), name())),
                proptest::option::of((
                    keyword("providers"),
                    name(),
                    proptest::collection::vec((name(), name()), 1..4),
                )),
            )
                .prop_map(|(subs, guid, upper, group, provider)| {
                    let guid = Uuid::from_u128(guid).to_string();
                    let shown = if upper { guid.to_ascii_uppercase() } else { guid.clone() };
                    let mut text = format!("/{subs}/{shown}");
                    let mut canonical = format!("/subscriptions/{guid}");
                    let mut kind = ScopeKind::Subscription;
                    if let Some((rg, n)) = group {
                        text.push_str(&format!("/{rg}/{n}"));
                        canonical.push_str(&format!("/resourceGroups/{n}"));
                        kind = ScopeKind::ResourceGroup;
                    }
                    if let Some((p, ns, pairs)) = provider {
                        text.push_str(&format!("/{p}/{ns}"));
                        canonical.push_str(&format!("/providers/{ns}"));
                        for (t, n) in pairs {
                            text.push_str(&format!("/{t}/{n}"));
                            let t =
                                if t.eq_ignore_ascii_case("providers") { "providers" } else { &t };
                            canonical.push_str(&format!("/{t}/{n}"));
                        }
                        kind = ScopeKind::Resource;
                    }
                    (text, canonical, kind)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_is_an_id_or_a_client_error(text in ".{0,80}") {
                if let Err(e) = ResourceId::parse(&text) {
                    prop_assert!(e.status().is_client_error(), "{text:?}: {e}");
                }
            }

            #[test]
            fn id_shaped_text_is_an_id_or_a_client_error(
                segments in proptest::collection::vec(
                    prop_oneof![
                        Just("subscriptions".to_string()),
                        Just(S.to_string()),
                        Just("resourceGroups".to_string()),
                        Just("providers".to_string()),
                        Just(String::new()),
                        name(),
                        ".{0,6}",
                    ],
                    0..10,
                )
            ) {
                let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
                match ResourceId::from_segments(&refs) {
                    Ok(id) => prop_assert!(id.as_str().starts_with('/')),
                    Err(e) => prop_assert!(e.status().is_client_error(), "{segments:?}: {e}"),
                }
            }

            #[test]
            fn valid_ids_round_trip(
                (text, canonical, kind) in valid_id_with_canonical(),
                trailing in "/{0,2}",
            ) {
                let id = ResourceId::parse(&format!("{text}{trailing}"))
                    .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                prop_assert_eq!(
                    id.as_str(),
                    canonical.as_str(),
                    "ARM's keywords, a lower-case GUID, the client's names, no trailing slash"
                );
                prop_assert_eq!(id.kind(), kind);
                prop_assert_eq!(id.key(), text.to_ascii_lowercase());
                let again = ResourceId::parse(id.as_str())
                    .map_err(|e| TestCaseError::fail(format!("{id}: {e}")))?;
                prop_assert_eq!(&again, &id);
                // Case does not make another resource.
                let shouted = ResourceId::parse(&text.to_ascii_uppercase())
                    .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                prop_assert_eq!(shouted.key(), id.key());
                prop_assert_eq!(shouted.as_str().to_ascii_lowercase(), id.key());
                prop_assert!(shouted.as_str().starts_with("/subscriptions/"), "{}", shouted);
                prop_assert_eq!(shouted.subscription(), id.subscription());
            }

            #[test]
            fn a_forbidden_character_in_a_name_is_refused(
                (text, kind) in valid_id(),
                bad in prop::sample::select(vec!['<', '>', '%', '&', ':', '\\', '?', '#', '\u{7}']),
            ) {
                prop_assume!(kind != ScopeKind::Subscription);
                let poisoned = format!("{text}{bad}");
                let e = ResourceId::parse(&poisoned).expect_err("a forbidden character");
                prop_assert_eq!(e.code(), "BadRequest");
            }
        }
    }
}
