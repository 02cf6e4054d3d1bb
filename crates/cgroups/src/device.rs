//! Device access rules for the v1 `devices` controller, in the kernel's
//! `devices.allow`/`devices.deny` syntax (`c 1:3 rwm`).

use std::fmt;

/// The kind of device a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Every device (`a`); major, minor and access are ignored by the kernel.
    All,
    /// Character devices (`c`).
    Char,
    /// Block devices (`b`).
    Block,
}

/// One rule: allow or deny `access` (any of `r`, `w`, `m`) to matching devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (written to `devices.allow`) or deny (`devices.deny`).
    pub allow: bool,
    /// Which kind of device.
    pub kind: DeviceKind,
    /// Major number; `None` matches any (`*`).
    pub major: Option<u32>,
    /// Minor number; `None` matches any (`*`).
    pub minor: Option<u32>,
    /// Any of `r` (read), `w` (write), `m` (mknod).
    pub access: String,
}

impl DeviceRule {
    /// An allow rule for a character device.
    pub fn allow_char(major: Option<u32>, minor: Option<u32>, access: &str) -> Self {
        Self {
            allow: true,
            kind: DeviceKind::Char,
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// Docker's default rules: deny everything, then allow mknod of any device and use of
    /// null, zero, full, tty, random, urandom, the pts devices, ptmx and tun.
    pub fn docker_defaults() -> Vec<DeviceRule> {
        let deny_all = DeviceRule {
            allow: false,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: "rwm".to_string(),
        };
        let mknod_block = DeviceRule {
            allow: true,
            kind: DeviceKind::Block,
            major: None,
            minor: None,
            access: "m".to_string(),
        };
        vec![
            deny_all,
            Self::allow_char(None, None, "m"),
            mknod_block,
            Self::allow_char(Some(1), Some(3), "rwm"),
            Self::allow_char(Some(1), Some(5), "rwm"),
            Self::allow_char(Some(1), Some(7), "rwm"),
            Self::allow_char(Some(5), Some(0), "rwm"),
            Self::allow_char(Some(1), Some(8), "rwm"),
            Self::allow_char(Some(1), Some(9), "rwm"),
            Self::allow_char(Some(136), None, "rwm"),
            Self::allow_char(Some(5), Some(2), "rwm"),
            Self::allow_char(Some(10), Some(200), "rwm"),
        ]
    }
}

/// The kernel syntax, e.g. `c 136:* rwm` or `a`.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            // The kernel reads nothing after `a`.
            DeviceKind::All => return f.write_str("a"),
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        write!(f, "{kind} ")?;
        match self.major {
            Some(major) => write!(f, "{major}:")?,
            None => f.write_str("*:")?,
        }
        match self.minor {
            Some(minor) => write!(f, "{minor} ")?,
            None => f.write_str("* ")?,
        }
        f.write_str(&self.access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_render_in_kernel_syntax() {
        let lines: Vec<String> = DeviceRule::docker_defaults()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "a",
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm",
            ]
        );
        assert!(!DeviceRule::docker_defaults()[0].allow);
    }
}
