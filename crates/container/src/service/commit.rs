//! `POST /commit`: pause the container (unless asked not to), have the image store turn its
//! writable layer and config into an image, unpause.

use std::path::PathBuf;

use berth_api::models::ContainerConfig;
use berth_image::{CommitRequest, ImageRecord, RunConfig};
use serde_json::Value;

use super::Result;
use super::{ContainerService, blocking};
use crate::ContainerError;
use crate::store::Status;

/// What `commit` was asked for, besides the container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `REPO[:TAG]`; none leaves the image dangling.
    pub reference: Option<String>,
    /// `-m`.
    pub comment: Option<String>,
    /// `-a`.
    pub author: Option<String>,
    /// `-c` lines.
    pub changes: Vec<String>,
    /// `-p` (Docker's default: true).
    pub pause: bool,
    /// The request body: config fields that override the container's.
    pub config: Option<Value>,
}

/// The files berth bind-mounts into every container: made by the engine, never committed (Docker
/// keeps them in a hidden init layer).
pub(super) const ENGINE_FILES: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Container config fields that describe one run, not an image: left out of the new config.
const RUN_ONLY: [&str; 10] = [
    "Hostname",
    "Domainname",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Image",
    "MacAddress",
];

impl ContainerService {
    /// `POST /commit`.
    pub async fn commit(&self, reference: &str, options: CommitOptions) -> Result<ImageRecord> {
        let entry = self.lookup(reference)?;
        let (id, config, status) = {
            let rec = entry.rec.lock().await;
            (rec.id.clone(), rec.config.clone(), rec.state.status)
        };
        let run = run_config(&config, options.config.as_ref())?;
        let created_by = config.cmd.clone().unwrap_or_default().join(" ");
        let request = CommitRequest {
            container_id: id.clone(),
            config: run,
            changes: options.changes,
            reference: options.reference,
            author: options.author,
            comment: options.comment,
            created_by,
            exclude: ENGINE_FILES.iter().map(PathBuf::from).collect(),
        };
        let paused = options.pause && status == Status::Running && self.pause(&id).await.is_ok();
        let images = self.images.clone();
        let result = blocking(move || images.commit(&request)).await;
        if paused && let Err(e) = self.unpause(&id).await {
            tracing::warn!(container_id = %id, "unpause after commit failed: {e}");
        }
        let record = result?.map_err(|source| ContainerError::Image { source })?;
        let rec = entry.rec.lock().await.clone();
        let mut extra = vec![("imageID", record.id.clone())];
        if let Some(tag) = record.repo_tags.first() {
            extra.push(("imageRef", tag.clone()));
        }
        self.publish(&rec, "commit", &extra);
        Ok(record)
    }
}

/// The container's config as an image's defaults, with the request body's fields on top.
fn run_config(config: &ContainerConfig, overrides: Option<&Value>) -> Result<RunConfig> {
    let invalid = |e: serde_json::Error| ContainerError::InvalidArgument {
        message: format!("invalid commit config: {e}"),
    };
    let mut value = serde_json::to_value(config).map_err(invalid)?;
    if let (Value::Object(base), Some(Value::Object(extra))) = (&mut value, overrides) {
        for (key, field) in extra {
            let empty = match field {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            };
            if !empty {
                base.insert(key.clone(), field.clone());
            }
        }
    }
    if let Value::Object(map) = &mut value {
        for key in RUN_ONLY {
            map.remove(key);
        }
        map.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(value).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_config_keeps_image_fields_and_applies_overrides() {
        let config = ContainerConfig {
            hostname: Some("abc".into()),
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["A=1".into()]),
            tty: Some(true),
            image: Some("busybox".into()),
            ..ContainerConfig::default()
        };
        let run = run_config(
            &config,
            Some(&serde_json::json!({"Cmd": ["top"], "Env": []})),
        )
        .expect("config");
        assert_eq!(run.cmd, Some(vec!["top".to_owned()]));
        assert_eq!(run.env, Some(vec!["A=1".to_owned()]));
        assert!(run.other.get("Hostname").is_none() && run.other.get("Tty").is_none());
        assert!(run.other.get("Image").is_none());
    }
}
