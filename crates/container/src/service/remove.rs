//! `rm` and `container prune`.
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::ContainerPruneResponse;

use super::entry::{Entry, RemovalClaim};
use super::{ContainerService, Result, blocking, io_err, mounts};
use crate::ContainerError;
use crate::store::{Paths, Status};

impl ContainerService {
    /// `DELETE /containers/{id}?force=&v=`. Of removals of one container at once, one
    /// removes it; the others are told it is in progress (409) or gone (404), as by dockerd.
    pub async fn remove(&self, reference: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.lookup(reference)?;
        let _claim = RemovalClaim::take(&entry)?;
        {
            let mut rec = entry.rec.lock().await;
            if entry.life.borrow().removed {
                return Err(ContainerError::NotFound {
                    reference: reference.to_owned(),
                });
            }
            rec.state.status.can_remove(force, &rec.name, &rec.id)?;
            if rec.state.status == Status::Restarting {
                rec.state.status = Status::Exited;
                entry.set_life(&rec, false, false);
            }
            if rec.state.status.is_alive() {
                rec.manually_stopped = true;
                entry.set_exit_on_next(true);
                rec.host_config.auto_remove = Some(false);
                let paused = rec.state.status == Status::Paused;
                drop(rec);
                let socket = entry.paths.socket();
                if self.monitor.refusal(&socket).is_some() {
                    // Nothing can be asked of a monitor this berth cannot speak to, and no
                    // exit would be reported: its container's processes (the cgroup) and the
                    // monitor are killed, and the container removed without waiting.
                    let rec = entry.rec.lock().await;
                    self.kill_leftovers(&entry, &rec).await;
                    if self.monitor.end_refused(&socket) {
                        tracing::warn!(container_id = %entry.id, "killed a monitor this berth cannot speak to (rm -f)");
                    }
                } else {
                    if paused && let Err(error) = self.unpause(reference).await {
                        // SIGKILL ends a frozen process too.
                        tracing::warn!(container_id = %entry.id, %error, "unpausing before rm -f failed");
                    }
                    self.stop_entry(&entry, libc::SIGKILL, 0).await;
                }
            }
        }
        self.remove_entry(&entry, volumes).await
    }

    /// Removes a stopped container: its writable layer, run dir, data dir, name, execs and
    /// volumes. If the writable layer cannot be removed, nothing is and the container stays.
    /// `NotFound` if it was removed meanwhile.
    pub(super) async fn remove_entry(
        &self,
        entry: &Arc<Entry>,
        remove_volumes: bool,
    ) -> Result<()> {
        let mut rec = entry.rec.lock().await;
        if entry.life.borrow().removed {
            return Err(ContainerError::NotFound {
                reference: entry.id.clone(),
            });
        }
        let before = rec.state.status;
        rec.state.status = Status::Removing;
        // Nothing of it may outlive it: a monitor its record did not know of (a daemon that
        // died during `start`), processes left in its cgroup, its networks.
        self.end_stray_run(entry, &rec).await;
        let (images, id, paths) = (self.images.clone(), rec.id.clone(), entry.paths.clone());
        let removed = blocking(move || remove_files(&images, &id, &paths)).await;
        if let Err(e) = removed.map_err(ContainerError::from).and_then(|r| r) {
            rec.state.status = before;
            return Err(e);
        }
        {
            let mut idx = self.lock_index();
            idx.by_id.remove(&rec.id);
            if idx.names.get(&rec.name) == Some(&rec.id) {
                idx.names.remove(&rec.name);
            }
        }
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.container_id != rec.id);
        {
            let (volumes, id, points) = (
                self.volumes.clone(),
                rec.id.clone(),
                rec.mount_points.clone(),
            );
            blocking(move || mounts::release_mounts(&volumes, &id, &points, remove_volumes))
                .await?;
        }
        self.publish(&rec, "destroy", &[]);
        entry.set_life(&rec, false, true);
        Ok(())
    }

    /// `POST /containers/prune`.
    pub async fn prune(&self, filters: Filters) -> Result<ContainerPruneResponse> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut deleted = Vec::new();
        for e in entries {
            let r = e.rec.lock().await.clone();
            if r.state.status.is_up() {
                continue;
            }
            if !filters.labels_match(&r.config.labels) {
                continue;
            }
            match self.remove_entry(&e, false).await {
                Ok(()) => deleted.push(r.id),
                // Removed meanwhile by someone else.
                Err(ContainerError::NotFound { .. }) => {}
                // Prune goes on with the others, as Docker's does; the failure is logged.
                Err(error) => {
                    tracing::warn!(container_id = %r.id, %error, "prune could not remove a container");
                }
            }
        }
        Ok(ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(0),
        })
    }
}

/// The files of a container, writable layer first (the step that can fail for a reason the
/// user can fix, e.g. a busy mount); a missing directory is already removed.
fn remove_files(images: &berth_image::ImageStore, id: &str, paths: &Paths) -> Result<()> {
    images.remove_rootfs(id)?;
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if let Err(error) = gone(std::fs::remove_dir_all(&paths.run_dir)) {
        // A stale run dir is removed at the next daemon start (it has no record then).
        tracing::warn!(container_id = %id, %error, "removing the run dir failed");
    }
    gone(std::fs::remove_dir_all(&paths.data_dir)).map_err(io_err("remove", &paths.data_dir))
}
