//! `pause` and `unpause` (the cgroup freezer).

use super::{ContainerService, Result, blocking, conflict};
use crate::ContainerError;
use crate::store::{self, Status};

impl ContainerService {
    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, reference: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        match rec.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(conflict(format!("Container {} is already paused", rec.id)));
            }
            _ => return Err(conflict(format!("Container {} is not running", rec.id))),
        }
        let cg = self.cgroup(&rec);
        blocking(move || cg.freeze())
            .await?
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        rec.state.status = Status::Paused;
        let _ = store::save(&entry.paths, &rec, false);
        entry.set_life(&rec, false, false);
        self.publish(&rec, "pause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, reference: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        if rec.state.status != Status::Paused {
            return Err(conflict(format!("Container {} is not paused", rec.id)));
        }
        let cg = self.cgroup(&rec);
        blocking(move || cg.thaw())
            .await?
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        rec.state.status = Status::Running;
        let _ = store::save(&entry.paths, &rec, false);
        entry.set_life(&rec, false, false);
        self.publish(&rec, "unpause", &[]);
        Ok(())
    }
}
