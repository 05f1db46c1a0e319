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
}
