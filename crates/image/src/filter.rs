//! Which images `images` lists and `image prune` removes: the `filters` of both endpoints
//! (one [`Filters`] type, as every list and prune reads it), read here rather than in the
//! daemon, so the HTTP layer only parses and answers.
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use berth_api::filters::Filters;

use crate::error::ImageError;
use crate::store::ImageStore;
use crate::{Deleted, ImageRecord};

/// The filter keys `GET /images/json` takes.
const LIST_FILTERS: [&str; 6] = ["dangling", "label", "before", "since", "reference", "until"];
/// The filter keys `POST /images/prune` takes.
const PRUNE_FILTERS: [&str; 4] = ["dangling", "label", "label!", "until"];

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The tags and images removed, in order.
    pub deleted: Vec<Deleted>,
    /// Bytes of layers no longer on disk.
    pub reclaimed: u64,
}

impl ImageStore {
    /// `GET /images/json`: the images passing `filters` (`dangling`, `label`, `reference`
    /// globs, `before`/`since` an image, `until` a time), newest first. Without `all`,
    /// untagged images that others were committed on are left out (intermediate images).
    pub fn list_filtered(
        &self,
        filters: &Filters,
        all: bool,
    ) -> Result<Vec<ImageRecord>, ImageError> {
        filters.validate(&LIST_FILTERS)?;
        let dangling = filters.bool("dangling")?;
        let until = filters.until(SystemTime::now())?;
        let created = |key: &str| -> Result<Option<i64>, ImageError> {
            filters
                .values(key)
                .next()
                .map(|reference| self.resolve(reference).map(|record| record.created))
                .transpose()
        };
        let bounds = Bounds {
            dangling,
            before: created("before")?,
            since: created("since")?,
            until: until.map(|until| until.secs),
        };
        let records = self.list();
        let parents: HashSet<String> = records.iter().filter_map(|r| r.parent.clone()).collect();
        Ok(records
            .into_iter()
            .filter(|r| all || !r.repo_tags.is_empty() || !parents.contains(&r.id))
            .filter(|r| list_matches(r, filters, &bounds))
            .collect())
    }

    /// `POST /images/prune`: removes unused dangling images (every unused one with
    /// `dangling=false`) created before `until` and passing the `label` / `label!` filters.
    /// Untagged parents go with their last child. `in_use` names the container using an image
    /// (and whether it runs); removals refused meanwhile are skipped, as moby does.
    pub fn prune(
        &self,
        filters: &Filters,
        in_use: &dyn Fn(&str) -> Option<(String, bool)>,
    ) -> Result<Pruned, ImageError> {
        filters.validate(&PRUNE_FILTERS)?;
        let dangling_only = filters.bool("dangling")?.unwrap_or(true);
        let until = filters.until(SystemTime::now())?;
        let before = self.disk_usage().layers_size;
        let records = self.list();
        let parents: HashSet<String> = records.iter().filter_map(|r| r.parent.clone()).collect();
        let mut deleted = Vec::new();
        for record in records {
            if in_use(&record.id).is_some()
                || (dangling_only && !record.repo_tags.is_empty())
                || parents.contains(&record.id)
                || until.is_some_and(|until| record.created >= until.secs)
                || !filters.labels_match(&labels(&record))
            {
                continue;
            }
            if let Ok(entries) = self.remove(&record.id, true, in_use) {
                deleted.extend(entries);
            }
        }
        let after = self.disk_usage().layers_size;
        Ok(Pruned {
            deleted,
            reclaimed: before.saturating_sub(after),
        })
    }
}

/// The `images` filters resolved to values: `dangling`, and `before`/`since`/`until` as
/// creation times (Unix seconds).
#[derive(Debug, Default)]
struct Bounds {
    dangling: Option<bool>,
    before: Option<i64>,
    since: Option<i64>,
    until: Option<i64>,
}

/// Whether a record passes the `images` filters.
fn list_matches(record: &ImageRecord, filters: &Filters, bounds: &Bounds) -> bool {
    bounds
        .dangling
        .is_none_or(|dangling| record.repo_tags.is_empty() == dangling)
        && filters.any("reference", |pattern| reference_matches(record, pattern))
        && filters.labels_match(&labels(record))
        && bounds.before.is_none_or(|before| record.created < before)
        && bounds.since.is_none_or(|since| record.created > since)
        && bounds.until.is_none_or(|until| record.created < until)
}

/// An image's labels (its config's `Labels`).
pub fn labels(record: &ImageRecord) -> HashMap<String, String> {
    record
        .config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

/// Whether any of the record's names matches a `reference` pattern (with or without tag).
fn reference_matches(record: &ImageRecord, pattern: &str) -> bool {
    record.repo_tags.iter().any(|tagged| {
        let name = tagged.rsplit_once(':').map_or(tagged.as_str(), |(n, tag)| {
            if tag.contains('/') {
                tagged.as_str()
            } else {
                n
            }
        });
        glob_match(pattern, tagged) || glob_match(pattern, name)
    })
}

/// Go's `path.Match` for the patterns `images --filter reference=` uses: `*` does not cross
/// `/`, `?` is one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    fn matches(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| matches(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && matches(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && matches(rest, &t[1..]),
        }
    }
    matches(&pattern, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tags: &[&str], created: i64) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            repo_digests: Vec::new(),
            config: crate::ImageConfig::default(),
            size: 100,
            created,
            parent: None,
        }
    }

    #[test]
    fn globs_like_go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(!glob_match("busy*", "localhost/busybox"));
        assert!(!glob_match("*", "a/b"));
        assert!(glob_match("*/busybox", "localhost/busybox"));
        assert!(!glob_match("alpine", "busybox"));
        assert!(glob_match("*box*", "busybox"));
        assert!(glob_match("a*b*c", "aXbYbc"));
        assert!(!glob_match("a*b", "a/b"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "x"));
        assert!(!glob_match("?", "/"));
    }

    #[test]
    fn list_filters() {
        let tagged = record("sha256:a", &["busybox:latest", "localhost:5000/x/y:v2"], 10);
        let dangling = record("sha256:b", &[], 20);
        let f = |json: &str| Filters::parse(json).expect("filters");
        let none = Bounds::default();
        let dangling_only = Bounds {
            dangling: Some(true),
            ..Bounds::default()
        };
        assert!(list_matches(&tagged, &f("{}"), &none));
        assert!(list_matches(&dangling, &f("{}"), &dangling_only));
        assert!(!list_matches(&tagged, &f("{}"), &dangling_only));
        assert!(list_matches(
            &tagged,
            &f(r#"{"reference":{"busy*":true}}"#),
            &none
        ));
        assert!(list_matches(
            &tagged,
            &f(r#"{"reference":["localhost:5000/x/y"]}"#),
            &none
        ));
        assert!(!list_matches(
            &tagged,
            &f(r#"{"reference":["alpine"]}"#),
            &none
        ));
        assert!(!list_matches(
            &dangling,
            &f(r#"{"reference":["busy*"]}"#),
            &none
        ));
        assert!(!list_matches(&tagged, &f(r#"{"label":["a=b"]}"#), &none));
        let bounds = |before, since, until| Bounds {
            before,
            since,
            until,
            ..Bounds::default()
        };
        assert!(list_matches(
            &tagged,
            &f("{}"),
            &bounds(Some(11), None, None)
        ));
        assert!(!list_matches(
            &tagged,
            &f("{}"),
            &bounds(Some(10), None, None)
        ));
        assert!(list_matches(
            &dangling,
            &f("{}"),
            &bounds(None, Some(10), None)
        ));
        assert!(!list_matches(
            &tagged,
            &f("{}"),
            &bounds(None, Some(10), None)
        ));
        assert!(list_matches(
            &tagged,
            &f("{}"),
            &bounds(None, None, Some(11))
        ));
        assert!(!list_matches(
            &tagged,
            &f("{}"),
            &bounds(None, None, Some(10))
        ));
    }

    #[test]
    fn references_match_with_and_without_tags() {
        let tagged = record("sha256:a", &["busybox:latest", "localhost:5000/x/y:v2"], 10);
        assert!(reference_matches(&tagged, "busy*"));
        assert!(reference_matches(&tagged, "busybox:latest"));
        assert!(reference_matches(&tagged, "localhost:5000/x/y"));
        assert!(!reference_matches(&tagged, "alpine"));
        assert!(!reference_matches(&record("sha256:b", &[], 20), "busy*"));
    }
}
