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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn cursor() -> impl Strategy<Value = Cursor> {
            prop_oneof![
                any::<usize>().prop_map(Cursor::Offset),
                // A resource key never holds a newline: ids refuse control characters.
                ("[^\n]{0,40}", ".{0,40}").prop_map(|(r, n)| Cursor::After(r, n)),
            ]
        }

        /// A 400 `BadRequest` whose target is the `$skipToken` parameter.
        fn names_the_token(e: &ApiError) -> bool {
            matches!(e, ApiError::BadRequest { target: Some(t), .. } if t == "$skipToken")
        }

        fn assert_invalid(token: &str) -> Result<(), TestCaseError> {
            match Cursor::decode(token) {
                Ok(c) => Err(TestCaseError::fail(format!("{token:?} decoded to {c:?}"))),
                Err(e) => {
                    prop_assert_eq!(e.status().as_u16(), 400);
                    prop_assert!(names_the_token(&e), "{e:?}");
                    Ok(())
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn tokens_round_trip_and_are_url_safe(c in cursor()) {
                let token = c.encode();
                prop_assert!(
                    token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{token}"
                );
                prop_assert_eq!(Cursor::decode(&token).ok(), Some(c));
            }

            #[test]
            fn any_text_is_a_cursor_or_a_400(token in ".{0,60}") {
                if let Err(e) = Cursor::decode(&token) {
                    prop_assert_eq!(e.status().as_u16(), 400);
                    prop_assert!(names_the_token(&e), "{e:?}");
                }
            }

            #[test]
            fn a_character_outside_base64url_makes_a_token_invalid(
                c in cursor(),
                at in any::<prop::sample::Index>(),
                bad in "[^A-Za-z0-9_=-]",
            ) {
                let mut token = c.encode();
                let i = at.index(token.len() + 1);
                token.insert_str(i, &bad);
                assert_invalid(&token)?;
            }

            #[test]
            fn a_cut_token_that_is_not_base64_any_more_is_invalid(c in cursor(), keep in any::<prop::sample::Index>()) {
                let token = c.encode();
                // 4n + 1 characters never decode.
                let len = keep.index(token.len() / 4 + 1) * 4 + 1;
                prop_assume!(len <= token.len());
                assert_invalid(&token[..len])?;
            }

            #[test]
            fn well_encoded_text_that_is_no_cursor_is_invalid(text in ".{0,40}") {
                let offset = text.strip_prefix('o').is_some_and(|n| n.parse::<usize>().is_ok());
                let key = text.strip_prefix('k').is_some_and(|rest| rest.contains('\n'));
                prop_assume!(!offset && !key);
                assert_invalid(&URL_SAFE_NO_PAD.encode(&text))?;
            }

            #[test]
            fn following_the_pages_reads_every_item_once(len in 0usize..60, page_size in 1usize..12) {
                let items: Vec<usize> = (0..len).collect();
                let mut read = Vec::new();
                let mut cursor = None;
                let mut pages = 0;
                loop {
                    let page = page_of(&items, cursor.as_ref(), page_size, |c| c.encode(), |x| *x)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    pages += 1;
                    prop_assert!(page.value.len() <= page_size);
                    read.extend(page.value);
                    match page.next_link {
                        Some(token) => cursor = Some(Cursor::decode(&token).map_err(|e| TestCaseError::fail(e.to_string()))?),
                        None => break,
                    }
                }
                prop_assert_eq!(read, items);
                prop_assert_eq!(pages, len.div_ceil(page_size).max(1));
            }

            #[test]
            fn a_key_cursor_on_a_computed_list_is_a_400(r in "[^\n]{0,10}", n in ".{0,10}") {
                let e = page_of(&[1, 2, 3], Some(&Cursor::After(r, n)), 2, |c| c.encode(), |x| *x)
                    .err()
                    .expect("a key cursor does not fit an offset list");
                prop_assert_eq!(e.status().as_u16(), 400);
            }
        }
    }
}
