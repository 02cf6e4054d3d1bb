//! `hello-world`, built offline: a one-layer image holding `/hello`, a static program of a
//! few hundred bytes that berth writes itself (an ELF header, one loadable segment, and code
//! that makes one `write(1, …)` and `exit_group(0)`), so a fresh install runs
//! `berth run hello-world` with no registry and no toolchain. The daemon builds it when asked
//! (`berth image bootstrap hello-world`, or the CLI on first use); the package's `postinst`
//! builds it before any daemon runs ([`bootstrap_offline`]).

/// What `/hello` prints.
pub const GREETING: &str = "
Hello from berth!
This message shows that your installation appears to be working correctly.

To generate this message, berth took the following steps:
 1. The berth client contacted the berth daemon.
 2. The berth daemon found the \"hello-world\" image, or built it itself, offline:
    a tiny static program (this one) in a one-layer image.
 3. The berth daemon created a new container from that image (its own namespaces,
    cgroup and overlay root, watched by a small monitor process that outlives the
    daemon), which runs the executable that produced the output you are reading.
 4. The berth daemon streamed that output to the berth client, which sent it to
    your terminal.

To try something more ambitious, you can run a shell in a container with:
 $ berth image bootstrap busybox
 $ berth run -it busybox sh

The docker CLI works too: DOCKER_HOST=unix:///run/berth/berth.sock docker ps
";

/// Where the program is loaded.
const BASE: u64 = 0x40_0000;
/// ELF header and one program header.
const HEADERS: usize = 64 + 56;

/// The machine code for this architecture: `(e_machine, code)`, with the greeting right after
/// the code.
fn code(len: u32) -> Option<(u16, Vec<u8>)> {
    if cfg!(target_arch = "x86_64") {
        let mut code = vec![0xb8, 1, 0, 0, 0]; // mov eax, 1 (write)
        code.extend([0xbf, 1, 0, 0, 0]); // mov edi, 1 (stdout)
        code.extend([0x48, 0x8d, 0x35, 16, 0, 0, 0]); // lea rsi, [rip + 16]: the greeting
        code.push(0xba); // mov edx, len
        code.extend(len.to_le_bytes());
        code.extend([0x0f, 0x05]); // syscall
        code.extend([0xb8, 231, 0, 0, 0]); // mov eax, 231 (exit_group)
        code.extend([0x31, 0xff]); // xor edi, edi
        code.extend([0x0f, 0x05]); // syscall
        Some((0x3e, code))
    } else if cfg!(target_arch = "aarch64") {
        let len = Some(len).filter(|l| *l < 0x1_0000)?;
        let words: [u32; 8] = [
            0xd280_0020,              // mov x0, #1
            0x1000_00e1,              // adr x1, .+28: the greeting
            0xd280_0002 | (len << 5), // mov x2, #len
            0xd280_0808,              // mov x8, #64 (write)
            0xd400_0001,              // svc #0
            0xd280_0000,              // mov x0, #0
            0xd280_0bc8,              // mov x8, #94 (exit_group)
            0xd400_0001,              // svc #0
        ];
        Some((0xb7, words.iter().flat_map(|w| w.to_le_bytes()).collect()))
    } else {
        None
    }
}

/// The `/hello` executable for this machine; `None` on an architecture berth has no code for.
pub fn program() -> Option<Vec<u8>> {
    let message = GREETING.as_bytes();
    let (machine, code) = code(u32::try_from(message.len()).ok()?)?;
    let total = (HEADERS + code.len() + message.len()) as u64;
    let entry = BASE + HEADERS as u64;
    let mut elf = Vec::with_capacity(usize::try_from(total).ok()?);
    elf.extend([0x7f, b'E', b'L', b'F', 2, 1, 1, 0]); // 64-bit, little endian, version 1, SysV
    elf.extend([0; 8]);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(machine.to_le_bytes());
    elf.extend(1u32.to_le_bytes()); // EV_CURRENT
    elf.extend(entry.to_le_bytes());
    elf.extend(64u64.to_le_bytes()); // program headers right after this header
    elf.extend(0u64.to_le_bytes()); // no section headers
    elf.extend(0u32.to_le_bytes()); // flags
    elf.extend(64u16.to_le_bytes()); // header size
    elf.extend(56u16.to_le_bytes()); // program header size
    elf.extend(1u16.to_le_bytes()); // one program header
    elf.extend([0; 6]); // no section headers, no string table
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(5u32.to_le_bytes()); // R + X
    elf.extend(0u64.to_le_bytes()); // from the file's start
    elf.extend(BASE.to_le_bytes()); // vaddr
    elf.extend(BASE.to_le_bytes()); // paddr
    elf.extend(total.to_le_bytes()); // file size
    elf.extend(total.to_le_bytes()); // memory size
    elf.extend(0x1000u64.to_le_bytes()); // alignment
    elf.extend(code);
    elf.extend(message);
    Some(elf)
}

/// The image's one layer: `/hello`, mode 0755, owned by root.
pub fn layer() -> Option<Vec<u8>> {
    let program = program()?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "hello", &program[..])
        .ok()?;
    builder.into_inner().ok()
}

/// The reference [`bootstrap_offline`] and the API's bootstrap give the image.
pub const REFERENCE: &str = "hello-world:latest";

/// The image's `CMD`.
const CMD: &str = r#"CMD ["/hello"]"#;

/// What [`bootstrap_offline`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offline {
    /// The image was built: its id.
    Built(String),
    /// The image was there already: its id.
    Present(String),
    /// A daemon holds the data root (its pid): the image is left to it (built on first use).
    DaemonRunning(String),
}

/// Builds the hello-world image into the data root's image store with no daemon running
/// (the package's `postinst`: `berth run hello-world` then needs no build on first use). The
/// data root's lock is held meanwhile, so no daemon starts on it; if a daemon holds it,
/// nothing is done.
pub fn bootstrap_offline(config: &crate::DaemonConfig) -> Result<Offline, crate::DaemonError> {
    use crate::DaemonError;
    let data_root = &config.data_root;
    berth_container::perms::ensure_dir(data_root, berth_container::perms::DATA_ROOT_MODE).map_err(
        |source| DaemonError::Io {
            op: "create",
            path: data_root.clone(),
            source,
        },
    )?;
    let _lock = match crate::guard::lock_data_root(data_root) {
        Ok(lock) => lock,
        Err(DaemonError::DataRootInUse { pid, .. }) => return Ok(Offline::DaemonRunning(pid)),
        Err(other) => return Err(other),
    };
    let store = berth_image::ImageStore::open(&data_root.join("image"))?;
    if let Ok(record) = store.resolve(REFERENCE) {
        return Ok(Offline::Present(record.id));
    }
    let record = import(&store, &layer_or_error()?, REFERENCE)?;
    Ok(Offline::Built(record.id))
}

/// [`layer`], or the error a bootstrap gives on a machine it has no program for.
pub fn layer_or_error() -> Result<Vec<u8>, crate::DaemonError> {
    layer().ok_or(crate::DaemonError::UnknownBootstrap {
        name: format!("hello-world (no program for {})", std::env::consts::ARCH),
    })
}

/// Imports the hello-world `layer` into `store` as `reference`, with its `CMD`.
pub fn import(
    store: &berth_image::ImageStore,
    layer: &[u8],
    reference: &str,
) -> Result<berth_image::ImageRecord, berth_image::ImageError> {
    store.import(
        &mut &layer[..],
        Some(reference),
        &[CMD.to_owned()],
        Some("berth image bootstrap hello-world"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_runs_and_greets() {
        let Some(program) = program() else {
            return; // no code for this architecture: bootstrap says so
        };
        assert!(program.len() < 2048, "{} bytes", program.len());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hello");
        std::fs::write(&path, &program).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // Another test thread's fork may briefly hold the file open for writing.
        let mut tries = 0;
        let out = loop {
            match std::process::Command::new(&path).output() {
                Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.expect("run /hello"),
            }
        };
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), GREETING);
    }

    #[test]
    fn offline_bootstrap_builds_once_and_leaves_a_held_root_alone() {
        if layer().is_none() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::DaemonConfig {
            data_root: dir.path().join("data"),
            ..Default::default()
        };
        let Ok(Offline::Built(id)) = bootstrap_offline(&config) else {
            panic!("built");
        };
        assert_eq!(
            bootstrap_offline(&config).ok(),
            Some(Offline::Present(id.clone()))
        );
        let store = berth_image::ImageStore::open(&config.data_root.join("image")).expect("open");
        assert_eq!(store.resolve(REFERENCE).expect("tagged").id, id);
        // A daemon holds the root: nothing is done.
        let held = crate::guard::lock_data_root(&config.data_root).expect("lock");
        assert_eq!(
            bootstrap_offline(&config).ok(),
            Some(Offline::DaemonRunning(std::process::id().to_string()))
        );
        drop(held);
    }

    #[test]
    fn the_layer_holds_only_hello() {
        let Some(layer) = layer() else {
            return;
        };
        let mut archive = tar::Archive::new(&layer[..]);
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["hello"]);
    }
}
