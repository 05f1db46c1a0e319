//! Azure Resource Manager conventions (docs/ARM.md), independent of any resource: typed ids,
//! api-versions, the CloudError catalogue, paging, response headers and time formats.

pub mod api_version;
pub mod error;
pub mod headers;
pub mod paging;
pub mod resource_id;
pub mod throttle;

pub use api_version::Family;
pub use error::{ApiError, ApiResult};
pub use resource_id::{parse_subscription_id, ResourceId, ScopeKind};

use anyhow::Context;
use axum::http::{header, HeaderMap, Uri};
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

/// `{scheme}://{host}` as the client reached the server: absolute URLs we hand out (nextLinks,
/// authority endpoints) point at the host the client used.
pub fn request_base(https: bool, headers: &HeaderMap, uri: Option<&Uri>) -> String {
    let scheme = if https { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        })
        .map(str::to_string)
        .or_else(|| uri.and_then(|u| u.authority()).map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    format!("{scheme}://{host}")
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

    mod properties {
        use super::*;
        use axum::http::HeaderValue;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The base goes into nextLinks and `WWW-Authenticate` challenges: whatever `Host` a
            /// client sends, it cannot break out of a URL or a quoted header parameter.
            #[test]
            fn the_request_base_is_a_clean_url_prefix(https in any::<bool>(), host in prop::collection::vec(any::<u8>(), 0..40)) {
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_bytes(&host) {
                    headers.insert(header::HOST, v);
                }
                let base = request_base(https, &headers, None);
                let authority = base
                    .strip_prefix(if https { "https://" } else { "http://" })
                    .ok_or_else(|| TestCaseError::fail(base.clone()))?;
                prop_assert!(!authority.is_empty());
                prop_assert!(
                    authority.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
                    "{base:?}"
                );
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
