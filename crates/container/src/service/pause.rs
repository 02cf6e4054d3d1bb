//! `pause` and `unpause` (the cgroup freezer).
use super::{ContainerService, Result, blocking};
use crate::store::Status;

impl ContainerService {
    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, reference: &str) -> Result<()> {
        self.freeze(reference, true).await
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, reference: &str) -> Result<()> {
        self.freeze(reference, false).await
    }

    /// Freezes (`pause`) or thaws the container's cgroup and records it. If the record cannot
    /// be written the cgroup is put back, so the answer, the record and the processes agree.
    async fn freeze(&self, reference: &str, freeze: bool) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        let (next, action) = if freeze {
            rec.state.status.can_pause(&rec.id)?;
            (Status::Paused, "pause")
        } else {
            rec.state.status.can_unpause(&rec.id)?;
            (Status::Running, "unpause")
        };
        let cg = self.cgroup(&rec);
        {
            let cg = cg.clone();
            blocking(move || if freeze { cg.freeze() } else { cg.thaw() }).await??;
        }
        let mut updated = rec.clone();
        updated.state.status = next;
        if let Err(error) = self.save(&entry, &updated).await {
            let undone = blocking(move || if freeze { cg.thaw() } else { cg.freeze() }).await;
            if !matches!(undone, Ok(Ok(()))) {
                tracing::error!(container_id = %entry.id, "undoing a {action} whose record could not be written failed");
            }
            return Err(error);
        }
        *rec = updated;
        entry.set_life(&rec, false, false);
        self.publish(&rec, action, &[]);
        Ok(())
    }
}
