//! `berth image bootstrap busybox`: a base image made offline from the host's static busybox.
//!
//! The layer is built as a tar in memory, deterministically (sorted entries, uid/gid 0, every
//! mtime and the config's `created` set to the busybox binary's mtime), so bootstrapping twice
//! from the same binary gives the same layer and the same image id.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use crate::config::RunConfig;
use crate::error::ImageError;

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
";

const GROUP: &str = "\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
user:x:1000:
";

/// The bootstrap layer and its creation time.
#[derive(Debug)]
pub(crate) struct BusyboxLayer {
    /// The uncompressed layer tar.
    pub tar: Vec<u8>,
    /// RFC3339, the busybox binary's mtime.
    pub created: String,
}

enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(&'static str),
}

/// Builds the layer tar from `busybox` (which must be statically linked: it runs alone in
/// the container).
pub(crate) fn busybox_layer(busybox: &Path) -> Result<BusyboxLayer, ImageError> {
    let binary = fs::read(busybox).map_err(ImageError::fs("read", busybox))?;
    let mtime = fs::metadata(busybox)
        .and_then(|meta| meta.modified())
        .map_err(ImageError::fs("stat", busybox))?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let applets = list_applets(busybox)?;

    let mut nodes: BTreeMap<PathBuf, Node> = BTreeMap::new();
    for dir in [
        "bin",
        "dev",
        "etc",
        "home",
        "proc",
        "root",
        "sys",
        "var",
        "var/spool",
        "var/spool/mail",
        "var/www",
    ] {
        nodes.insert(PathBuf::from(dir), Node::Dir(0o755));
    }
    nodes.insert(PathBuf::from("root"), Node::Dir(0o700));
    nodes.insert(PathBuf::from("tmp"), Node::Dir(0o1777));
    nodes.insert(
        PathBuf::from("etc/passwd"),
        Node::File(0o644, PASSWD.as_bytes().to_vec()),
    );
    nodes.insert(
        PathBuf::from("etc/group"),
        Node::File(0o644, GROUP.as_bytes().to_vec()),
    );
    for applet in &applets {
        nodes.insert(Path::new("bin").join(applet), Node::Symlink("busybox"));
    }
    nodes.insert(PathBuf::from("bin/busybox"), Node::File(0o755, binary));

    let mut builder = tar::Builder::new(Vec::new());
    let write_error = |source| ImageError::BuildLayer { source };
    for (path, node) in &nodes {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        match node {
            Node::Dir(mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, &[][..])
                    .map_err(write_error)?;
            }
            Node::File(mode, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, &data[..])
                    .map_err(write_error)?;
            }
            Node::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target)
                    .map_err(write_error)?;
            }
        }
    }
    let tar = builder.into_inner().map_err(write_error)?;
    let created = chrono::DateTime::from_timestamp(i64::try_from(mtime).unwrap_or(0), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(BusyboxLayer { tar, created })
}

/// The run config of the bootstrap image.
pub(crate) fn busybox_run_config() -> RunConfig {
    RunConfig {
        env: Some(vec![berth_fs::DEFAULT_PATH_ENV.to_owned()]),
        cmd: Some(vec!["sh".to_owned()]),
        ..RunConfig::default()
    }
}

/// `busybox --list`: one applet name per line. Names that are not plain file names are
/// skipped (they would not be valid paths in `bin/`).
fn list_applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let applets_error = |source| ImageError::BusyboxApplets {
        path: busybox.to_owned(),
        source,
    };
    let output = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(applets_error)?;
    if !output.status.success() {
        return Err(applets_error(std::io::Error::other(format!(
            "`--list` exited with {}",
            output.status
        ))));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout
        .lines()
        .map(str::trim)
        .filter(|name| {
            !name.is_empty()
                && *name != "busybox"
                && !name.contains('/')
                && *name != "."
                && *name != ".."
        })
        .map(str::to_owned)
        .collect())
}
