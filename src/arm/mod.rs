//! Azure Resource Manager conventions (docs/ARM.md), independent of any resource: typed ids,
//! api-versions, the CloudError catalogue, paging, response headers and time formats.

pub mod api_version;
pub mod error;
pub mod extract;
pub mod headers;
pub mod paging;
pub mod resource_id;
pub mod throttle;

pub use api_version::Family;
pub use error::{ApiError, ApiResult};
pub use resource_id::{parse_subscription_id, AnyScope, ResourceId, ScopeKind};

use anyhow::Context;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// ARM's timestamp format: UTC, 7 fractional digits (`2021-04-20T05:46:21.9516805Z`). Fixed width,
/// so stored timestamps sort as text in time order.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

pub fn parse_time(text: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("'{text}' is not an RFC 3339 time"))
}

/// The server's URL as its clients reach it (`serve --public-url`; by default the listen address
/// with the scheme): `{scheme}://{host}[:{port}]`, without a trailing slash. Every absolute URL
/// the server hands out (nextLinks, the authority's endpoints, token issuers) starts with it; a
/// request's `Host` header never decides one, so a client cannot make the server name another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        self.0.split_once("://").map_or("", |(_, rest)| rest)
    }

    /// Does it name this machine only (`localhost`, 127.0.0.0/8, `[::1]`)?
    pub fn is_loopback(&self) -> bool {
        let Ok(authority) = self.authority().parse::<axum::http::uri::Authority>() else {
            return false;
        };
        let host = authority.host();
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = anyhow::Error;

    /// An `http(s)://host[:port]` URL; a trailing `/` is dropped, anything else after the host
    /// (a path, a query, credentials) is refused rather than silently ignored.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let uri: Uri = text.parse().with_context(|| format!("'{text}' is not a URL"))?;
        let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            anyhow::bail!("the public URL '{text}' must start with https:// (or http://)");
        }
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            anyhow::bail!("the public URL '{text}' has no host");
        };
        if authority.as_str().contains('@') {
            anyhow::bail!("the public URL '{text}' must not carry credentials");
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            anyhow::bail!(
                "the public URL '{text}' must be scheme and host only (e.g. https://scores.example.com), without a path"
            );
        }
        let scheme = scheme.unwrap_or_default();
        let host = authority.host().to_ascii_lowercase();
        // The scheme's own port is left out, as clients write the URL (and compare issuers).
        let port = match (scheme.as_str(), authority.port_u16()) {
            ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
            (_, Some(p)) => format!(":{p}"),
        };
        Ok(PublicUrl(format!("{scheme}://{host}{port}")))
    }
}

/// A JSON response with ARM's content type.
pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(error::JSON_CONTENT_TYPE));
            r
        }
        Err(e) => ApiError::Internal(e.into()).into_response(),
    }
}

/// Query parameters; parsed by hand rather than by an extractor so that nothing can answer a
/// non-CloudError rejection.
pub fn query_map(raw: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_in_arm_format() {
        let t = parse_time("2021-04-20T05:46:21.9516805Z").unwrap();
        assert_eq!(format_time(t), "2021-04-20T05:46:21.9516805Z");
        let t = parse_time("2021-04-20T05:46:21Z").unwrap();
        assert_eq!(format_time(t), "2021-04-20T05:46:21.0000000Z");
    }

    #[test]
    fn public_urls_are_scheme_and_host_only() {
        let url = |s: &str| s.parse::<PublicUrl>().map(|u| u.to_string());
        assert_eq!(url("https://Scores.Example.com/").unwrap(), "https://scores.example.com");
        assert_eq!(url("http://127.0.0.1:8443").unwrap(), "http://127.0.0.1:8443");
        assert_eq!(url("https://[::1]:8443").unwrap(), "https://[::1]:8443");
        assert_eq!(url("https://scores.example.com:443").unwrap(), "https://scores.example.com");
        assert_eq!(url("http://scores.example.com:80/").unwrap(), "http://scores.example.com");
        assert_eq!(url("http://scores.example.com:443").unwrap(), "http://scores.example.com:443");
        assert_eq!("https://a.example:1".parse::<PublicUrl>().unwrap().authority(), "a.example:1");
        for bad in [
            "scores.example.com",
            "ftp://scores.example.com",
            "https://scores.example.com/api",
            "https://scores.example.com/?x=1",
            "https://user:pw@scores.example.com",
            "https://",
            "",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The public URL starts every nextLink and token issuer: whatever text it is given, it
            /// is refused or becomes a bare `scheme://host[:port]` that parses back to itself.
            #[test]
            fn a_public_url_is_refused_or_a_bare_origin(text in prop_oneof![
                ".{0,30}",
                "(https?|HTTPS|ftp)://[a-zA-Z0-9.@:\\[\\]-]{0,16}(/[a-z?=]{0,5})?",
            ]) {
                if let Ok(url) = text.parse::<PublicUrl>() {
                    let s = url.to_string();
                    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
                    let rest = rest.ok_or_else(|| TestCaseError::fail(s.clone()))?;
                    prop_assert!(!rest.is_empty() && !rest.contains(['/', '?', '#', '@']), "{text:?} → {s}");
                    prop_assert_eq!(url.authority(), rest);
                    prop_assert_eq!(s.parse::<PublicUrl>().ok(), Some(url));
                }
            }

            #[test]
            fn times_round_trip_in_the_arm_format(seconds in 0i64..253_402_300_799, hundreds_of_ns in 0u32..10_000_000) {
                let t = OffsetDateTime::from_unix_timestamp(seconds)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    + time::Duration::nanoseconds(i64::from(hundreds_of_ns) * 100);
                let text = format_time(t);
                prop_assert_eq!(text.len(), 28, "{}", text);
                prop_assert_eq!(parse_time(&text).ok(), Some(t));
            }

            #[test]
            fn any_time_text_parses_or_is_an_error(text in ".{0,40}") {
                let _ = parse_time(&text);
            }
        }
    }
}
