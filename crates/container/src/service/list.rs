//! `ps` (list and its filters), `info`'s counts, and the image users `rmi` asks about.
use std::collections::HashMap;
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::ContainerSummary;

use super::entry::Entry;
use super::filters::{self, ListFilter};
use super::{ContainerService, Result, blocking};
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
    /// Filters (`status=running`, `label=a=b`, …), parsed by the API's one filter type.
    pub filters: Filters,
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
        Status::Running => match super::health::status_suffix(r.state.health.as_ref()) {
            Some(health) => format!("Up {} {health}", ago(&r.state.started_at)),
            None => format!("Up {}", ago(&r.state.started_at)),
        },
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
        let f = &options.filters;
        filters::check(f)?;
        let filter = ListFilter {
            filters: f,
            ancestors: f
                .values("ancestor")
                .filter_map(|a| self.images.resolve(a).ok().map(|i| i.id))
                .collect(),
            before: self.created_of(f.values("before").next())?,
            since: self.created_of(f.values("since").next())?,
        };
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut recs = Vec::with_capacity(entries.len());
        for e in entries {
            recs.push(e.rec.lock().await.clone());
        }
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let all = options.all || options.limit.is_some() || filter.wants_all();
        let mut out = Vec::new();
        let mut listed = Vec::new();
        for r in recs {
            if !all && !r.state.status.is_up() {
                continue;
            }
            if filter.matches(&r) && self.network_filters_match(&r, f) {
                out.push(self.summary(&r));
                listed.push(r);
            }
            if options.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        if options.size {
            let sizes = self.sizes(&listed).await?;
            for (summary, (rw, root_fs)) in out.iter_mut().zip(sizes) {
                summary.size_rw = Some(rw);
                summary.size_root_fs = Some(root_fs);
            }
        }
        Ok(out)
    }

    /// The `Created` time of the container a `before=`/`since=` filter names.
    fn created_of(&self, reference: Option<&str>) -> Result<Option<String>> {
        match reference {
            Some(r) => Ok(Some(self.lookup(r)?.created.clone())),
            None => Ok(None),
        }
    }

    /// Docker's `SizeRw` (bytes in the writable layer) and `SizeRootFs` (that plus the
    /// image's size) of each record, walked on a blocking thread.
    pub(super) async fn sizes(&self, recs: &[Record]) -> Result<Vec<(i64, i64)>> {
        let images = self.images.clone();
        let wanted: Vec<(String, String)> = recs
            .iter()
            .map(|r| (r.id.clone(), r.image_id.clone()))
            .collect();
        blocking(move || {
            wanted
                .iter()
                .map(|(id, image_id)| {
                    let rw = images
                        .rootfs(id, image_id)
                        .map(|d| berth_volume::service::dir_size(&d.upperdir))
                        .unwrap_or(0);
                    let image = images.resolve(image_id).map(|i| i.size).unwrap_or(0);
                    let rw = i64::try_from(rw).unwrap_or(i64::MAX);
                    (
                        rw,
                        rw.saturating_add(i64::try_from(image).unwrap_or(i64::MAX)),
                    )
                })
                .collect()
        })
        .await
        .map_err(ContainerError::from)
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
