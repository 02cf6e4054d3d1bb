//! The v1 search document (`GET /v1/search?q=&n=&page=`) Docker's `search` reads.

use serde::{Deserialize, Serialize};

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matches in all.
    pub num_results: usize,
    /// The query.
    pub query: String,
    /// This page's matches.
    pub results: Vec<SearchResult>,
    /// 1-based page number.
    #[serde(default)]
    pub page: usize,
    /// Pages in all.
    #[serde(default)]
    pub num_pages: usize,
    /// Results per page.
    #[serde(default)]
    pub page_size: usize,
}

/// One repository found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The repository name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Stars (a private registry has none).
    #[serde(default)]
    pub star_count: u64,
    /// An official image.
    #[serde(default)]
    pub is_official: bool,
    /// An automated build.
    #[serde(default)]
    pub is_automated: bool,
}
