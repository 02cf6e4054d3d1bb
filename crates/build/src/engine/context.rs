//! The build context: the tar the client sends (plain, gzip, bzip2, xz or zstd), unpacked into
//! a directory of the builder's that is removed when the build ends. Entries that climb out
//! (`..`, absolute paths) refuse the whole context; every path is created through
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the context never leads a later entry out.
//! Regular files are hashed while they are written: `COPY` keys the cache on those digests
//! without reading the files again.
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use berth_fs::Root;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};

use super::error::BuildError;

/// An unpacked context.
#[derive(Debug)]
pub(crate) struct Context {
    /// The directory it is unpacked in.
    pub dir: PathBuf,
    /// The same, as a root every path is resolved in.
    pub root: Root,
    /// sha256 (hex) of each regular file, by its path relative to the root.
    pub digests: HashMap<PathBuf, String>,
    /// Bytes unpacked.
    pub size: u64,
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Err(error) = berth_fs::tree::remove_tree(&self.dir) {
            tracing::warn!(path = %self.dir.display(), %error, "removing a build context failed");
        }
    }
}

/// What compression a stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Detects the compression from the first bytes (moby's `DetectCompression`).
pub(crate) fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// `reader` decompressed as its first bytes say.
pub(crate) fn decompressed<'a>(reader: Box<dyn Read + 'a>) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let kind = detect(buffered.fill_buf()?);
    Ok(match kind {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// The entry's path relative to the root, or why it is refused.
pub(crate) fn entry_path(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for part in raw.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "Error processing tar file: {:?} is outside of the build context",
                    raw.display().to_string()
                ));
            }
        }
    }
    Ok(out)
}

fn invalid(message: impl Into<String>) -> BuildError {
    BuildError::InvalidContext {
        message: message.into(),
    }
}

/// Unpacks the (possibly compressed) context tar `input` into `dir` (created here), taking
/// at most `limit` bytes of file content.
#[allow(clippy::too_many_lines)] // One arm per tar entry type, each with its own checks.
pub(crate) fn unpack(input: &mut dyn Read, dir: &Path, limit: u64) -> Result<Context, BuildError> {
    std::fs::create_dir(dir).map_err(BuildError::io("create directory", dir))?;
    let root = Root::open(dir).map_err(BuildError::io("open", dir))?;
    let mut context = Context {
        dir: dir.to_path_buf(),
        root,
        digests: HashMap::new(),
        size: 0,
    };
    let stream =
        decompressed(Box::new(input)).map_err(|e| invalid(format!("read context: {e}")))?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .map_err(|e| invalid(format!("Error processing tar file: {e}")))?;
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("Error processing tar file: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| invalid(format!("Error processing tar file: {e}")))?
            .into_owned();
        let rel = entry_path(&raw).map_err(invalid)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let kind = header.entry_type();
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default().to_owned();
        let parent_fd = context
            .root
            .mkdir_all(parent, 0o755)
            .map_err(BuildError::io("create directory", dir.join(parent)))?;
        match kind {
            tar::EntryType::Directory => {
                context
                    .root
                    .mkdir_all(&rel, 0o755)
                    .map_err(BuildError::io("create directory", dir.join(&rel)))?;
                dirs.push((rel, mode, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let remaining = limit.saturating_sub(context.size);
                let (digest, size) =
                    write_file(&context.root, &rel, mode, mtime, &mut entry, remaining).map_err(
                        |e| match e {
                            WriteError::TooLarge => BuildError::ContextTooLarge { limit },
                            WriteError::Io(source) => BuildError::Io {
                                operation: "write",
                                path: dir.join(&rel),
                                source,
                            },
                        },
                    )?;
                context.size += size;
                context.digests.insert(rel, digest);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| invalid(format!("Error processing tar file: {e}")))?
                    .unwrap_or_default()
                    .into_owned();
                let _ = nix::unistd::unlinkat(
                    parent_fd.as_fd(),
                    name.as_os_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                nix::unistd::symlinkat(target.as_path(), parent_fd.as_fd(), name.as_os_str())
                    .map_err(|errno| {
                        BuildError::io("create symlink", dir.join(&rel))(errno.into())
                    })?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| invalid(format!("Error processing tar file: {e}")))?
                    .unwrap_or_default()
                    .into_owned();
                let source = entry_path(&target).map_err(invalid)?;
                // A copy of the linked file: the context only feeds COPY, which reads bytes.
                let fd = context
                    .root
                    .open_at(&source, OFlag::O_RDONLY | OFlag::O_NOFOLLOW, Mode::empty())
                    .map_err(BuildError::io("open", dir.join(&source)))?;
                let mut from = File::from(fd);
                let st = from
                    .metadata()
                    .map_err(BuildError::io("stat", dir.join(&source)))?;
                let remaining = limit.saturating_sub(context.size);
                let (digest, size) = write_file(
                    &context.root,
                    &rel,
                    std::os::unix::fs::PermissionsExt::mode(&st.permissions()) & 0o7777,
                    mtime,
                    &mut from,
                    remaining,
                )
                .map_err(|e| match e {
                    WriteError::TooLarge => BuildError::ContextTooLarge { limit },
                    WriteError::Io(source) => BuildError::Io {
                        operation: "write",
                        path: dir.join(&rel),
                        source,
                    },
                })?;
                context.size += size;
                context.digests.insert(rel, digest);
            }
            // Devices, FIFOs and the like have no place in a context.
            _ => {}
        }
    }
    // Modes and times of directories last: writing inside them changed their mtimes.
    for (rel, mode, mtime) in dirs.into_iter().rev() {
        if let Ok(fd) = context.root.open_at(
            &rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            let _ = nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode));
            let t = nix::sys::time::TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
            let _ = nix::sys::stat::futimens(fd.as_fd(), &t, &t);
        }
    }
    Ok(context)
}

enum WriteError {
    TooLarge,
    Io(io::Error),
}

fn write_file(
    root: &Root,
    rel: &Path,
    mode: u32,
    mtime: u64,
    input: &mut dyn Read,
    remaining: u64,
) -> Result<(String, u64), WriteError> {
    let fd = root
        .open_at(
            rel,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(WriteError::Io)?;
    let mut file = File::from(fd);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut size: u64 = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::Io(e)),
        };
        size += n as u64;
        if size > remaining {
            return Err(WriteError::TooLarge);
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(WriteError::Io)?;
    }
    nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| WriteError::Io(e.into()))?;
    let t = nix::sys::time::TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
    nix::sys::stat::futimens(file.as_fd(), &t, &t).map_err(|e| WriteError::Io(e.into()))?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Space a context may take in `dir`: `BERTH_BUILD_CONTEXT_LIMIT` when set, else what the
/// file system has free (minus 5%, so the build does not fill the disk).
pub(crate) fn space_limit(dir: &Path, configured: Option<u64>) -> u64 {
    let free = nix::sys::statvfs::statvfs(dir)
        .map(|st| st.blocks_available() * st.fragment_size())
        .unwrap_or(u64::MAX);
    let free = free - free / 20;
    configured.map_or(free, |c| c.min(free))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the name bytes directly as a hostile client would.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_and_hashes() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tar_of(&[("./a/b.txt", b"hello"), ("Dockerfile", b"FROM scratch\n")]);
        let ctx = unpack(&mut &data[..], &tmp.path().join("c"), 1 << 20).unwrap();
        assert_eq!(std::fs::read(ctx.dir.join("a/b.txt")).unwrap(), b"hello");
        assert_eq!(
            ctx.digests[Path::new("a/b.txt")],
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(ctx.size, 5 + 13);
        let dir = ctx.dir.clone();
        drop(ctx);
        assert!(!dir.exists());
    }

    #[test]
    fn refuses_escaping_entries() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../evil", "a/../../evil", "/abs"] {
            let data = tar_of(&[(bad, b"x")]);
            let err = unpack(&mut &data[..], &tmp.path().join("c"), 1 << 20).unwrap_err();
            assert!(
                err.to_string().contains("outside of the build context"),
                "{err}"
            );
            let _ = std::fs::remove_dir_all(tmp.path().join("c"));
        }
        assert!(!tmp.path().join("evil").exists());
    }

    #[test]
    fn refuses_more_than_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tar_of(&[("big", &[0u8; 4096])]);
        let err = unpack(&mut &data[..], &tmp.path().join("c"), 1000).unwrap_err();
        assert!(
            matches!(err, BuildError::ContextTooLarge { limit: 1000 }),
            "{err}"
        );
    }

    #[test]
    fn detects_compression() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar_of(&[("f", b"x")])).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(detect(&gz), Compression::Gzip);
        let tmp = tempfile::tempdir().unwrap();
        let ctx = unpack(&mut &gz[..], &tmp.path().join("c"), 1 << 20).unwrap();
        assert_eq!(std::fs::read(ctx.dir.join("f")).unwrap(), b"x");
        let zst = zstd::encode_all(&tar_of(&[("g", b"y")])[..], 1).unwrap();
        let ctx2 = unpack(&mut &zst[..], &tmp.path().join("d"), 1 << 20).unwrap();
        assert_eq!(std::fs::read(ctx2.dir.join("g")).unwrap(), b"y");
    }
}
