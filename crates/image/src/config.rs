//! The image config document (`application/vnd.docker.container.image.v1+json`, which OCI's
//! image config is a subset of) and how berth writes new ones.
//!
//! A config's bytes are its identity: the image id is the sha256 of the bytes as stored, so a
//! stored config is never re-serialized. New configs are serialized through
//! `serde_json::Value`, whose maps are ordered, so the same content always gives the same bytes
//! (and the same id).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// Docker image config, the parts berth reads and writes; unknown fields are kept.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    /// Defaults for containers of this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// RFC3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// Everything else, kept verbatim (rootfs, history, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The container defaults an image carries (Docker's `config` object).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `uid[:gid]` or a user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `KEY=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Default command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<HashMap<String, String>>,
    /// `80/tcp` → {}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<HashMap<String, Value>>,
    /// `/data` → {}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<HashMap<String, Value>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `ONBUILD` triggers, stored for builds that use this image as a base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Everything else (`Healthcheck`, `Shell`, `Hostname`, …), kept verbatim.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ImageConfig {
    /// The layer digests (`rootfs.diff_ids`), bottom first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.other
            .get("rootfs")
            .and_then(|rootfs| rootfs.get("diff_ids"))
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The top-level `comment` (set by `import -m` and `commit -m`).
    pub fn comment(&self) -> Option<&str> {
        self.other.get("comment").and_then(Value::as_str)
    }

    /// The creation time as Unix seconds (0 when absent or unparsable).
    pub fn created_unix(&self) -> i64 {
        self.created
            .as_deref()
            .and_then(|created| chrono::DateTime::parse_from_rfc3339(created).ok())
            .map_or(0, |time| time.timestamp())
    }
}

/// Docker's name for the architecture berth was built for.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What a new one-layer-stack image needs besides its run config.
#[derive(Debug)]
pub(crate) struct NewConfig<'a> {
    pub run: &'a RunConfig,
    pub created: &'a str,
    pub diff_ids: &'a [String],
    /// The `history` entries, oldest first.
    pub history: Vec<Value>,
    /// Top-level `comment`.
    pub comment: Option<&'a str>,
    /// Top-level `author`.
    pub author: Option<&'a str>,
}

/// Serializes a new image config, deterministically.
pub(crate) fn serialize_new(new: &NewConfig<'_>) -> Vec<u8> {
    let mut other = Map::new();
    other.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": new.diff_ids }),
    );
    other.insert("history".into(), Value::Array(new.history.clone()));
    if let Some(comment) = new.comment {
        other.insert("comment".into(), Value::String(comment.to_owned()));
    }
    let config = ImageConfig {
        config: Some(new.run.clone()),
        created: Some(new.created.to_owned()),
        author: new.author.map(str::to_owned),
        architecture: host_architecture().to_owned(),
        os: "linux".to_owned(),
        other,
    };
    // Through Value: its maps are sorted, where RunConfig's HashMaps are not.
    let value = serde_json::to_value(&config).expect("an image config always serializes");
    serde_json::to_vec(&value).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unknown_fields_and_reads_rootfs() {
        let raw = r#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05.5Z",
            "config":{"Cmd":["sh"],"Healthcheck":{"Test":["NONE"]},"OnBuild":["RUN x"]},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]},"comment":"hi"}"#;
        let config: ImageConfig = serde_json::from_str(raw).expect("parses");
        assert_eq!(config.diff_ids(), ["sha256:aa", "sha256:bb"]);
        assert_eq!(config.comment(), Some("hi"));
        assert_eq!(config.created_unix(), 1_704_164_645);
        let run = config.config.as_ref().expect("config");
        assert_eq!(run.on_build.as_deref(), Some(&["RUN x".to_owned()][..]));
        assert_eq!(
            run.other.get("Healthcheck"),
            Some(&json!({"Test": ["NONE"]}))
        );
        let again: ImageConfig =
            serde_json::from_slice(&serde_json::to_vec(&config).expect("ser")).expect("de");
        assert_eq!(again, config);
    }

    #[test]
    fn new_configs_are_deterministic() {
        let mut labels = HashMap::new();
        for i in 0..20 {
            labels.insert(format!("k{i}"), format!("v{i}"));
        }
        let run = RunConfig {
            labels: Some(labels),
            ..RunConfig::default()
        };
        let diff_ids = ["sha256:aa".to_owned()];
        let new = NewConfig {
            run: &run,
            created: "2024-01-01T00:00:00Z",
            diff_ids: &diff_ids,
            history: vec![json!({"created": "2024-01-01T00:00:00Z"})],
            comment: Some("c"),
            author: None,
        };
        let first = serialize_new(&new);
        for _ in 0..5 {
            let run_again = run.clone();
            assert_eq!(
                serialize_new(&NewConfig {
                    run: &run_again,
                    history: new.history.clone(),
                    ..new
                }),
                first
            );
        }
        let parsed: ImageConfig = serde_json::from_slice(&first).expect("parses");
        assert_eq!(parsed.os, "linux");
        assert_eq!(parsed.diff_ids(), diff_ids);
    }
}
