//! The container state of the OCI runtime spec ("State"): what `berth oci state` prints and
//! what every hook reads on its stdin.
use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The version of the runtime spec berth implements, reported in every state.
pub(crate) const OCI_VERSION: &str = "1.2.0";

/// The OCI state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// `creating`, `created`, `running` or `stopped`.
    pub status: String,
    /// The init's pid in the runtime's pid namespace; 0 once stopped.
    pub pid: i32,
    pub bundle: PathBuf,
    pub annotations: HashMap<String, String>,
}

/// What a container's state says besides its status and pid, fixed at `create`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub id: String,
    pub bundle: PathBuf,
    pub annotations: HashMap<String, String>,
}

impl Identity {
    /// The state JSON with `status` and `pid`.
    pub(crate) fn state_json(&self, status: &str, pid: i32) -> Vec<u8> {
        let state = ContainerState {
            oci_version: OCI_VERSION.to_owned(),
            id: self.id.clone(),
            status: status.to_owned(),
            pid,
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        };
        // A struct of strings and maps always serializes.
        serde_json::to_vec(&state).unwrap_or_default()
    }
}
