//! `berth image bootstrap debian:<suite>`: a Debian base image made with
//! `debootstrap --variant=minbase` from a Debian mirror (by default the host's own, read from
//! its apt sources), so a machine without a registry can still run Debian containers.
//!
//! debootstrap writes straight into a staging directory in the ingest area; that tree then
//! becomes the layer snapshot as it is (one rename, nothing unpacked again), and one walk over
//! it writes the layer tar into the content store.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::ImageError;

/// The mirror used when the host's apt sources name none.
pub const FALLBACK_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// The first Debian archive (not a security or updates one) in the apt sources under
/// `apt_dir` (`/etc/apt`): `sources.list`, `sources.list.d/*.list` (one-line form) and
/// `sources.list.d/*.sources` (deb822 form).
pub fn default_debian_mirror(apt_dir: &Path) -> Option<String> {
    let mut files = vec![apt_dir.join("sources.list")];
    if let Ok(entries) = fs::read_dir(apt_dir.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let usable = |uri: &str| {
        let uri = uri.trim_end_matches('/');
        (uri.starts_with("http://") || uri.starts_with("https://")) && uri.ends_with("/debian")
    };
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let name = file.to_string_lossy();
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let field = |key: &str| {
                    stanza.lines().find_map(|line| {
                        let (k, v) = line.split_once(':')?;
                        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_owned())
                    })
                };
                let is_deb =
                    field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
                let enabled = field("Enabled").is_none_or(|e| e != "no");
                if let (true, true, Some(uris)) = (is_deb, enabled, field("URIs"))
                    && let Some(uri) = uris.split_whitespace().find(|u| usable(u))
                {
                    return Some(uri.trim_end_matches('/').to_owned());
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines() {
                let mut words = line.split_whitespace();
                if words.next() != Some("deb") {
                    continue;
                }
                // `deb [options] uri suite ...`
                let uri = words.find(|w| !w.starts_with('[') && !w.ends_with(']'));
                if let Some(uri) = uri.filter(|u| usable(u)) {
                    return Some(uri.trim_end_matches('/').to_owned());
                }
            }
        }
    }
    None
}

/// Checks a suite name and a mirror URL before anything runs.
pub(crate) fn check_args(suite: &str, mirror: &str) -> Result<(), ImageError> {
    let suite_ok = !suite.is_empty()
        && suite
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !suite_ok {
        return Err(ImageError::InvalidBootstrap {
            problem: format!("invalid Debian suite {suite:?}"),
        });
    }
    let mirror_ok = (mirror.starts_with("http://") || mirror.starts_with("https://"))
        && !mirror.chars().any(char::is_whitespace);
    if !mirror_ok {
        return Err(ImageError::InvalidBootstrap {
            problem: format!("invalid mirror {mirror:?}: an http(s) URL is needed"),
        });
    }
    Ok(())
}

/// Runs debootstrap into `target`, passing each line it prints to `progress`. Whatever it
/// left mounted under `target` is unmounted, whether it succeeded or not.
pub(crate) fn debootstrap(
    suite: &str,
    mirror: &str,
    target: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let result = run_debootstrap(suite, mirror, target, progress);
    unmount_under(target);
    result?;
    // What Docker's Debian images leave out too: downloaded packages and package lists.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = fs::read_dir(target.join(dir)) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    Ok(())
}

fn run_debootstrap(
    suite: &str,
    mirror: &str,
    target: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let failed = |message: String| ImageError::Debootstrap {
        suite: suite.to_owned(),
        message,
    };
    let mut child = Command::new("sh")
        .args([
            "-c",
            "exec debootstrap --variant=minbase \"$@\" 2>&1",
            "sh",
            suite,
        ])
        .arg(target)
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run debootstrap: {e}")))?;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            progress(&line);
            tail.push(line);
            if tail.len() > 5 {
                tail.remove(0);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| failed(format!("waiting for debootstrap: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        let last = tail
            .iter()
            .rev()
            .find(|l| l.starts_with("E:"))
            .or(tail.last())
            .cloned()
            .unwrap_or_else(|| format!("debootstrap exited with {status}"));
        Err(failed(last))
    }
}

/// Unmounts (lazily, deepest first) every mount at or below `target`.
fn unmount_under(target: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(target))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %point.display(), error = %e, "cannot unmount after debootstrap");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_deb822_and_one_line_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let apt = dir.path();
        fs::create_dir_all(apt.join("sources.list.d")).expect("mkdir");
        assert_eq!(default_debian_mirror(apt), None);
        fs::write(
            apt.join("sources.list.d/debian.sources"),
            "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n\
             Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n\n\
             Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n",
        )
        .expect("write");
        assert_eq!(
            default_debian_mirror(apt).as_deref(),
            Some("http://mirror.example/debian")
        );
        fs::write(
            apt.join("sources.list"),
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bookworm main\n",
        )
        .expect("write");
        assert_eq!(
            default_debian_mirror(apt).as_deref(),
            Some("http://old.example/debian")
        );
    }

    #[test]
    fn suite_and_mirror_are_checked() {
        assert!(check_args("bookworm", "http://deb.debian.org/debian").is_ok());
        assert!(check_args("../x", "http://deb.debian.org/debian").is_err());
        assert!(check_args("bookworm", "file:///etc").is_err());
        assert!(check_args("bookworm", "http://a b").is_err());
    }
}
