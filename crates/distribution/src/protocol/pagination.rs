//! `n`/`last` pagination of `tags/list` and `_catalog`, and its `Link` header.

/// A page request: at most `n` entries after `last`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size, if given.
    pub n: Option<usize>,
    /// The last entry of the previous page.
    pub last: Option<String>,
}

/// `n` is not a non-negative integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid page size {value:?}")]
pub struct PageSizeError {
    /// The value given.
    pub value: String,
}

impl PageRequest {
    /// Reads `n` and `last` from a query string.
    pub fn from_query(query: &str) -> Result<Self, PageSizeError> {
        let mut page = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "n" => {
                    page.n = Some(value.parse().map_err(|_| PageSizeError {
                        value: value.clone().into_owned(),
                    })?);
                }
                "last" if !value.is_empty() => page.last = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(page)
    }

    /// The page of `sorted` this request asks for (at most `limit` entries when it gives no
    /// `n`), and whether entries follow it.
    pub fn apply<'a>(&self, sorted: &'a [String], limit: Option<usize>) -> (&'a [String], bool) {
        let start = match &self.last {
            Some(last) => sorted.partition_point(|entry| entry.as_str() <= last.as_str()),
            None => 0,
        };
        let rest = &sorted[start..];
        let size = self.n.or(limit).unwrap_or(rest.len()).min(rest.len());
        (&rest[..size], size < rest.len() && size > 0)
    }
}

/// The `Link` header pointing at the page after `last`.
pub fn next_link(path: &str, n: usize, last: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("last", last)
        .append_pair("n", &n.to_string())
        .finish();
    format!("<{path}?{query}>; rel=\"next\"")
}

/// The URL of a `Link: <url>; rel="next"` header.
pub fn parse_next_link(header: &str) -> Option<String> {
    let (target, params) = header.split_once(';')?;
    let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
    params
        .split(';')
        .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
        .then(|| target.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn pages() {
        let all = names(&["a", "b", "c", "d"]);
        let page = PageRequest::from_query("n=2").expect("query");
        assert_eq!(page.apply(&all, None), (&all[..2], true));
        let page = PageRequest::from_query("n=2&last=b").expect("query");
        assert_eq!(page.apply(&all, None), (&all[2..], false));
        let page = PageRequest::from_query("last=bb").expect("query");
        assert_eq!(page.apply(&all, None), (&all[2..], false));
        assert_eq!(page.apply(&all, Some(1)), (&all[2..3], true));
        let page = PageRequest::from_query("n=0").expect("query");
        assert_eq!(page.apply(&all, None), (&all[..0], false));
        let page = PageRequest::from_query("n=10&last=z").expect("query");
        assert_eq!(page.apply(&all, None), (&all[4..], false));
        assert!(PageRequest::from_query("n=-1").is_err());
        assert!(PageRequest::from_query("n=x").is_err());
    }

    #[test]
    fn links() {
        let link = next_link("/v2/a/b/tags/list", 2, "v1.0");
        assert_eq!(link, "</v2/a/b/tags/list?last=v1.0&n=2>; rel=\"next\"");
        assert_eq!(
            parse_next_link(&link).as_deref(),
            Some("/v2/a/b/tags/list?last=v1.0&n=2")
        );
        assert_eq!(
            next_link("/v2/_catalog", 1, "a/b"),
            "</v2/_catalog?last=a%2Fb&n=1>; rel=\"next\""
        );
        assert_eq!(parse_next_link("<x>; rel=\"prev\""), None);
    }
}
