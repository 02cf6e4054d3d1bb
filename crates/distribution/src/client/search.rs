//! `search TERM` and `search HOST:PORT/TERM`: v1 search (`/v1/search`, which Docker Hub and
//! `berth registry serve` answer), else — a plain distribution registry has none — the
//! registry's `_catalog`, filtered by the term. Docker Hub's index is asked for terms
//! without a registry.

use super::Distribution;
use super::auth::AuthConfig;
use super::endpoint::{DOCKER_HUB, DOCKER_HUB_INDEX};
use super::error::ClientError;
use super::session::Session;
use crate::protocol::search::SearchResult;

/// Docker's default and largest `--limit`.
const DEFAULT_LIMIT: i64 = 25;

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// `TERM` or `HOST[:PORT]/TERM`.
    pub term: String,
    /// Results wanted (1 to 100; 25 when not given).
    pub limit: Option<i64>,
    /// `--filter`s.
    pub filters: SearchFilters,
    /// Credentials for the registry.
    pub auth: AuthConfig,
}

/// `search --filter`: `is-official`, `is-automated`, `stars`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilters {
    /// `is-official=true|false`.
    pub is_official: Option<bool>,
    /// `is-automated=true|false`.
    pub is_automated: Option<bool>,
    /// `stars=N`: at least N stars.
    pub stars: Option<u64>,
}

impl SearchFilters {
    fn keep(&self, result: &SearchResult) -> bool {
        self.is_official.is_none_or(|o| result.is_official == o)
            && self.is_automated.is_none_or(|a| result.is_automated == a)
            && self.stars.is_none_or(|s| result.star_count >= s)
    }
}

/// `(registry, term)`: Docker's rule, the first component is a registry when it looks like a
/// host (has `.` or `:`, or is `localhost`).
fn split_term(term: &str) -> (&str, &str) {
    match term.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            let registry = if first == "index.docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            (registry, rest)
        }
        _ => (DOCKER_HUB, term),
    }
}

impl Distribution {
    /// Searches the registry the term names.
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchResult>, ClientError> {
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=100).contains(&limit) {
            return Err(ClientError::InvalidLimit { limit });
        }
        let limit = usize::try_from(limit).unwrap_or(25);
        let (registry, term) = split_term(&request.term);
        let scopes = vec!["registry:catalog:*".to_owned()];
        let credentials = request.auth.credentials();
        let session = if registry == DOCKER_HUB {
            Session::with_endpoint(
                &self.http,
                &self.tokens,
                self.options.hub_endpoint(DOCKER_HUB_INDEX),
                credentials,
                scopes,
            )
        } else {
            Session::open(
                &self.http,
                &self.options,
                &self.tokens,
                registry,
                credentials,
                scopes,
                true,
            )
            .await?
        };
        let base = session.endpoint.base.clone();
        let mut results = match session.search_v1(&base, term, limit).await? {
            Some(found) => found.results,
            None => {
                // No v1 search here: the catalog, filtered.
                let needle = term.to_ascii_lowercase();
                session
                    .catalog()
                    .await?
                    .into_iter()
                    .filter(|name| name.contains(&needle))
                    .map(|name| SearchResult {
                        name,
                        description: String::new(),
                        star_count: 0,
                        is_official: false,
                        is_automated: false,
                    })
                    .collect()
            }
        };
        results.retain(|r| request.filters.keep(r));
        results.truncate(limit);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry() {
        assert_eq!(split_term("busybox"), (DOCKER_HUB, "busybox"));
        assert_eq!(
            split_term("library/busybox"),
            (DOCKER_HUB, "library/busybox")
        );
        assert_eq!(split_term("127.0.0.1:5000/web"), ("127.0.0.1:5000", "web"));
        assert_eq!(split_term("localhost/x/y"), ("localhost", "x/y"));
        assert_eq!(split_term("index.docker.io/x"), (DOCKER_HUB, "x"));
        let filters = SearchFilters {
            stars: Some(3),
            is_official: Some(false),
            ..SearchFilters::default()
        };
        let mut result = SearchResult {
            name: "a".into(),
            description: String::new(),
            star_count: 3,
            is_official: false,
            is_automated: false,
        };
        assert!(filters.keep(&result));
        result.star_count = 2;
        assert!(!filters.keep(&result));
    }
}
