//! Capability sets of the container process. See
//! <https://man7.org/linux/man-pages/man7/capabilities.7.html>.
//!
//! Order matters: the bounding set is reduced while the process is still root (it needs
//! CAP_SETPCAP); PR_SET_KEEPCAPS keeps the permitted set across the switch to a non-root uid;
//! then effective, permitted, inheritable and ambient are set, in that order, so effective
//! is always a subset of permitted.
use std::io;
use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::sync::Failure;
use crate::{RuntimeError, Step};

/// The five sets, converted from the spec by the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapabilityPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<Capabilities>) -> Result<CapsHashSet, RuntimeError> {
    set.iter()
        .flatten()
        .map(|cap| {
            let name = serde_json::to_value(cap)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            Capability::from_str(&name).map_err(|_| RuntimeError::InvalidSpec {
                field: "process.capabilities",
                reason: format!("unknown capability {name}"),
            })
        })
        .collect()
}

fn failure(path: &str) -> Failure {
    Failure::io(
        Step::Capabilities,
        Path::new(path),
        &io::Error::last_os_error(),
    )
}

impl CapabilityPlan {
    pub(crate) fn new(caps: &LinuxCapabilities) -> Result<Self, RuntimeError> {
        Ok(CapabilityPlan {
            bounding: convert(caps.bounding())?,
            effective: convert(caps.effective())?,
            permitted: convert(caps.permitted())?,
            inheritable: convert(caps.inheritable())?,
            ambient: convert(caps.ambient())?,
        })
    }

    /// Drops every capability outside the bounding set. Capabilities the kernel does not
    /// know are skipped.
    pub(crate) fn drop_bounding(&self) -> Result<(), Failure> {
        for cap in caps::all() {
            if self.bounding.contains(&cap) {
                continue;
            }
            // Capabilities the kernel does not know fail the check and are skipped.
            if let Ok(true) = caps::has_cap(None, CapSet::Bounding, cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|_| failure("bounding"))?;
            }
        }
        Ok(())
    }

    /// Sets effective, permitted, inheritable and ambient.
    pub(crate) fn apply(&self) -> Result<(), Failure> {
        caps::set(None, CapSet::Effective, &self.effective).map_err(|_| failure("effective"))?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(|_| failure("permitted"))?;
        caps::set(None, CapSet::Inheritable, &self.inheritable)
            .map_err(|_| failure("inheritable"))?;
        // The kernel only raises an ambient capability that is both permitted and inheritable;
        // runc's default spec lists ambient caps it leaves out of inheritable, and runc skips
        // those. Raise what can be raised, one by one, and skip the rest the same way.
        for cap in &self.ambient {
            if self.permitted.contains(cap) && self.inheritable.contains(cap) {
                caps::raise(None, CapSet::Ambient, *cap).map_err(|_| failure("ambient"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_defaults_convert() {
        let spec = crate::spec::base_spec_for(false);
        let caps = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().clone())
            .expect("caps");
        let plan = CapabilityPlan::new(&caps).expect("plan");
        assert_eq!(plan.bounding.len(), 14);
        assert!(plan.effective.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(!plan.effective.contains(&Capability::CAP_SYS_ADMIN));
        assert!(plan.inheritable.is_empty() && plan.ambient.is_empty());
        // The mask Docker containers show as CapEff in /proc/self/status.
        let mask: u64 = plan.effective.iter().map(|c| c.bitmask()).sum();
        assert_eq!(mask, 0xa80425fb);
    }
}
