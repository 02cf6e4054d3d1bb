//! Docker's `filters` query parameter: one type for every list, prune and event stream, as
//! moby's `api/types/filters` serves them all, so two endpoints never read the same filter
//! differently.
//!
//! On the wire `filters` is JSON in one of two forms: the CLI's map of maps
//! (`{"label":{"a=b":true}}`) or docker-py's legacy lists (`{"label":["a=b"]}`). Both parse
//! to the same [`Filters`]: each key with its set of values. Within one key the values are
//! alternatives unless the key says otherwise (`label` values must all hold); all keys must
//! match. Each endpoint names the keys it takes ([`Filters::validate`]) and reads them with
//! the helpers here: [`Filters::bool`] (`dangling`), [`Filters::labels_match`] (`label`,
//! `label!`), [`Filters::until`] (`until`).
//!
//! ```
//! use std::collections::HashMap;
//! use berth_api::filters::Filters;
//!
//! let filters = Filters::parse(r#"{"label":{"tier=web":true},"dangling":["true"]}"#).unwrap();
//! filters.validate(&["label", "dangling"]).unwrap();
//! assert_eq!(filters.bool("dangling").unwrap(), Some(true));
//! let labels = HashMap::from([("tier".to_owned(), "web".to_owned())]);
//! assert!(filters.labels_match(&labels));
//! // The CLI builds the same value from `--filter` flags and sends it in the map form.
//! let flags = Filters::from_flags(["label=tier=web", "dangling=true"]).unwrap();
//! assert_eq!(flags, filters);
//! assert_eq!(flags.to_json(), r#"{"dangling":{"true":true},"label":{"tier=web":true}}"#);
//! ```
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::time::SystemTime;

use crate::time::{Timestamp, parse_timestamp};

/// A `filters` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The JSON is neither the map form nor the list form.
    #[error("invalid filter: {source}")]
    Json {
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A key the endpoint does not take (`invalid filter 'bogus'`), or a value its key cannot
    /// take (`invalid filter 'until=soon'`), in moby's words.
    #[error("invalid filter '{key}{}'", value.as_ref().map(|v| format!("={v}")).unwrap_or_default())]
    Invalid {
        /// The key (or, for a `--filter` flag without `=`, the whole flag).
        key: String,
        /// The offending value(s), comma-separated, when a value is the problem.
        value: Option<String>,
    },
}

/// A set of filters: each key with its values (sorted, without duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, BTreeSet<String>>,
}

/// The map form maps each value to a boolean; the legacy form lists the values.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Values {
    Map(HashMap<String, bool>),
    List(Vec<String>),
}

impl Filters {
    /// No filters: everything matches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the `filters` query value, in the map or the list form; empty is no filters.
    pub fn parse(json: &str) -> Result<Self, FilterError> {
        if json.trim().is_empty() {
            return Ok(Self::new());
        }
        let raw: HashMap<String, Values> =
            serde_json::from_str(json).map_err(|source| FilterError::Json { source })?;
        let mut filters = Self::new();
        for (key, values) in raw {
            let values: Vec<String> = match values {
                // moby keeps every key of the inner map, whatever its boolean.
                Values::Map(map) => map.into_keys().collect(),
                Values::List(list) => list,
            };
            filters.fields.entry(key).or_default().extend(values);
        }
        Ok(filters)
    }

    /// The filters of repeated `--filter key=value` flags (the CLI's side).
    pub fn from_flags<I, S>(flags: I) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filters = Self::new();
        for flag in flags {
            let flag = flag.as_ref();
            let (key, value) = flag.split_once('=').ok_or_else(|| FilterError::Invalid {
                key: flag.to_owned(),
                value: None,
            })?;
            filters.add(key, value);
        }
        Ok(filters)
    }

    /// Adds `value` to `key`.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.fields
            .entry(key.into())
            .or_default()
            .insert(value.into());
    }

    /// The map form the docker CLI sends: `{"key":{"value":true}}`.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, BTreeMap<&str, bool>> = self
            .fields
            .iter()
            .map(|(key, values)| {
                (
                    key.as_str(),
                    values.iter().map(|v| (v.as_str(), true)).collect(),
                )
            })
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    }

    /// Whether there are no filters at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Whether `key` was given (even with no values).
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The values of `key`, sorted; none when it was not given.
    pub fn values<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        self.fields
            .get(key)
            .into_iter()
            .flat_map(|values| values.iter().map(String::as_str))
    }

    /// Whether `key` was not given, or `matches` holds for one of its values (the values of a
    /// key are alternatives: `name=a` and `name=b` list both).
    pub fn any(&self, key: &str, matches: impl Fn(&str) -> bool) -> bool {
        match self.fields.get(key) {
            None => true,
            Some(values) => values.is_empty() || values.iter().any(|v| matches(v)),
        }
    }

    /// Refuses keys outside `accepted`, as moby's `Validate` (`invalid filter 'bogus'`).
    pub fn validate(&self, accepted: &[&str]) -> Result<(), FilterError> {
        match self.keys().find(|key| !accepted.contains(key)) {
            Some(key) => Err(FilterError::Invalid {
                key: key.to_owned(),
                value: None,
            }),
            None => Ok(()),
        }
    }

    /// A boolean filter (`dangling=true`), as moby's `GetBoolOrDefault`: `None` when absent;
    /// `true`/`1` or `false`/`0` (any case); anything else, or both at once, is an error.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(values) = self.fields.get(key) else {
            return Ok(None);
        };
        let has = |words: [&str; 2]| {
            values
                .iter()
                .any(|v| words.iter().any(|w| v.eq_ignore_ascii_case(w)))
        };
        match (has(["true", "1"]), has(["false", "0"])) {
            (true, false) => Ok(Some(true)),
            (false, true) => Ok(Some(false)),
            _ => Err(self.invalid(key)),
        }
    }

    /// Whether `labels` pass the `label` and `label!` filters: every `label` value (`key` or
    /// `key=value`) holds, and no `label!` value does.
    ///
    /// moby's prunes drop a `label!` match only when all `label!` values hold; berth keeps
    /// anything that any of them names (the same for the usual single `label!`).
    pub fn labels_match(&self, labels: &impl Labels) -> bool {
        self.values("label")
            .all(|filter| label_matches(labels, filter))
            && !self
                .values("label!")
                .any(|filter| label_matches(labels, filter))
    }

    /// The `until` filter as a point in time (a Go duration before `now`, a Unix time or a
    /// date; see [`parse_timestamp`]); `None` when absent. More than one value is an error.
    pub fn until(&self, now: SystemTime) -> Result<Option<Timestamp>, FilterError> {
        let mut values = self.values("until");
        let (Some(value), None) = (values.next(), values.next()) else {
            return if self.contains("until") {
                Err(self.invalid("until"))
            } else {
                Ok(None)
            };
        };
        parse_timestamp(value, now)
            .map(Some)
            .map_err(|_| self.invalid("until"))
    }

    /// `invalid filter 'key=v1,v2'`.
    fn invalid(&self, key: &str) -> FilterError {
        FilterError::Invalid {
            key: key.to_owned(),
            value: Some(self.values(key).collect::<Vec<_>>().join(",")),
        }
    }
}

impl From<&Filters> for HashMap<String, Vec<String>> {
    /// The plain map (`key → sorted values`), for services that have not yet adopted
    /// [`Filters`].
    fn from(filters: &Filters) -> Self {
        filters
            .fields
            .iter()
            .map(|(key, values)| (key.clone(), values.iter().cloned().collect()))
            .collect()
    }
}

/// Something with labels: the maps records keep them in.
pub trait Labels {
    /// The value of label `key`, if set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels> Labels for Option<L> {
    /// No labels at all: nothing is set.
    fn label(&self, key: &str) -> Option<&str> {
        self.as_ref().and_then(|labels| labels.label(key))
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

/// The one label matcher: `key` holds when the label is set (to anything), `key=value` when
/// it is set to exactly `value`.
pub fn label_matches(labels: &impl Labels, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.label(key) == Some(value),
        None => labels.label(filter).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn parse(json: &str) -> Filters {
        Filters::parse(json).expect("filters")
    }

    #[test]
    fn both_wire_forms_parse_alike() {
        // The exact query value the CLI sends for `ps --filter status=running --filter name=my`.
        let map = parse(r#"{"name":{"my":true},"status":{"running":true,"exited":false}}"#);
        let list = parse(r#"{"name":["my"],"status":["running","exited"]}"#);
        assert_eq!(map, list);
        assert_eq!(
            map.values("status").collect::<Vec<_>>(),
            ["exited", "running"]
        );
        assert_eq!(map.keys().collect::<Vec<_>>(), ["name", "status"]);
        assert!(parse("").is_empty());
        assert!(parse("  ").is_empty());
        assert!(matches!(
            Filters::parse(r#"{"status":"running"}"#),
            Err(FilterError::Json { .. })
        ));
        assert!(Filters::parse("{not json").is_err());
    }

    #[test]
    fn flags_round_trip_through_json() {
        let filters = Filters::from_flags(["a=b", "a=c", "label=k=v"]).expect("flags");
        assert_eq!(
            filters.to_json(),
            r#"{"a":{"b":true,"c":true},"label":{"k=v":true}}"#
        );
        assert_eq!(parse(&filters.to_json()), filters);
        assert_eq!(Filters::new().to_json(), "{}");
        let error = Filters::from_flags(["novalue"]).expect_err("no =");
        assert_eq!(error.to_string(), "invalid filter 'novalue'");
    }

    #[test]
    fn keys_are_validated_in_mobys_words() {
        let filters = parse(r#"{"bogus":["x"],"label":["a"]}"#);
        assert!(filters.validate(&["bogus", "label"]).is_ok());
        let error = filters.validate(&["label"]).expect_err("bogus");
        assert_eq!(error.to_string(), "invalid filter 'bogus'");
    }

    #[test]
    fn alternatives_within_a_key() {
        let filters = parse(r#"{"name":["a","b"],"driver":[]}"#);
        assert!(filters.any("name", |v| v == "b"));
        assert!(!filters.any("name", |v| v == "c"));
        assert!(filters.any("absent", |_| false));
        assert!(
            filters.any("driver", |_| false),
            "a key without values filters nothing"
        );
    }

    #[test]
    fn booleans() {
        assert_eq!(parse("{}").bool("dangling").expect("absent"), None);
        assert_eq!(
            parse(r#"{"dangling":["true"]}"#)
                .bool("dangling")
                .expect("t"),
            Some(true)
        );
        assert_eq!(
            parse(r#"{"dangling":["1"]}"#).bool("dangling").expect("1"),
            Some(true)
        );
        assert_eq!(
            parse(r#"{"dangling":["FALSE"]}"#)
                .bool("dangling")
                .expect("f"),
            Some(false)
        );
        for bad in [
            r#"{"dangling":["maybe"]}"#,
            r#"{"dangling":["true","false"]}"#,
            r#"{"dangling":[]}"#,
        ] {
            assert!(parse(bad).bool("dangling").is_err(), "{bad}");
        }
        assert_eq!(
            parse(r#"{"dangling":["maybe"]}"#)
                .bool("dangling")
                .expect_err("bad")
                .to_string(),
            "invalid filter 'dangling=maybe'"
        );
    }

    #[test]
    fn labels_all_hold_and_none_excluded() {
        let labels = HashMap::from([
            ("team".to_owned(), "a".to_owned()),
            ("x".to_owned(), String::new()),
        ]);
        assert!(label_matches(&labels, "team"));
        assert!(label_matches(&labels, "team=a"));
        assert!(!label_matches(&labels, "team=b"));
        assert!(label_matches(&labels, "x="));
        assert!(!label_matches(&labels, "other"));
        assert!(parse("{}").labels_match(&labels));
        assert!(parse(r#"{"label":["team","team=a"]}"#).labels_match(&labels));
        assert!(
            !parse(r#"{"label":["team","team=b"]}"#).labels_match(&labels),
            "every label must hold"
        );
        assert!(parse(r#"{"label!":["team=b"]}"#).labels_match(&labels));
        assert!(!parse(r#"{"label!":["team"]}"#).labels_match(&labels));
        assert!(!parse(r#"{"label!":["team=b","x"]}"#).labels_match(&labels));
        let btree: BTreeMap<String, String> = labels.clone().into_iter().collect();
        assert!(parse(r#"{"label":["team=a"]}"#).labels_match(&btree));
        let none: Option<&HashMap<String, String>> = None;
        assert!(!parse(r#"{"label":["team"]}"#).labels_match(&none));
        assert!(parse(r#"{"label!":["team"]}"#).labels_match(&none));
    }

    #[test]
    fn until_takes_durations_times_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        let until = |json: &str| parse(json).until(now);
        assert_eq!(until("{}").expect("absent"), None);
        let secs = |json: &str| until(json).expect("valid").expect("present").secs;
        assert_eq!(secs(r#"{"until":["1h30m"]}"#), 100_000 - 5_400);
        assert_eq!(secs(r#"{"until":["10m"]}"#), 100_000 - 600);
        assert_eq!(secs(r#"{"until":["2.5h"]}"#), 100_000 - 9_000);
        assert_eq!(secs(r#"{"until":["1700000000"]}"#), 1_700_000_000);
        assert_eq!(secs(r#"{"until":["2023-11-14T22:13:20Z"]}"#), 1_700_000_000);
        let error = until(r#"{"until":["soon"]}"#).expect_err("soon");
        assert_eq!(error.to_string(), "invalid filter 'until=soon'");
        assert!(
            until(r#"{"until":["1h","2h"]}"#).is_err(),
            "one until at most"
        );
    }

    #[test]
    fn the_plain_map_for_services_not_yet_moved() {
        let map = HashMap::from(&parse(r#"{"label":["b","a"]}"#));
        assert_eq!(map["label"], ["a", "b"]);
    }
}
