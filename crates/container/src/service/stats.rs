//! `stats`: samples of the container's cgroup (`crate::stats`).

use berth_api::models::ContainerStatsResponse;
use tokio::sync::mpsc;

use super::{ContainerService, Result};

impl ContainerService {
    /// `GET /containers/{id}/stats?stream=&one-shot=`: one sample a second while streaming.
    pub async fn stats(
        &self,
        reference: &str,
        stream: bool,
    ) -> Result<mpsc::Receiver<ContainerStatsResponse>> {
        let entry = self.lookup(reference)?;
        let (tx, rx) = mpsc::channel(4);
        let (cg, name) = {
            let rec = entry.rec.lock().await;
            (self.cgroup(&rec), format!("/{}", rec.name))
        };
        tokio::spawn(crate::stats::run(
            entry.id.clone(),
            name,
            cg,
            entry.life.subscribe(),
            stream,
            tx,
        ));
        Ok(rx)
    }
}
