//! `rename` and `update`.

use berth_api::models::{ContainerUpdateBody, ContainerUpdateResponse, RestartPolicyNameEnum};

use super::{ContainerService, Result, blocking, conflict, invalid, rec_id_short};
use crate::store::{self};
use crate::{ContainerError, spec};

impl ContainerService {
    /// `POST /containers/{id}/rename?name=`.
    pub async fn rename(&self, reference: &str, new_name: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name).to_string();
        if !store::valid_name(&new_name) {
            return Err(invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let mut rec = entry.rec.lock().await;
        if rec.name == new_name {
            return Err(invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        {
            let mut idx = self.lock_index();
            if let Some(other) = idx.names.get(&new_name) {
                return Err(conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            idx.names.remove(&rec.name);
            idx.names.insert(new_name.clone(), rec.id.clone());
        }
        let old = std::mem::replace(&mut rec.name, new_name.clone());
        if let Err(error) = self.save(&entry, &rec).await {
            // The old name stays: the record on disk still has it.
            let mut idx = self.lock_index();
            idx.names.remove(&new_name);
            idx.names.insert(old.clone(), rec.id.clone());
            rec.name = old;
            return Err(error);
        }
        self.rename_in_networks(&rec).await;
        self.publish(&rec, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `POST /containers/{id}/update`.
    pub async fn update(
        &self,
        reference: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        let mut hc = rec.host_config.clone();
        macro_rules! take {
            ($($f:ident),*) => { $( if body.$f.is_some() { hc.$f = body.$f.clone(); } )* };
        }
        take!(
            memory,
            memory_swap,
            memory_reservation,
            nano_cpus,
            cpu_shares,
            cpu_period,
            cpu_quota,
            cpuset_cpus,
            pids_limit,
            restart_policy
        );
        // As dockerd's `UpdateContainer`: the docker CLI sends every field, a zero or empty
        // one means "unchanged".
        if let Some(m) = body.cpuset_mems.clone().filter(|m| !m.is_empty()) {
            hc.cpuset_mems = Some(m);
        }
        if let Some(p) = body.cpu_realtime_period.filter(|p| *p != 0) {
            hc.cpu_realtime_period = Some(p);
        }
        if let Some(r) = body.cpu_realtime_runtime.filter(|r| *r != 0) {
            hc.cpu_realtime_runtime = Some(r);
        }
        if body.nano_cpus.is_some_and(|n| n > 0) {
            hc.cpu_quota = None;
        }
        spec::validate_host_config(&hc)?;
        if rec.host_config.auto_remove.unwrap_or(false)
            && body.restart_policy.as_ref().is_some_and(|r| {
                !matches!(
                    r.name,
                    None | Some(RestartPolicyNameEnum::NO) | Some(RestartPolicyNameEnum::EMPTY)
                )
            })
        {
            return Err(invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        if rec.state.status.is_alive() {
            let res = spec::cgroup_resources(&hc);
            let cg = self.cgroup(&rec);
            blocking(move || cg.update(&res))
                .await?
                .map_err(|source| ContainerError::Update {
                    id: rec_id_short(&entry.id).to_string(),
                    source,
                })?;
        }
        let mut updated = rec.clone();
        updated.host_config = hc;
        // Limits already applied to a running container stay until its next start, where
        // the record's (unchanged) limits apply again.
        self.save(&entry, &updated).await?;
        *rec = updated;
        self.publish(&rec, "update", &[]);
        Ok(ContainerUpdateResponse {
            warnings: Some(vec![]),
        })
    }
}
