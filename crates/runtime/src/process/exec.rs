//! Finding and executing the container's program, with Docker's (Go's `exec.LookPath`)
//! rules and messages, so `docker run` users see the errors they know.
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::sync::ExecFailure;

/// Exit code when the program does not exist.
const NOT_FOUND: i32 = 127;
/// Exit code when it exists but cannot be run.
const CANNOT_INVOKE: i32 = 126;

fn failure(arg0: &str, reason: &str, exit_code: i32) -> ExecFailure {
    ExecFailure {
        message: format!("exec: {arg0:?}: {reason}"),
        exit_code,
    }
}

/// Go's error text for an errno: strerror, first letter lower-cased.
fn go_errno_text(errno: nix::Error) -> String {
    let text = errno.desc();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Checks that `path` (under `root`) is an executable regular file.
fn check_executable(root: &Path, path: &Path, arg0: &str) -> Result<(), ExecFailure> {
    let host_path = root.join(path.strip_prefix("/").unwrap_or(path));
    let metadata = match std::fs::metadata(&host_path) {
        Ok(metadata) => metadata,
        Err(err) => {
            let errno = nix::Error::from_raw(err.raw_os_error().unwrap_or(libc::ENOENT));
            let code = if errno == nix::Error::EACCES {
                CANNOT_INVOKE
            } else {
                NOT_FOUND
            };
            return Err(failure(
                arg0,
                &format!("stat {}: {}", path.display(), go_errno_text(errno)),
                code,
            ));
        }
    };
    if metadata.is_dir() {
        return Err(failure(arg0, "is a directory", CANNOT_INVOKE));
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err(failure(arg0, "permission denied", CANNOT_INVOKE));
    }
    Ok(())
}

/// Resolves `arg0` like Go's `exec.LookPath` with `path_var` as `$PATH`, looking at files
/// under `root` (`/` in the container; a temp dir in tests).
pub(crate) fn lookup(root: &Path, arg0: &str, path_var: &str) -> Result<PathBuf, ExecFailure> {
    if arg0.contains('/') {
        let path = PathBuf::from(arg0);
        check_executable(root, &path, arg0)?;
        return Ok(path);
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if check_executable(root, &candidate, arg0).is_ok() {
            return Ok(candidate);
        }
    }
    Err(failure(
        arg0,
        "executable file not found in $PATH",
        NOT_FOUND,
    ))
}

/// Execs `program` (found by [`lookup`]); returns only on failure.
pub(crate) fn execute(
    arg0: &str,
    program: &Path,
    argv: &[CString],
    env: &[CString],
) -> ExecFailure {
    let Ok(program) = CString::new(program.as_os_str().as_encoded_bytes()) else {
        return failure(arg0, "invalid argument", CANNOT_INVOKE);
    };
    let errno = match nix::unistd::execve(&program, argv, env) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    let code = if errno == nix::Error::ENOENT {
        NOT_FOUND
    } else {
        CANNOT_INVOKE
    };
    failure(arg0, &go_errno_text(errno), code)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(root.path().join("bin")).expect("mkdir");
        fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        fs::create_dir_all(root.path().join("tmp")).expect("mkdir");
        fs::write(root.path().join("bin/sh"), "").expect("write");
        fs::set_permissions(
            root.path().join("bin/sh"),
            fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        fs::write(root.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").expect("write");
        root
    }

    #[test]
    fn finds_programs_on_path() {
        let root = rootfs();
        assert_eq!(
            lookup(root.path(), "sh", "/usr/bin:/bin").expect("found"),
            Path::new("/bin/sh")
        );
        assert_eq!(
            lookup(root.path(), "/bin/sh", "").expect("found"),
            Path::new("/bin/sh")
        );
    }

    #[test]
    fn docker_messages_and_codes() {
        let root = rootfs();
        let cases = [
            (
                "nosuch",
                "exec: \"nosuch\": executable file not found in $PATH",
                127,
            ),
            (
                "/etc/passwd",
                "exec: \"/etc/passwd\": permission denied",
                126,
            ),
            ("/tmp", "exec: \"/tmp\": is a directory", 126),
            (
                "/nonexistent",
                "exec: \"/nonexistent\": stat /nonexistent: no such file or directory",
                127,
            ),
        ];
        for (arg0, message, code) in cases {
            let failure = lookup(root.path(), arg0, "/bin").expect_err(arg0);
            assert_eq!(
                (failure.message.as_str(), failure.exit_code),
                (message, code)
            );
        }
    }

    #[test]
    fn directories_and_plain_files_on_path_are_skipped() {
        let root = rootfs();
        fs::create_dir_all(root.path().join("a/sh")).expect("mkdir");
        fs::create_dir_all(root.path().join("b")).expect("mkdir");
        fs::write(root.path().join("b/sh"), "").expect("write");
        assert_eq!(
            lookup(root.path(), "sh", "/a:/b:/bin").expect("found"),
            Path::new("/bin/sh")
        );
    }
}
