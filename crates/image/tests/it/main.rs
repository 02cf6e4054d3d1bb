//! Root-only tests of the image store: device nodes, ownership, xattrs and overlay whiteouts
//! (mknod, chown and `trusted.*` attributes need root), checked against a real overlay mount.
//! They are root tests (`#[ignore]`d; see `berth_testing`).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::{ImageRecord, ImageStore};

/// A PAX extended header (`x`) entry carrying `records` for the entry that follows.
fn append_pax(builder: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (key, value) in records {
        let body_len = 1 + key.len() + 1 + value.len() + 1; // " key=value\n"
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "PaxHeaders/x", &data[..])
        .expect("pax header");
}

fn entry(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    owner: u64,
    data: &[u8],
) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(owner);
    header.set_gid(owner);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    builder
        .append_data(&mut header, path, data)
        .expect("append");
}

fn device(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    major: u32,
    minor: u32,
) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(0o666);
    header.set_size(0);
    header.set_device_major(major).expect("major");
    header.set_device_minor(minor).expect("minor");
    builder
        .append_data(&mut header, path, &[][..])
        .expect("append");
}

fn import(store: &ImageStore, tar: Vec<u8>, tag: &str) -> ImageRecord {
    store
        .import(&mut &tar[..], Some(tag), &[], None)
        .expect("import")
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    }
}

fn mount_overlay(lower: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Mount {
    let lowerdir = lower
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    fs::create_dir_all(target).expect("mountpoint");
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .expect("mount overlay");
    Mount(target.to_owned())
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn special_files_ownership_xattrs_and_whiteouts() {
    berth_testing::require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("image")).expect("open");

    let mut base = tar::Builder::new(Vec::new());
    entry(&mut base, "dir/", tar::EntryType::Directory, 0o755, 0, b"");
    entry(
        &mut base,
        "dir/old",
        tar::EntryType::Regular,
        0o644,
        0,
        b"old",
    );
    entry(
        &mut base,
        "gone",
        tar::EntryType::Regular,
        0o644,
        0,
        b"gone",
    );
    entry(
        &mut base,
        "kept",
        tar::EntryType::Regular,
        0o644,
        0,
        b"kept",
    );
    let base = import(&store, base.into_inner().expect("finish"), "base");

    let mut top = tar::Builder::new(Vec::new());
    device(&mut top, "dev/null", tar::EntryType::Char, 1, 3);
    device(&mut top, "dev/loop9", tar::EntryType::Block, 7, 9);
    entry(&mut top, "fifo", tar::EntryType::Fifo, 0o600, 0, b"");
    append_pax(
        &mut top,
        &[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.trusted.berth", b"t"),
        ],
    );
    entry(
        &mut top,
        "owned",
        tar::EntryType::Regular,
        0o4750,
        1000,
        b"setuid",
    );
    entry(
        &mut top,
        "dir/.wh..wh..opq",
        tar::EntryType::Regular,
        0o644,
        0,
        b"",
    );
    entry(
        &mut top,
        "dir/new",
        tar::EntryType::Regular,
        0o644,
        0,
        b"new",
    );
    entry(&mut top, ".wh.gone", tar::EntryType::Regular, 0o644, 0, b"");
    let top = import(&store, top.into_inner().expect("finish"), "top");

    let base_dirs = store.prepare_rootfs("base-ctr", &base.id).expect("prepare");
    let top_dirs = store.prepare_rootfs("top-ctr", &top.id).expect("prepare");
    let layer = &top_dirs.lowerdirs[0];

    let null = fs::symlink_metadata(layer.join("dev/null")).expect("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (
            nix::sys::stat::major(null.rdev()),
            nix::sys::stat::minor(null.rdev())
        ),
        (1, 3)
    );
    assert_eq!(null.mode() & 0o7777, 0o666);
    let block = fs::symlink_metadata(layer.join("dev/loop9")).expect("dev/loop9");
    assert!(block.file_type().is_block_device());
    assert_eq!(
        (
            nix::sys::stat::major(block.rdev()),
            nix::sys::stat::minor(block.rdev())
        ),
        (7, 9)
    );
    assert!(
        fs::symlink_metadata(layer.join("fifo"))
            .expect("fifo")
            .file_type()
            .is_fifo()
    );

    let owned = fs::symlink_metadata(layer.join("owned")).expect("owned");
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    assert_eq!(owned.mode() & 0o7777, 0o4750, "setuid survives chown");
    assert_eq!(
        xattr::get(layer.join("owned"), "user.note").expect("xattr"),
        Some(b"hello".to_vec())
    );
    assert_eq!(
        xattr::get(layer.join("owned"), "trusted.berth").expect("xattr"),
        Some(b"t".to_vec())
    );

    let whiteout = fs::symlink_metadata(layer.join("gone")).expect("whiteout");
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!layer.join(".wh.gone").exists());
    assert_eq!(
        xattr::get(layer.join("dir"), "trusted.overlay.opaque").expect("xattr"),
        Some(b"y".to_vec())
    );
    assert!(!layer.join("dir/.wh..wh..opq").exists());

    // The kernel reads these as overlay whiteouts: stack top over base.
    let mut lower = top_dirs.lowerdirs.clone();
    lower.extend(base_dirs.lowerdirs.iter().cloned());
    let merged = dir.path().join("merged");
    {
        let _mount = mount_overlay(&lower, &top_dirs.upperdir, &top_dirs.workdir, &merged);
        assert!(!merged.join("gone").exists(), "whited out");
        assert_eq!(fs::read(merged.join("kept")).expect("kept"), b"kept");
        assert!(
            !merged.join("dir/old").exists(),
            "opaque dir hides the lower one"
        );
        assert_eq!(fs::read(merged.join("dir/new")).expect("new"), b"new");
        fs::write(merged.join("written"), b"w").expect("write through overlay");
    }
    assert_eq!(
        fs::read(top_dirs.upperdir.join("written")).expect("in upper"),
        b"w"
    );

    store.remove_rootfs("top-ctr").expect("remove");
    store.remove_rootfs("base-ctr").expect("remove");
    for reference in ["top", "base"] {
        store.remove(reference, false, &|_| None).expect("rmi");
    }
    assert_eq!(
        fs::read_dir(dir.path().join("image/layers"))
            .expect("ls")
            .count(),
        0
    );
}
