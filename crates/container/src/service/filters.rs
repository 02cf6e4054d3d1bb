//! `ps --filter` (and `container prune --filter label=`): the accepted keys and values, and
//! the match of one record. Pure: the references a filter names (`before`, `since`,
//! `ancestor`) are resolved by the caller; the network filters (`network`, `publish`,
//! `expose`) need the live endpoints and are matched in `network.rs`.
use berth_api::filters::Filters;

use super::{Result, invalid};
use crate::store::{Record, Status};

/// The filter keys `ps` accepts (Docker's list; `is-task` matches nothing here).
const KEYS: [&str; 14] = [
    "id", "name", "status", "label", "ancestor", "exited", "before", "since", "network", "volume",
    "health", "is-task", "expose", "publish",
];

/// Refuses unknown keys and unknown `status=` values, in Docker's words.
pub(super) fn check(filters: &Filters) -> Result<()> {
    filters.validate(&KEYS)?;
    for s in filters.values("status") {
        if !Status::ALL.iter().any(|st| st.as_str() == s) {
            return Err(invalid(format!("invalid filter 'status={s}'")));
        }
    }
    for h in filters.values("health") {
        if !["starting", "healthy", "unhealthy", "none"].contains(&h) {
            return Err(invalid(format!(
                "Unrecognised filter value for health: {h}"
            )));
        }
    }
    Ok(())
}

/// `ps` filters with their references resolved.
#[derive(Debug)]
pub(super) struct ListFilter<'a> {
    /// The filters as the client sent them.
    pub(super) filters: &'a Filters,
    /// Image ids of the `ancestor=` references.
    pub(super) ancestors: Vec<String>,
    /// `Created` time of the `before=` container.
    pub(super) before: Option<String>,
    /// `Created` time of the `since=` container.
    pub(super) since: Option<String>,
}

impl<'a> ListFilter<'a> {
    /// Filters with no references to resolve (`before`, `since`, `ancestor` match nothing
    /// extra).
    #[cfg(test)]
    fn new(filters: &'a Filters) -> Self {
        Self {
            filters,
            ancestors: Vec::new(),
            before: None,
            since: None,
        }
    }

    /// Whether `ps` without `-a` still lists stopped containers (a status filter asks for
    /// them).
    pub(super) fn wants_all(&self) -> bool {
        self.filters.contains("status") || self.filters.contains("exited")
    }

    /// Whether `r` passes every filter but the network ones.
    pub(super) fn matches(&self, r: &Record) -> bool {
        let f = self.filters;
        f.any("id", |p| r.id.starts_with(p))
            && f.any("name", |n| r.name.contains(n.trim_start_matches('/')))
            && f.any("status", |s| s == r.state.status.as_str())
            && f.any("health", |h| h == super::health::filter_value(r))
            && f.labels_match(&r.config.labels)
            && f.any("ancestor", |a| {
                self.ancestors.contains(&r.image_id) || Some(a) == r.config.image.as_deref()
            })
            && (!f.contains("exited")
                || r.state.status == Status::Exited
                    && f.any("exited", |c| {
                        c.parse::<i64>().ok() == Some(r.state.exit_code)
                    }))
            && f.any("volume", |x| {
                r.mount_points
                    .iter()
                    .any(|m| m.name == x || m.source == x || m.destination == x)
            })
            && self.before.as_ref().is_none_or(|b| r.created < *b)
            && self.since.as_ref().is_none_or(|s| r.created > *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let mut f = Filters::new();
        for (k, v) in pairs {
            f.add(*k, *v);
        }
        f
    }

    fn record(id: &str, name: &str, status: Status, exit_code: i64, created: &str) -> Record {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "created": created, "path": "true", "args": [],
            "config": {"Image": "busybox", "Labels": {"app": "web", "tier": "front"}},
            "host_config": {}, "image_id": "sha256:bb",
        }))
        .expect("a minimal record decodes");
        r.state.status = status;
        r.state.exit_code = exit_code;
        r
    }

    #[test]
    fn unknown_keys_and_statuses_are_refused() {
        assert!(check(&filters(&[("status", "running"), ("label", "a")])).is_ok());
        assert_eq!(
            check(&filters(&[("colour", "red")]))
                .unwrap_err()
                .to_string(),
            "invalid filter 'colour'"
        );
        assert_eq!(
            check(&filters(&[("status", "sleeping")]))
                .unwrap_err()
                .to_string(),
            "invalid filter 'status=sleeping'"
        );
    }

    #[test]
    fn records_match_each_filter() {
        let web = record(
            "abc123",
            "web-1",
            Status::Running,
            0,
            "2026-01-02T00:00:00Z",
        );
        let job = record("def456", "job", Status::Exited, 3, "2026-01-03T00:00:00Z");
        let sees = |pairs: &[(&str, &str)]| {
            let f = filters(pairs);
            let lf = ListFilter::new(&f);
            [&web, &job]
                .iter()
                .filter(|r| lf.matches(r))
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(sees(&[]), ["web-1", "job"]);
        assert_eq!(sees(&[("id", "abc")]), ["web-1"]);
        assert_eq!(sees(&[("name", "/web")]), ["web-1"]);
        assert_eq!(sees(&[("status", "exited")]), ["job"]);
        assert_eq!(
            sees(&[("status", "exited"), ("status", "running")]),
            ["web-1", "job"]
        );
        assert_eq!(sees(&[("exited", "3")]), ["job"]);
        assert!(
            sees(&[("exited", "0")]).is_empty(),
            "only exited containers have exit codes"
        );
        assert_eq!(
            sees(&[("label", "app=web"), ("label", "tier")]),
            ["web-1", "job"]
        );
        assert!(sees(&[("label", "app=web"), ("label", "tier=back")]).is_empty());
        assert_eq!(sees(&[("ancestor", "busybox")]), ["web-1", "job"]);
        assert!(sees(&[("volume", "/data")]).is_empty());
        let f = Filters::new();
        let timed = ListFilter {
            before: Some("2026-01-03T00:00:00Z".into()),
            ..ListFilter::new(&f)
        };
        assert!(timed.matches(&web) && !timed.matches(&job));
        let timed = ListFilter {
            since: Some("2026-01-02T00:00:00Z".into()),
            ..ListFilter::new(&f)
        };
        assert!(!timed.matches(&web) && timed.matches(&job));
    }
}
