//! Writing file system entries into a tar stream, the way Docker's layers and exports carry
//! them: owner, mode (with setuid/setgid/sticky), mtime, `SCHILY.xattr.*` PAX records,
//! hard links as link entries (the second and later names of an inode), device nodes and FIFOs
//! with their numbers, and OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`). Sockets are skipped,
//! as Docker skips them. overlayfs' own `trusted.overlay.*` attributes never leave the host.
//!
//! Entries are read by descriptor: each is named by its parent directory's descriptor and its
//! name there (a walk of [`berth_fs::tree`]), so trees of any depth archive whole, and a
//! file's content is read only from the regular file the walk listed
//! ([`berth_fs::tree::open_regular`]).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use berth_fs::tree;
use nix::sys::stat::FileStat;

use crate::error::ImageError;

/// The overlayfs attribute namespace (whiteouts, opaque dirs, redirects, origins).
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// What an entry became in the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Written with its content (or as a directory, symlink, device).
    Entry,
    /// Written as a hard link to this earlier name.
    HardLink(PathBuf),
    /// Not representable (a socket): skipped.
    Skipped,
}

/// A tar stream under construction.
pub(crate) struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// (dev, ino) → first name written, for files with more than one link.
    links: HashMap<(u64, u64), PathBuf>,
    pax_serial: u64,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        Self {
            builder: tar::Builder::new(out),
            links: HashMap::new(),
            pax_serial: 0,
        }
    }

    /// For a file with several links: the name it was first written under, if it was.
    pub(crate) fn linked_name(&self, st: &FileStat) -> Option<&Path> {
        if st.st_nlink > 1 {
            self.links
                .get(&(st.st_dev, st.st_ino))
                .map(PathBuf::as_path)
        } else {
            None
        }
    }

    /// Appends the entry `entry` of directory `at` (not followed if a symlink), whose stat is
    /// `st`, as `name`. The content of a regular file is also copied to `copy`, when given
    /// (commit writes the snapshot from the same read).
    pub(crate) fn append(
        &mut self,
        at: BorrowedFd<'_>,
        entry: &OsStr,
        st: &FileStat,
        name: &Path,
        copy: Option<&mut dyn Write>,
    ) -> Result<Written, ImageError> {
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFSOCK {
            return Ok(Written::Skipped);
        }
        let write_error = |source| ImageError::BuildLayer { source };
        if kind == libc::S_IFREG && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let mut header = self.header(st, tar::EntryType::Link);
                header.set_size(0);
                self.builder
                    .append_link(&mut header, name, &first)
                    .map_err(write_error)?;
                return Ok(Written::HardLink(first));
            }
            self.links.insert(key, name.to_path_buf());
        }
        // The entry's own attributes (`l*` calls on /proc/self/fd/<dir>/<entry>).
        let source = tree::fd_path(at, Some(entry));
        self.write_xattrs(&source, name)?;
        if kind == libc::S_IFDIR {
            let mut header = self.header(st, tar::EntryType::Directory);
            header.set_size(0);
            self.builder
                .append_data(&mut header, dir_name(name), io::empty())
                .map_err(write_error)?;
        } else if kind == libc::S_IFLNK {
            let target = nix::fcntl::readlinkat(at, entry)
                .map_err(|errno| ImageError::fs("read link", name)(errno.into()))?;
            let mut header = self.header(st, tar::EntryType::Symlink);
            header.set_size(0);
            self.builder
                .append_link(&mut header, name, Path::new(&target))
                .map_err(write_error)?;
        } else if kind == libc::S_IFREG {
            let size = u64::try_from(st.st_size).unwrap_or(0);
            let mut header = self.header(st, tar::EntryType::Regular);
            header.set_size(size);
            let file = tree::open_regular(at, entry, st).map_err(ImageError::fs("open", name))?;
            let mut reader = CopyingReader {
                inner: file,
                copy,
                remaining: size,
                copy_error: None,
            };
            let result = self.builder.append_data(&mut header, name, &mut reader);
            if let Some(e) = reader.copy_error.take() {
                return Err(ImageError::fs("write copy of", name)(e));
            }
            result.map_err(|e| ImageError::fs("archive", name)(e))?;
        } else {
            let kind = match kind {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            };
            let mut header = self.header(st, kind);
            header.set_size(0);
            if kind != tar::EntryType::Fifo {
                let (major, minor) = (
                    nix::sys::stat::major(st.st_rdev) as u32,
                    nix::sys::stat::minor(st.st_rdev) as u32,
                );
                header.set_device_major(major).map_err(write_error)?;
                header.set_device_minor(minor).map_err(write_error)?;
            }
            self.builder
                .append_data(&mut header, name, io::empty())
                .map_err(write_error)?;
        }
        Ok(Written::Entry)
    }

    /// `.wh.<name>` hiding `name` of a lower layer.
    pub(crate) fn whiteout(&mut self, name: &Path) -> Result<(), ImageError> {
        let file = name
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.empty_file(&name.with_file_name(format!(".wh.{file}")))
    }

    /// `<dir>/.wh..wh..opq`: the directory hides everything of the layers below.
    pub(crate) fn opaque(&mut self, dir: &Path) -> Result<(), ImageError> {
        self.empty_file(&dir.join(".wh..wh..opq"))
    }

    fn empty_file(&mut self, name: &Path) -> Result<(), ImageError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(0);
        header.set_mtime(0);
        self.builder
            .append_data(&mut header, name, io::empty())
            .map_err(|source| ImageError::BuildLayer { source })
    }

    /// Ends the archive and hands back the writer.
    pub(crate) fn finish(self) -> Result<W, ImageError> {
        self.builder
            .into_inner()
            .map_err(|source| ImageError::BuildLayer { source })
    }

    fn header(&self, st: &FileStat, kind: tar::EntryType) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header
    }

    /// A PAX extended header with the entry's extended attributes, if it has any.
    fn write_xattrs(&mut self, source: &Path, name: &Path) -> Result<(), ImageError> {
        let names = match xattr::list(source) {
            Ok(names) => names,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) => return Ok(()),
            Err(e) => return Err(ImageError::fs("list extended attributes", source)(e)),
        };
        let mut records = Vec::new();
        for attr in names {
            let Some(attr) = attr.to_str() else { continue };
            if attr.starts_with(OVERLAY_XATTR_PREFIX) {
                continue;
            }
            let Some(value) = xattr::get(source, attr)
                .map_err(ImageError::fs("read extended attribute", source))?
            else {
                continue;
            };
            pax_record(&mut records, &format!("SCHILY.xattr.{attr}"), &value);
        }
        if records.is_empty() {
            return Ok(());
        }
        self.pax_serial += 1;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_mode(0o644);
        header.set_size(records.len() as u64);
        let base = name
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        // Like Go's archive/tar: a short synthetic name (ustar's 100 bytes are enough).
        let pax_name: String = format!("PaxHeaders.{}/{base}", self.pax_serial)
            .chars()
            .take(99)
            .collect();
        header
            .set_path(&pax_name)
            .map_err(|source| ImageError::BuildLayer { source })?;
        header.set_cksum();
        self.builder
            .append(&header, &records[..])
            .map_err(|source| ImageError::BuildLayer { source })
    }
}

/// Directories are named with a trailing slash, as tar(1) and Go write them.
fn dir_name(name: &Path) -> PathBuf {
    let mut text = name.as_os_str().to_owned();
    text.push("/");
    PathBuf::from(text)
}

/// One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1; // ' ' key '=' value '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Reads a file for the archive and writes what it read to `copy`; stops at the size the
/// header announced (a file growing meanwhile must not corrupt the stream).
struct CopyingReader<'a> {
    inner: fs::File,
    copy: Option<&'a mut dyn Write>,
    remaining: u64,
    copy_error: Option<io::Error>,
}

impl Read for CopyingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..limit])?;
        if n == 0 && limit > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was archived",
            ));
        }
        self.remaining -= n as u64;
        if let Some(copy) = self.copy.as_mut()
            && let Err(e) = copy.write_all(&buf[..n])
        {
            let message = e.to_string();
            self.copy_error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value_len in [0usize, 1, 5, 90, 95, 96, 97, 990, 995] {
            let mut out = Vec::new();
            pax_record(&mut out, "SCHILY.xattr.user.k", &vec![b'v'; value_len]);
            let text = String::from_utf8(out.clone()).expect("utf8");
            let (len, _) = text.split_once(' ').expect("len");
            assert_eq!(
                len.parse::<usize>().expect("number"),
                out.len(),
                "{value_len}"
            );
        }
    }
}
