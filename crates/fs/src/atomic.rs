//! Atomic file replacement: the one way berth writes a metadata file, a record, a state file
//! or a download that must never be seen half-written.
//!
//! The bytes go to a temp file in the target's own directory (`.<name>.tmp-<unique>`, so the
//! rename never crosses a filesystem), then the temp file is renamed over the target: readers
//! see the old file or the new one, never a torn one. With [`Durability::Durable`] the data is
//! fsynced before the rename and the directory after it, so the new file also survives a
//! crash of the machine; [`Durability::Volatile`] skips both (caches, files the next start
//! rebuilds, files a user asked for and that docker's CLI does not sync either).
//!
//! A failed write removes its temp file. A crash between write and rename can leave one:
//! owners of a directory of records remove them at start-up with [`is_temp_name`].
//!
//! ```
//! use berth_fs::{Durability, write_atomic};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! write_atomic(&path, b"{}", Durability::Durable).unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}");
//! ```
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What marks a temp file of [`write_atomic`]: `.<name>` + this + a unique suffix.
const TEMP_MARKER: &str = ".tmp-";

/// Whether the new content must survive a crash of the machine, not only of berth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it.
    Durable,
    /// No fsync: a crash of berth leaves the old or the new file; a crash of the machine may
    /// leave an empty one.
    Volatile,
}

impl From<bool> for Durability {
    /// `true` is [`Durability::Durable`].
    fn from(durable: bool) -> Self {
        if durable {
            Self::Durable
        } else {
            Self::Volatile
        }
    }
}

/// A step of an atomic write that failed, with the file it failed on.
#[derive(Debug)]
pub struct WriteError {
    /// The step: `create`, `write`, `fsync`, `rename`, `fsync directory`.
    pub op: &'static str,
    /// The temp file, the target or the directory, as the step used it.
    pub path: PathBuf,
    /// The kernel's answer.
    pub source: io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for io::Error {
    /// The kernel's answer, with the step and the file in the message.
    fn from(error: WriteError) -> Self {
        io::Error::new(error.source.kind(), error.to_string())
    }
}

/// Replaces `path` with `bytes` atomically (see the module doc).
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    durability: impl Into<Durability>,
) -> Result<(), WriteError> {
    write_atomic_with(path, durability, |file| file.write_all(bytes))
}

/// [`write_atomic`] of a file only its owner may read (mode `0600` from its creation on):
/// records, OCI specs and other files that hold a user's secrets (`-e` values).
pub fn write_atomic_private(
    path: &Path,
    bytes: &[u8],
    durability: impl Into<Durability>,
) -> Result<(), WriteError> {
    write_atomic_mode(path, durability.into(), 0o600, |file| file.write_all(bytes))
}

/// Replaces `path` atomically with what `fill` writes into the (new, empty) temp file: for
/// content that is streamed rather than held in memory. An error of `fill` is reported as the
/// `write` step on the temp file, and nothing is renamed.
pub fn write_atomic_with(
    path: &Path,
    durability: impl Into<Durability>,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WriteError> {
    write_atomic_mode(path, durability.into(), 0o666, fill)
}

/// The atomic write, its temp file created with `mode` (less the umask).
fn write_atomic_mode(
    path: &Path,
    durability: Durability,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WriteError> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { op, path, source }
    };
    let name = path.file_name().ok_or_else(|| WriteError {
        op: "create",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = dir.join(temp_name(name));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)
            .map_err(failed("create", &temp))?;
        fill(&mut file).map_err(failed("write", &temp))?;
        if durability == Durability::Durable {
            file.sync_all().map_err(failed("fsync", &temp))?;
        }
        drop(file);
        fs::rename(&temp, path).map_err(failed("rename", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    if durability == Durability::Durable {
        sync_dir(dir).map_err(failed("fsync directory", dir))?;
    }
    Ok(())
}

/// fsyncs a directory, making the renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether a directory entry is a temp file [`write_atomic`] left behind (a crash between
/// write and rename): such files are never anyone's data and may be removed.
pub fn is_temp_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') && name.contains(TEMP_MARKER)
}

/// `.<name>.tmp-<pid>-<sequence>`: unique among this host's writers, so two writers of one
/// file never share a temp file (the last rename wins whole).
fn temp_name(name: &OsStr) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!(
        ".{}{TEMP_MARKER}{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("record.json");
        write_atomic(&path, b"old", Durability::Durable).expect("first");
        write_atomic(&path, b"new", false).expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![OsStr::new("record.json").to_owned()]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_removes_the_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.tar");
        write_atomic(&path, b"old", true).expect("first");
        let error = write_atomic_with(&path, true, |file| {
            file.write_all(b"partial")?;
            Err(io::Error::other("source went away"))
        })
        .expect_err("fill failed");
        assert_eq!(error.op, "write");
        assert!(is_temp_name(error.path.file_name().expect("name")));
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn errors_name_the_step_and_the_file() {
        let error = write_atomic(Path::new("/nonexistent-dir/x"), b"", true).expect_err("no dir");
        assert_eq!(error.op, "create");
        assert!(
            error
                .to_string()
                .starts_with("create /nonexistent-dir/.x.tmp-")
        );
        assert_eq!(io::Error::from(error).kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn private_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.v2.json");
        write_atomic_private(&path, b"{}", Durability::Volatile).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn temp_names_are_recognized() {
        let name = temp_name(OsStr::new("config.v2.json"));
        assert!(name.starts_with(".config.v2.json.tmp-"));
        assert!(is_temp_name(OsStr::new(&name)));
        assert!(!is_temp_name(OsStr::new("config.v2.json")));
        assert!(!is_temp_name(OsStr::new(".hidden")));
    }
}
