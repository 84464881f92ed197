//! List pagination as every list RPC does it: `page_size` (default 20, at
//! most 100) and an opaque `page_token` that carries a keyset cursor (the
//! sort key of the last item returned), so pages stay stable while rows are
//! added and no offset scan grows with the page number.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::validation::{Violations, violation};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// A validated page request: how many items, and after which cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    pub after: Option<String>,
}

/// Token format version: lets the cursor's encoding change without
/// misreading tokens a client kept from an older release.
const TOKEN_PREFIX: &str = "v1:";

impl PageRequest {
    /// `page_size` 0 means the default; above the maximum is capped (as
    /// AIP-158 asks); negative is an error. A token that is not one of ours
    /// is an error naming `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, Violations> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => return Err(violation("page_size", "must not be negative")),
            n => (n as u32).min(MAX_PAGE_SIZE),
        };
        let after = match page_token {
            "" => None,
            token => Some(decode(token).ok_or_else(|| violation("page_token", "is not a token from a previous page"))?),
        };
        Ok(Self { size, after })
    }

    /// How many rows to fetch: one more than the page, to know if another follows.
    pub fn fetch_limit(&self) -> u32 {
        self.size + 1
    }

    /// Trims `rows` (fetched with [`PageRequest::fetch_limit`]) to the page
    /// and returns the next page's token, empty on the last page.
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> String) -> (Vec<T>, String) {
        if rows.len() > self.size as usize {
            rows.truncate(self.size as usize);
            let token = rows.last().map(|last| encode(&cursor_of(last))).unwrap_or_default();
            (rows, token)
        } else {
            (rows, String::new())
        }
    }
}

fn encode(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{cursor}"))
}

fn decode(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(TOKEN_PREFIX).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(PageRequest::parse(0, "").unwrap().size, 20);
        assert_eq!(PageRequest::parse(7, "").unwrap().size, 7);
        assert_eq!(PageRequest::parse(1000, "").unwrap().size, 100);
        let error = PageRequest::parse(-1, "").unwrap_err();
        assert_eq!(error.fields().next().unwrap().0, "page_size");
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_refused() {
        let page = PageRequest::parse(2, "").unwrap();
        let (rows, token) = page.finish(vec!["a", "b", "c"], |row| row.to_string());
        assert_eq!(rows, ["a", "b"]);
        let next = PageRequest::parse(2, &token).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));

        for bad in ["not base64!", "Zm9v", "%%%"] {
            let error = PageRequest::parse(2, bad).unwrap_err();
            assert_eq!(error.fields().next().unwrap().0, "page_token", "{bad}");
        }
    }

    #[test]
    fn last_page_has_no_token() {
        let page = PageRequest::parse(5, "").unwrap();
        let (rows, token) = page.finish(vec![1, 2, 3], |row| row.to_string());
        assert_eq!(rows.len(), 3);
        assert!(token.is_empty());
    }
}
