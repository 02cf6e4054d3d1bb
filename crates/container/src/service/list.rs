//! `ps` (list and its filters), `info`'s counts, and the image users `rmi` asks about.
use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::ContainerSummary;

use super::entry::Entry;
use super::{ContainerService, Result, invalid};
use crate::ContainerError;
use crate::life::Life;
use crate::store::{Record, Status};

/// `ps` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the last N created (implies all).
    pub limit: Option<usize>,
    /// Compute SizeRw / SizeRootFs.
    pub size: bool,
    /// Filters, by key, each with its accepted values (`status` → [`running`]).
    pub filters: HashMap<String, Vec<String>>,
}

/// Counts for `docker info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Running containers.
    pub running: usize,
    /// Paused containers.
    pub paused: usize,
    /// Stopped (created, exited) containers.
    pub stopped: usize,
}

pub(super) fn label_matches(labels: Option<&HashMap<String, String>>, filter: &str) -> bool {
    let Some(labels) = labels else { return false };
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// Docker's `Up 5 minutes`, `Exited (0) 3 seconds ago`, `Created`.
pub(super) fn status_text(r: &Record) -> String {
    let ago = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| {
                berth_api::convention::human_duration(
                    chrono::Utc::now().signed_duration_since(t).num_seconds(),
                )
            })
            .unwrap_or_default()
    };
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(&r.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(&r.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

impl ContainerService {
    /// `GET /containers/json`.
    pub async fn list(&self, options: ListOptions) -> Result<Vec<ContainerSummary>> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut recs = Vec::with_capacity(entries.len());
        for e in entries {
            recs.push(e.rec.lock().await.clone());
        }
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let f = &options.filters;
        let ancestors: Vec<String> = f
            .get("ancestor")
            .into_iter()
            .flatten()
            .filter_map(|a| self.images.resolve(a).ok().map(|i| i.id))
            .collect();
        let created_of = |r: &str| -> Option<String> {
            let e = self.lookup(r).ok()?;
            e.rec.try_lock().ok().map(|r| r.created.clone())
        };
        let before = f
            .get("before")
            .and_then(|v| v.first())
            .map(|r| {
                created_of(r).ok_or_else(|| ContainerError::NotFound {
                    reference: r.clone(),
                })
            })
            .transpose()?;
        let since = f
            .get("since")
            .and_then(|v| v.first())
            .map(|r| {
                created_of(r).ok_or_else(|| ContainerError::NotFound {
                    reference: r.clone(),
                })
            })
            .transpose()?;
        for key in f.keys() {
            if ![
                "id", "name", "status", "label", "ancestor", "exited", "before", "since",
                "network", "volume", "health", "is-task", "expose", "publish",
            ]
            .contains(&key.as_str())
            {
                return Err(invalid(format!("invalid filter '{key}'")));
            }
        }
        for s in f.get("status").into_iter().flatten() {
            if ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&s.as_str())
            {
                return Err(invalid(format!("invalid filter 'status={s}'")));
            }
        }
        let all = options.all
            || options.limit.is_some()
            || f.contains_key("status")
            || f.contains_key("exited");
        let mut out = Vec::new();
        for r in recs {
            if !all && !r.state.status.is_alive() && r.state.status != Status::Restarting {
                continue;
            }
            let ok = f
                .get("id")
                .is_none_or(|v| v.iter().any(|p| r.id.starts_with(p.as_str())))
                && f.get("name")
                    .is_none_or(|v| v.iter().any(|n| r.name.contains(n.trim_start_matches('/'))))
                && f.get("status")
                    .is_none_or(|v| v.iter().any(|s| s == r.state.status.as_str()))
                && f.get("label")
                    .is_none_or(|v| v.iter().all(|l| label_matches(r.config.labels.as_ref(), l)))
                && f.get("ancestor").is_none_or(|v| {
                    ancestors.contains(&r.image_id)
                        || v.iter().any(|a| Some(a) == r.config.image.as_ref())
                })
                && f.get("exited").is_none_or(|v| {
                    r.state.status == Status::Exited
                        && v.iter()
                            .any(|c| c.parse::<i64>().ok() == Some(r.state.exit_code))
                })
                && f.get("volume").is_none_or(|v| {
                    v.iter().any(|x| {
                        r.mount_points
                            .iter()
                            .any(|m| m.name == *x || m.source == *x || m.destination == *x)
                    })
                })
                && before.as_ref().is_none_or(|b| r.created < *b)
                && since.as_ref().is_none_or(|s| r.created > *s)
                && self.network_filters_match(&r, f);
            if ok {
                out.push(self.summary(&r));
            }
            if options.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    pub(super) fn summary(&self, r: &Record) -> ContainerSummary {
        use berth_api::models::{
            ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
            ContainerSummaryStateEnum as S,
        };
        let state = match r.state.status {
            Status::Created => S::CREATED,
            Status::Running => S::RUNNING,
            Status::Paused => S::PAUSED,
            Status::Restarting => S::RESTARTING,
            Status::Removing => S::REMOVING,
            Status::Exited => S::EXITED,
            Status::Dead => S::DEAD,
        };
        let command = std::iter::once(r.path.as_str())
            .chain(r.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let (ports, networks) = self.summary_network(r);
        ContainerSummary {
            id: Some(r.id.clone()),
            names: Some(vec![format!("/{}", r.name)]),
            image: r.config.image.clone(),
            image_id: Some(r.image_id.clone()),
            command: Some(command),
            created: chrono::DateTime::parse_from_rfc3339(&r.created)
                .ok()
                .map(|t| t.timestamp()),
            ports: Some(ports),
            labels: Some(r.config.labels.clone().unwrap_or_default()),
            state: Some(state),
            status: Some(status_text(r)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: r.host_config.network_mode.clone(),
                annotations: None,
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(networks),
            }),
            mounts: Some(
                r.mount_points
                    .iter()
                    .map(berth_volume::MountPoint::to_api)
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// Container counts by state, for `info`.
    pub async fn counts(&self) -> Counts {
        let lives: Vec<Life> = self
            .lock_index()
            .by_id
            .values()
            .map(|e| e.life.borrow().clone())
            .collect();
        let mut c = Counts::default();
        for l in lives {
            match l.status {
                Status::Running | Status::Restarting => c.running += 1,
                Status::Paused => c.paused += 1,
                _ => c.stopped += 1,
            }
        }
        c
    }

    /// For every image id in use: one container using it (its id) and whether it runs.
    pub async fn image_users(&self) -> HashMap<String, (String, bool)> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut out: HashMap<String, (String, bool)> = HashMap::new();
        for e in entries {
            let r = e.rec.lock().await;
            let running = r.state.status.is_alive();
            let slot = out
                .entry(r.image_id.clone())
                .or_insert_with(|| (r.id.clone(), running));
            if running && !slot.1 {
                *slot = (r.id.clone(), true);
            }
        }
        out
    }
}
