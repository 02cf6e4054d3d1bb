//! Writing file system entries into a tar stream, the way Docker's layers and exports carry
//! them: owner, mode (with setuid/setgid/sticky), mtime, `SCHILY.xattr.*` PAX records,
//! hard links as link entries (the second and later names of an inode), device nodes and FIFOs
//! with their numbers, and OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`). Sockets are skipped,
//! as Docker skips them. overlayfs' own `trusted.overlay.*` attributes never leave the host.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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
    pub(crate) fn linked_name(&self, meta: &Metadata) -> Option<&Path> {
        if meta.nlink() > 1 {
            self.links
                .get(&(meta.dev(), meta.ino()))
                .map(PathBuf::as_path)
        } else {
            None
        }
    }

    /// Appends the file at `source` (not followed if a symlink) as `name`. The content of a
    /// regular file is also copied to `copy`, when given (commit writes the snapshot from the
    /// same read).
    pub(crate) fn append(
        &mut self,
        source: &Path,
        meta: &Metadata,
        name: &Path,
        copy: Option<&mut dyn Write>,
    ) -> Result<Written, ImageError> {
        let file_type = meta.file_type();
        if file_type.is_socket() {
            return Ok(Written::Skipped);
        }
        let write_error = |source| ImageError::BuildLayer { source };
        if file_type.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let mut header = self.header(meta, tar::EntryType::Link);
                header.set_size(0);
                self.builder
                    .append_link(&mut header, name, &first)
                    .map_err(write_error)?;
                return Ok(Written::HardLink(first));
            }
            self.links.insert(key, name.to_path_buf());
        }
        self.write_xattrs(source, name)?;
        if file_type.is_dir() {
            let mut header = self.header(meta, tar::EntryType::Directory);
            header.set_size(0);
            self.builder
                .append_data(&mut header, dir_name(name), io::empty())
                .map_err(write_error)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(source).map_err(ImageError::fs("read link", source))?;
            let mut header = self.header(meta, tar::EntryType::Symlink);
            header.set_size(0);
            self.builder
                .append_link(&mut header, name, &target)
                .map_err(write_error)?;
        } else if file_type.is_file() {
            let mut header = self.header(meta, tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = fs::File::open(source).map_err(ImageError::fs("open", source))?;
            let mut reader = CopyingReader {
                inner: file,
                copy,
                remaining: meta.len(),
                copy_error: None,
            };
            let result = self.builder.append_data(&mut header, name, &mut reader);
            if let Some(e) = reader.copy_error.take() {
                return Err(ImageError::fs("write copy of", source)(e));
            }
            result.map_err(|e| ImageError::fs("archive", source)(e))?;
        } else {
            let kind = if file_type.is_char_device() {
                tar::EntryType::Char
            } else if file_type.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut header = self.header(meta, kind);
            header.set_size(0);
            if kind != tar::EntryType::Fifo {
                let rdev = meta.rdev();
                let (major, minor) = (
                    nix::sys::stat::major(rdev) as u32,
                    nix::sys::stat::minor(rdev) as u32,
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

    fn header(&self, meta: &Metadata, kind: tar::EntryType) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
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
