//! Unix socket paths of any length.
//!
//! A unix socket address holds at most 107 bytes of path, but a run dir lives wherever the
//! daemon's `--exec-root` is (`<exec_root>/containers/<64 hex>/monitor.sock`). The socket
//! stays where it always was; only the name given to `bind`/`connect` is made short: a path
//! too long for an address is reached through a descriptor of its directory,
//! `/proc/self/fd/N/monitor.sock`, which the kernel resolves to the same directory. A daemon
//! of any version finds the sockets of monitors another one started.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The longest path bound or connected to as it is (`sun_path` less its NUL, with room).
const MAX_DIRECT: usize = 100;

/// A name for a socket path that fits in a unix socket address; holds the directory's
/// descriptor (when one is needed) as long as the name is in use.
#[derive(Debug)]
pub struct SocketName {
    name: PathBuf,
    dir: Option<File>,
    file_name: std::ffi::OsString,
}

impl SocketName {
    /// A short name for `path` (the path itself when short enough).
    pub fn new(path: &Path) -> io::Result<Self> {
        let file_name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a socket path"))?
            .to_owned();
        if path.as_os_str().len() <= MAX_DIRECT {
            return Ok(Self {
                name: path.to_path_buf(),
                dir: None,
                file_name,
            });
        }
        use std::os::unix::fs::OpenOptionsExt;
        let parent = path.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(parent)?;
        let name = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(&file_name);
        Ok(Self {
            name,
            dir: Some(dir),
            file_name,
        })
    }

    /// The name to bind or connect to, in this process.
    pub fn path(&self) -> &Path {
        &self.name
    }

    /// The name another process of the same mount namespace (e.g. an external runtime
    /// connecting to a console socket) uses while this one holds the name.
    pub fn for_others(&self) -> PathBuf {
        match &self.dir {
            None => self.name.clone(),
            Some(dir) => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                dir.as_raw_fd()
            ))
            .join(&self.file_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_socket_binds_and_connects() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("x".repeat(120)).join("containers");
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("monitor.sock");
        assert!(path.as_os_str().len() > 108);
        let listener = {
            let name = SocketName::new(&path).unwrap();
            assert!(name.path().as_os_str().len() < 108);
            std::os::unix::net::UnixListener::bind(name.path()).unwrap()
        };
        assert!(path.exists(), "the socket is where its path says");
        let name = SocketName::new(&path).unwrap();
        let _client = std::os::unix::net::UnixStream::connect(name.path()).unwrap();
        let other = name.for_others();
        assert!(other.starts_with(format!("/proc/{}/fd/", std::process::id())));
        let _again = std::os::unix::net::UnixStream::connect(&other).unwrap();
        listener.accept().unwrap();
        let short = t.path().join("s.sock");
        assert_eq!(SocketName::new(&short).unwrap().path(), short);
    }
}
