//! Where the daemon listens, and how it tells systemd about itself.
//!
//! - **Socket activation** (`sd_listen_fds(3)`): when `LISTEN_PID` is this process, the
//!   `LISTEN_FDS` descriptors from 3 on are listening sockets systemd opened (`berth.socket`),
//!   named by `LISTEN_FDNAMES`. `-H fd://` serves all of them, `-H fd://NAME` those with that
//!   name (or descriptor number); a `unix://` host that systemd already opened is served from
//!   its descriptor instead of being bound again; with no `-H` at all, the daemon serves what
//!   systemd passed, or else binds the default socket. A passed socket no `-H` names is served
//!   as well (its clients would otherwise wait forever). Adopted descriptors are
//!   made close-on-exec, so monitors never inherit them (nor `LISTEN_PID`'s meaning: it names
//!   the daemon).
//! - **Readiness** (`sd_notify(3)`): `READY=1` once every service is open and every socket
//!   listens, `RELOADING=1`/`READY=1` around a `SIGHUP` reload, `STOPPING=1` on the way
//!   out, sent to `NOTIFY_SOCKET` (a path, or `@` for an abstract address).
//! - **Bound sockets** get mode 0660 and the group of `--group` (default `berth`, when that
//!   group exists); a socket that a live daemon answers on is refused, a stale one replaced.
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_api::DEFAULT_SOCKET;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

use crate::config::{DaemonConfig, ListenAddress};
use crate::error::DaemonError;

/// A socket the daemon serves on.
#[derive(Debug)]
pub enum Listener {
    /// A unix socket.
    Unix {
        /// The listener.
        listener: tokio::net::UnixListener,
        /// Its path, when the daemon bound it (removed on the way out); `None` when systemd
        /// owns it.
        bound: Option<PathBuf>,
    },
    /// A TCP socket.
    Tcp(tokio::net::TcpListener),
}

/// One descriptor systemd passed.
#[derive(Debug)]
struct Passed {
    fd: OwnedFd,
    number: RawFd,
    name: String,
}

/// The listening sockets systemd passed to this process.
#[derive(Debug, Default)]
pub struct Activation {
    passed: Vec<Passed>,
}

impl Activation {
    /// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (empty unless they name this
    /// process) and adopts the descriptors.
    pub fn from_env() -> Activation {
        let var = |name: &str| std::env::var(name).ok();
        let ours = var("LISTEN_PID")
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(|pid| pid == std::process::id());
        let count = var("LISTEN_FDS")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if !ours || count == 0 {
            return Activation::default();
        }
        let names: Vec<String> = var("LISTEN_FDNAMES")
            .map(|n| n.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        let passed = crate::sys::adopt_listen_fds(count)
            .into_iter()
            .map(|(number, fd)| {
                let index = usize::try_from(number - crate::sys::LISTEN_FDS_START).unwrap_or(0);
                let name = names
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_owned());
                // Monitors and other children must not inherit the API sockets.
                let _ = nix::fcntl::fcntl(
                    &fd,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                );
                Passed { fd, number, name }
            })
            .collect();
        Activation { passed }
    }

    /// Whether systemd passed any socket.
    pub fn is_empty(&self) -> bool {
        self.passed.is_empty()
    }

    /// Takes the passed descriptors `pick` selects.
    fn take(&mut self, pick: impl Fn(&Passed) -> bool) -> Vec<Passed> {
        let (taken, kept) = std::mem::take(&mut self.passed).into_iter().partition(pick);
        self.passed = kept;
        taken
    }
}

/// The unix socket path a descriptor is bound to, if it is a unix socket.
fn unix_path(fd: &OwnedFd) -> Option<PathBuf> {
    let address: SockaddrStorage = nix::sys::socket::getsockname(fd.as_raw_fd()).ok()?;
    address.as_unix_addr()?.path().map(Path::to_path_buf)
}

/// Turns a passed descriptor into a listener (unix or TCP, by its address family).
fn listener_from(passed: Passed) -> Result<Listener, DaemonError> {
    let bad = |reason: String| DaemonError::Activation {
        reason: format!("descriptor {} ({}): {reason}", passed.number, passed.name),
    };
    let address: SockaddrStorage = nix::sys::socket::getsockname(passed.fd.as_raw_fd())
        .map_err(|e| bad(format!("not a socket: {e}")))?;
    let listening = nix::sys::socket::getsockopt(&passed.fd, nix::sys::socket::sockopt::AcceptConn)
        .unwrap_or(false);
    if !listening {
        return Err(bad("not a listening stream socket".into()));
    }
    match address.family() {
        Some(nix::sys::socket::AddressFamily::Unix) => {
            let std = std::os::unix::net::UnixListener::from(passed.fd);
            std.set_nonblocking(true).map_err(|e| bad(e.to_string()))?;
            let listener =
                tokio::net::UnixListener::from_std(std).map_err(|e| bad(e.to_string()))?;
            Ok(Listener::Unix {
                listener,
                bound: None,
            })
        }
        Some(nix::sys::socket::AddressFamily::Inet | nix::sys::socket::AddressFamily::Inet6) => {
            let std = std::net::TcpListener::from(passed.fd);
            std.set_nonblocking(true).map_err(|e| bad(e.to_string()))?;
            let listener =
                tokio::net::TcpListener::from_std(std).map_err(|e| bad(e.to_string()))?;
            Ok(Listener::Tcp(listener))
        }
        other => Err(bad(format!("unsupported address family {other:?}"))),
    }
}

/// The group id for the unix sockets: `--group` (a name or a number; it must exist), else
/// `berth` when that group exists, else none (the socket keeps root's group).
pub fn socket_group(config: &DaemonConfig, etc_group: &str) -> Result<Option<u32>, DaemonError> {
    match &config.group {
        Some(group) => group_id(etc_group, group)
            .or_else(|| group.parse().ok())
            .map(Some)
            .ok_or_else(|| DaemonError::GroupNotFound {
                group: group.clone(),
            }),
        None => Ok(group_id(etc_group, "berth")),
    }
}

/// The gid of `name` in an `/etc/group` file.
pub(crate) fn group_id(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// Opens every listener `config.hosts` asks for, using what systemd passed first; `gid` is
/// the bound unix sockets' group.
pub async fn open(
    config: &DaemonConfig,
    activation: &mut Activation,
    gid: Option<u32>,
) -> Result<Vec<Listener>, DaemonError> {
    let mut addresses = config.listen_addresses()?;
    if addresses.is_empty() {
        addresses.push(if activation.is_empty() {
            ListenAddress::Unix(PathBuf::from(DEFAULT_SOCKET))
        } else {
            ListenAddress::Fd(None)
        });
    }
    let mut out = Vec::new();
    for address in addresses {
        match address {
            ListenAddress::Fd(name) => {
                let taken = activation.take(|p| {
                    name.as_deref()
                        .is_none_or(|n| n == p.name || n == p.number.to_string())
                });
                if taken.is_empty() {
                    return Err(DaemonError::Activation {
                        reason: format!(
                            "-H fd://{} given, but systemd passed no such socket (LISTEN_FDS)",
                            name.unwrap_or_default()
                        ),
                    });
                }
                for passed in taken {
                    out.push(listener_from(passed)?);
                }
            }
            ListenAddress::Unix(path) => {
                let mut taken = activation.take(|p| unix_path(&p.fd).as_deref() == Some(&path));
                if let Some(passed) = taken.pop() {
                    out.push(listener_from(passed)?);
                } else {
                    clear_stale_socket(&path).await?;
                    let listener = bind_unix_with_group(&path, gid)?;
                    out.push(Listener::Unix {
                        listener,
                        bound: Some(path),
                    });
                }
            }
            ListenAddress::Tcp(host) => {
                let listener = tokio::net::TcpListener::bind(&host)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        host: format!("tcp://{host}"),
                        source,
                    })?;
                out.push(Listener::Tcp(listener));
            }
        }
    }
    // A socket systemd passed that no -H names is served too: its clients would wait forever.
    for left in std::mem::take(&mut activation.passed) {
        tracing::info!(fd = left.number, name = %left.name, "serving a socket systemd passed");
        out.push(listener_from(left)?);
    }
    Ok(out)
}

/// Refuses, before the daemon touches anything, a unix socket a live daemon answers on (one
/// systemd passed is not checked: systemd listens there for this daemon).
pub async fn check_free(config: &DaemonConfig, activation: &Activation) -> Result<(), DaemonError> {
    let passed: Vec<PathBuf> = activation
        .passed
        .iter()
        .filter_map(|p| unix_path(&p.fd))
        .collect();
    let mut addresses = config.listen_addresses()?;
    if addresses.is_empty() && activation.is_empty() {
        addresses.push(ListenAddress::Unix(PathBuf::from(DEFAULT_SOCKET)));
    }
    for address in addresses {
        if let ListenAddress::Unix(path) = address
            && !passed.contains(&path)
            && std::fs::symlink_metadata(&path).is_ok()
            && tokio::net::UnixStream::connect(&path).await.is_ok()
        {
            return Err(DaemonError::AlreadyRunning { path });
        }
    }
    Ok(())
}

/// Removes a socket left by a daemon that died, but refuses to steal a live one.
pub async fn clear_stale_socket(path: &Path) -> Result<(), DaemonError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(DaemonError::AlreadyRunning {
            path: path.to_owned(),
        });
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(DaemonError::Io {
            op: "remove stale socket",
            path: path.to_owned(),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// Binds the socket with mode 0660 and group `gid`.
pub fn bind_unix_with_group(
    path: &Path,
    gid: Option<u32>,
) -> Result<tokio::net::UnixListener, DaemonError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| DaemonError::Io { op, path, source }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|source| DaemonError::Bind {
        host: format!("unix://{}", path.display()),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io("chmod", path))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io("chown", path))?;
    }
    Ok(listener)
}

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`, …) when `NOTIFY_SOCKET` is
/// set; a no-op otherwise. Failures are logged, never fatal: the daemon serves either way.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = target.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &address)?;
        } else {
            socket.send_to(state.as_bytes(), Path::new(&target))?;
        }
        Ok(())
    })();
    if let Err(error) = sent {
        tracing::warn!(%error, state, "cannot notify the service manager");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_lookup() {
        let groups = "root:x:0:\nberth:x:997:alice\nberthy:x:5:\n";
        assert_eq!(group_id(groups, "berth"), Some(997));
        assert_eq!(group_id(groups, "root"), Some(0));
        assert_eq!(group_id(groups, "docker"), None);
        let mut config = DaemonConfig::default();
        assert_eq!(socket_group(&config, groups).expect("default"), Some(997));
        assert_eq!(socket_group(&config, "").expect("none"), None);
        config.group = Some("berthy".into());
        assert_eq!(socket_group(&config, groups).expect("named"), Some(5));
        config.group = Some("1234".into());
        assert_eq!(socket_group(&config, groups).expect("number"), Some(1234));
        config.group = Some("nosuch".into());
        assert!(matches!(
            socket_group(&config, groups),
            Err(DaemonError::GroupNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn stale_sockets_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("berth.sock");
        clear_stale_socket(&path).await.expect("nothing there");

        let listener = bind_unix_with_group(&path, None).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        assert!(matches!(
            clear_stale_socket(&path).await,
            Err(DaemonError::AlreadyRunning { .. })
        ));
        drop(listener);
        clear_stale_socket(&path).await.expect("stale");
        assert!(!path.exists());
    }

    #[test]
    fn no_activation_without_our_pid() {
        // LISTEN_PID is not this test process's: nothing is adopted.
        assert!(Activation::from_env().is_empty());
    }
}
