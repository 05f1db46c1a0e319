//! Paging (docs/ARM.md): `value` always present, `nextLink` an absolute URL on the host the client
//! used, carrying an opaque URL-safe `$skipToken` and the request's other query parameters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use super::error::ApiError;

#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub value: Vec<T>,
    #[serde(rename = "nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Position in a computed list.
    Offset(usize),
    /// After this (resource key, name key) in a stored, ordered list.
    After(String, String),
}

impl Cursor {
    pub fn encode(&self) -> String {
        let text = match self {
            Cursor::Offset(n) => format!("o{n}"),
            Cursor::After(r, n) => format!("k{r}\n{n}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(token: &str) -> Result<Cursor, ApiError> {
        let invalid = || {
            ApiError::BadRequest {
            target: Some("$skipToken".into()),
            message: format!("The $skipToken '{token}' is invalid. Use the nextLink of the previous page as it is."),
        }
        };
        let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        if let Some(n) = text.strip_prefix('o') {
            return n.parse().map(Cursor::Offset).map_err(|_| invalid());
        }
        if let Some(rest) = text.strip_prefix('k') {
            if let Some((r, n)) = rest.split_once('\n') {
                return Ok(Cursor::After(r.to_string(), n.to_string()));
            }
        }
        Err(invalid())
    }
}

/// Cut one page out of a computed list.
pub fn page_of<'a, T, U: Serialize>(
    items: &'a [T],
    cursor: Option<&Cursor>,
    page_size: usize,
    next_link: impl FnOnce(&Cursor) -> String,
    render: impl FnMut(&'a T) -> U,
) -> Result<Page<U>, ApiError> {
    let start = match cursor {
        None => 0,
        Some(Cursor::Offset(n)) => *n,
        Some(Cursor::After(..)) => {
            return Err(ApiError::BadRequest {
                target: Some("$skipToken".into()),
                message: "The $skipToken does not belong to this list.".into(),
            })
        }
    };
    let end = start.saturating_add(page_size).min(items.len());
    let value = items.get(start..end).unwrap_or_default().iter().map(render).collect();
    let next_link = (end < items.len()).then(|| next_link(&Cursor::Offset(end)));
    Ok(Page { value, next_link })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        for c in [
            Cursor::Offset(0),
            Cursor::Offset(12345),
            Cursor::After("/subscriptions/x/rg?>".into(), "n".into()),
        ] {
            let t = c.encode();
            assert!(
                t.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'),
                "{t}"
            );
            assert_eq!(Cursor::decode(&t).unwrap(), c);
        }
        assert!(Cursor::decode("!!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("zzz")).is_err());
    }

    #[test]
    fn pages() {
        let items: Vec<u32> = (0..5).collect();
        let p = page_of(&items, None, 2, |c| c.encode(), |x| *x).unwrap();
        assert_eq!(p.value, vec![0, 1]);
        assert_eq!(p.next_link.as_deref(), Some(Cursor::Offset(2).encode().as_str()));
        let p = page_of(&items, Some(&Cursor::Offset(4)), 2, |c| c.encode(), |x| *x).unwrap();
        assert_eq!(p.value, vec![4]);
        assert!(p.next_link.is_none());
        let p = page_of(&items, Some(&Cursor::Offset(40)), 2, |c| c.encode(), |x| *x).unwrap();
        assert!(p.value.is_empty());
    }
}
