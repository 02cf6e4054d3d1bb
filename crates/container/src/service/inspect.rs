//! `inspect`.
use std::collections::HashMap;

use berth_api::models::{ContainerInspectResponse, HostConfig};

use super::entry::Entry;
use super::{ContainerService, Result};
use crate::store::{Record, Status};

/// The host config as dockerd reports it: the runtime by name (the default, `berth`, when the
/// request named none), and the paths masked and made read-only (Docker's defaults unless
/// privileged), which dockerd fills in at create.
fn inspected_host_config(hc: &HostConfig) -> HostConfig {
    let mut hc = hc.clone();
    if hc.runtime.as_deref().is_none_or(str::is_empty) {
        hc.runtime = Some("berth".into());
    }
    let privileged = hc.privileged == Some(true);
    let defaults =
        |paths: &[&str]| (!privileged).then(|| paths.iter().map(|p| (*p).to_owned()).collect());
    if hc.masked_paths.is_none() {
        hc.masked_paths = defaults(&berth_runtime::MASKED_PATHS);
    }
    if hc.readonly_paths.is_none() {
        hc.readonly_paths = defaults(&berth_runtime::READONLY_PATHS);
    }
    hc
}

/// overlay2's `GraphDriver.Data`. The merged tree is mounted inside the container's own mount
/// namespace, not on the host, so `MergedDir` is its root as the host sees it,
/// `/proc/<pid>/root`, while the container runs (volumes and `/proc` show there too), and
/// absent when it does not.
fn graph_driver_data(dirs: &berth_image::RootfsDirs, pid: i64) -> HashMap<String, String> {
    let lower = dirs
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut data = HashMap::from([
        ("LowerDir".to_string(), lower),
        ("UpperDir".to_string(), dirs.upperdir.display().to_string()),
        ("WorkDir".to_string(), dirs.workdir.display().to_string()),
    ]);
    if pid > 0 {
        data.insert("MergedDir".to_string(), format!("/proc/{pid}/root"));
    }
    data
}

impl ContainerService {
    /// `GET /containers/{id}/json?size=`.
    pub async fn inspect(&self, reference: &str, size: bool) -> Result<ContainerInspectResponse> {
        let entry = self.lookup(reference)?;
        let r = entry.rec.lock().await.clone();
        let mut resp = self.inspect_record(&entry, &r);
        if size {
            let sizes = self.sizes(std::slice::from_ref(&r)).await?;
            if let Some((rw, root_fs)) = sizes.first() {
                resp.size_rw = Some(*rw);
                resp.size_root_fs = Some(*root_fs);
            }
        }
        Ok(resp)
    }

    pub(super) fn inspect_record(&self, entry: &Entry, r: &Record) -> ContainerInspectResponse {
        use berth_api::models::{ContainerState, ContainerStateStatusEnum as S, DriverData};
        let status = match r.state.status {
            Status::Created => S::CREATED,
            Status::Running => S::RUNNING,
            Status::Paused => S::PAUSED,
            Status::Restarting => S::RESTARTING,
            Status::Removing => S::REMOVING,
            Status::Exited => S::EXITED,
            Status::Dead => S::DEAD,
        };
        let exec_ids: Vec<String> = self
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container_id == r.id)
            .map(|e| e.id.clone())
            .collect();
        let graph = self
            .images
            .rootfs(&r.id, &r.image_id)
            .ok()
            .map(|d| DriverData {
                name: "overlay2".into(),
                data: graph_driver_data(&d, r.state.pid),
            });
        let mounts = r
            .mount_points
            .iter()
            .map(berth_volume::MountPoint::to_api)
            .collect();
        ContainerInspectResponse {
            id: Some(r.id.clone()),
            created: Some(r.created.clone()),
            path: Some(r.path.clone()),
            args: Some(r.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(matches!(r.state.status, Status::Running | Status::Paused)),
                paused: Some(r.state.status == Status::Paused),
                restarting: Some(r.state.status == Status::Restarting),
                oom_killed: Some(r.state.oom_killed),
                dead: Some(r.state.status == Status::Dead),
                pid: Some(r.state.pid),
                exit_code: Some(r.state.exit_code),
                error: Some(r.state.error.clone()),
                started_at: Some(r.state.started_at.clone()),
                finished_at: Some(r.state.finished_at.clone()),
                health: r.state.health.clone(),
            }),
            image: Some(r.image_id.clone()),
            resolv_conf_path: Some(
                entry
                    .paths
                    .data_dir
                    .join("resolv.conf")
                    .display()
                    .to_string(),
            ),
            hostname_path: Some(entry.paths.data_dir.join("hostname").display().to_string()),
            hosts_path: Some(entry.paths.data_dir.join("hosts").display().to_string()),
            log_path: Some(crate::log_driver::inspect_log_path(
                &entry.paths.log(&r.id),
                r.host_config.log_config.as_ref(),
            )),
            name: Some(format!("/{}", r.name)),
            restart_count: Some(r.restart_count),
            driver: Some("overlay2".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            host_config: Some(inspected_host_config(&r.host_config)),
            graph_driver: graph,
            mounts: Some(mounts),
            config: Some(r.config.clone()),
            network_settings: Some(self.network_settings(
                r,
                if r.state.pid > 0 {
                    format!("/proc/{}/ns/net", r.state.pid)
                } else {
                    String::new()
                },
            )),
            ..Default::default()
        }
    }
}
