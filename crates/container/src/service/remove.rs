//! `rm` and `container prune`.
use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::ContainerPruneResponse;

use super::entry::Entry;
use super::list::label_matches;
use super::{ContainerService, Result, blocking, conflict, io_err, mounts};
use crate::store::Status;

impl ContainerService {
    /// `DELETE /containers/{id}?force=&v=`.
    pub async fn remove(&self, reference: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.lookup(reference)?;
        {
            let mut rec = entry.rec.lock().await;
            match rec.state.status {
                Status::Running | Status::Paused | Status::Restarting if !force => {
                    let what = if rec.state.status == Status::Paused {
                        "paused"
                    } else if rec.state.status == Status::Restarting {
                        "restarting"
                    } else {
                        "running"
                    };
                    return Err(conflict(format!(
                        "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                        rec.name
                    )));
                }
                Status::Removing => {
                    return Err(conflict(format!(
                        "removal of container {} is already in progress",
                        rec.id
                    )));
                }
                Status::Restarting => {
                    rec.state.status = Status::Exited;
                    entry.set_life(&rec, false, false);
                }
                _ => {}
            }
            if rec.state.status.is_alive() {
                rec.manually_stopped = true;
                rec.host_config.auto_remove = Some(false);
                let paused = rec.state.status == Status::Paused;
                drop(rec);
                if paused {
                    let _ = self.unpause(reference).await;
                }
                self.stop_entry(&entry, libc::SIGKILL, 0).await;
            }
        }
        self.remove_entry(&entry, volumes).await
    }

    pub(super) async fn remove_entry(
        &self,
        entry: &Arc<Entry>,
        remove_volumes: bool,
    ) -> Result<()> {
        let mut rec = entry.rec.lock().await;
        if entry.life.borrow().removed {
            return Ok(());
        }
        rec.state.status = Status::Removing;
        let (images, id, paths) = (self.images.clone(), rec.id.clone(), entry.paths.clone());
        blocking(move || {
            let _ = images.remove_rootfs(&id);
            let _ = std::fs::remove_dir_all(&paths.run_dir);
            std::fs::remove_dir_all(&paths.data_dir).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
        })
        .await?
        .map_err(io_err("remove", &entry.paths.data_dir))?;
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
    pub async fn prune(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<ContainerPruneResponse> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut deleted = Vec::new();
        for e in entries {
            let r = e.rec.lock().await.clone();
            if r.state.status.is_alive() || r.state.status == Status::Restarting {
                continue;
            }
            if !filters
                .get("label")
                .is_none_or(|v| v.iter().all(|l| label_matches(r.config.labels.as_ref(), l)))
            {
                continue;
            }
            if self.remove_entry(&e, false).await.is_ok() {
                deleted.push(r.id);
            }
        }
        Ok(ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(0),
        })
    }
}
