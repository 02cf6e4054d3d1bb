//! Query-string conventions of the Docker API, as moby implements them.
//!
//! Booleans: `""`, `0`, `no`, `false` and `none` (any case) are false, anything else is true,
//! and an absent key is the endpoint's default. `filters` is parsed by
//! [`berth_api::filters::Filters`], the one reading every list and prune shares. A request's
//! JSON body is parsed by [`parse_body`].
use std::str::FromStr;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use berth_api::filters::Filters;
use serde::de::DeserializeOwned;

use crate::error::DaemonError;

/// A request's query parameters, in order, repeated keys kept (`changes=…&changes=…`).
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = DaemonError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|source| DaemonError::InvalidQuery { source })?;
        Ok(Self(pairs))
    }
}

impl Params {
    /// Parameters from decoded pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The first value of `key` (moby's `r.Form.Get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, if present and not empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// moby's `BoolValue`: absent is false.
    pub fn flag(&self, key: &str) -> bool {
        self.flag_or(key, false)
    }

    /// moby's `BoolValueOrDefault`: absent is `default`.
    pub fn flag_or(&self, key: &str, default: bool) -> bool {
        self.get(key).map_or(default, parse_bool)
    }

    /// `key` parsed as a number (or any `FromStr`); absent or empty is `None`.
    pub fn parse<T: FromStr>(&self, key: &'static str) -> Result<Option<T>, DaemonError> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(value) => {
                value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| DaemonError::InvalidParameter {
                        param: key,
                        value: value.to_owned(),
                    })
            }
        }
    }

    /// `key` parsed as a number, required.
    pub fn require<T: FromStr>(&self, key: &'static str) -> Result<T, DaemonError> {
        self.parse(key)?
            .ok_or(DaemonError::MissingParameter { param: key })
    }

    /// The `filters` parameter, in either form.
    pub fn filters(&self) -> Result<Filters, DaemonError> {
        Ok(Filters::parse(self.get("filters").unwrap_or_default())?)
    }

    /// A Unix time (`1700000000` or `1700000000.123456789`), as `since`/`until` carry it.
    pub fn timestamp(&self, key: &'static str) -> Result<Option<f64>, DaemonError> {
        self.parse::<f64>(key)
    }
}

/// moby's boolean rule for one query value.
pub fn parse_bool(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    !matches!(value.as_str(), "" | "0" | "no" | "false" | "none")
}

/// Parses a JSON body; a malformed one is a 400 carrying serde's reason. An empty body is
/// `null`, which is what Docker's decoders see too.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DaemonError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|source| DaemonError::InvalidBody { source })
}

/// Like [`parse_body`], but an empty body is the type's default.
pub fn parse_body_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, DaemonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        let uri: axum::http::Uri = format!("/x?{query}").parse().expect("uri");
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri).expect("query");
        Params::from_pairs(pairs)
    }

    #[test]
    fn booleans_follow_moby() {
        for falsy in ["", "0", "no", "false", "none", "FALSE", " No "] {
            assert!(!parse_bool(falsy), "{falsy:?}");
        }
        for truthy in ["1", "true", "yes", "True", "anything"] {
            assert!(parse_bool(truthy), "{truthy:?}");
        }
        let p = params("all=1&size=0&v=&stream=no");
        assert!(p.flag("all"));
        assert!(!p.flag("size"));
        assert!(!p.flag("v"));
        assert!(!p.flag("missing"));
        assert!(p.flag_or("missing", true));
        assert!(!p.flag_or("stream", true));
    }

    #[test]
    fn filters_map_form_from_the_cli() {
        // The exact query the CLI sends for `ps --filter status=running --filter name=my`.
        let p = params(
            "filters=%7B%22name%22%3A%7B%22my%22%3Atrue%7D%2C%22status%22%3A%7B%22running%22%3Atrue%7D%7D",
        );
        let filters = p.filters().expect("filters");
        assert_eq!(filters.keys().count(), 2);
        assert_eq!(filters.values("name").collect::<Vec<_>>(), ["my"]);
        assert_eq!(filters.values("status").collect::<Vec<_>>(), ["running"]);
        assert!(params("").filters().expect("absent").is_empty());
        let error = params("filters=%7Bnot").filters().expect_err("malformed");
        assert!(matches!(error, DaemonError::Filter { .. }));
    }

    #[test]
    fn repeated_keys_and_numbers() {
        let p = params("changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&t=3&h=x");
        assert_eq!(p.all("changes"), vec![r#"CMD ["sh"]"#, "ENV A=1"]);
        assert_eq!(p.parse::<i64>("t").expect("t"), Some(3));
        assert_eq!(p.parse::<i64>("missing").expect("absent"), None);
        assert!(matches!(
            p.parse::<u16>("h"),
            Err(DaemonError::InvalidParameter { param: "h", .. })
        ));
        assert!(matches!(
            p.require::<u16>("w"),
            Err(DaemonError::MissingParameter { param: "w" })
        ));
        assert_eq!(
            params("since=1700000000.5").timestamp("since").expect("ts"),
            Some(1_700_000_000.5)
        );
    }
}
