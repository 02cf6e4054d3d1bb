//! Save and load between two stores, and archives shaped to reach every path of the ingest.

use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};

use crate::content::sha256_digest;
use crate::{ImageError, ImageStore, LoadOptions, LoadedImage};

fn open(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("image")).expect("open store")
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(1_600_000_000);
        builder
            .append_data(&mut header, path, *data)
            .expect("append");
    }
    builder.into_inner().expect("finish")
}

fn load(store: &ImageStore, archive: &[u8]) -> Result<Vec<LoadedImage>, ImageError> {
    let mut progress = |_: crate::LoadProgress<'_>| {};
    store.load(
        &mut &archive[..],
        &LoadOptions {
            size_limit: Some(64 * 1024 * 1024),
        },
        &mut progress,
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

/// A docker-archive of `files` and a `manifest.json`.
fn archive(files: &[(String, Vec<u8>)], manifest: Value) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut all = files.to_vec();
    all.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).expect("json"),
    ));
    for (path, data) in &all {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, path, &data[..])
            .expect("append");
    }
    builder.into_inner().expect("finish")
}

#[test]
fn saved_archive_loads_into_another_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = open(&dir.path().join("a"));
    let tar = layer_tar(&[("etc/hello", b"hello\n")]);
    let record = from
        .import(&mut &tar[..], Some("demo:1"), &[], None)
        .expect("import");
    from.tag("demo:1", "demo:2").expect("tag");
    let mut bytes = Vec::new();
    let set = from.save(&["demo".to_owned()]).expect("save");
    assert_eq!(set.image_ids(), std::slice::from_ref(&record.id));
    let written = set.write_to(&mut bytes).expect("write");
    assert_eq!(written, bytes.len() as u64);
    assert_eq!(bytes.len() % 512, 0);

    // Every blob is content-addressed and the documents agree.
    let mut entries = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for entry in entries.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(sha256_digest(&data), format!("sha256:{hex}"));
        }
        seen.push(path);
    }
    for name in ["index.json", "manifest.json", "oci-layout", "repositories"] {
        assert!(seen.iter().any(|s| s == name), "{name} in {seen:?}");
    }

    let to = open(&dir.path().join("b"));
    let loaded = load(&to, &bytes).expect("load");
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, record.id);
    assert_eq!(loaded[0].tags, ["demo:1", "demo:2"]);
    assert!(loaded[0].replaced.is_empty());
    let copy = to.resolve("demo:2").expect("resolve");
    assert_eq!(
        to.config_bytes(&copy.id).expect("config"),
        from.config_bytes(&record.id).expect("config")
    );
    assert_eq!(copy.size, record.size);
    let dirs = to.prepare_rootfs("c1", &copy.id).expect("rootfs");
    assert_eq!(
        std::fs::read(dirs.lowerdirs[0].join("etc/hello")).expect("file"),
        b"hello\n"
    );
    assert!(names(&dir.path().join("b/image/ingest")).is_empty());

    // Again: nothing new, same answer.
    let blobs = names(&dir.path().join("b/image/blobs/sha256"));
    assert_eq!(load(&to, &bytes).expect("reload")[0].id, record.id);
    assert_eq!(names(&dir.path().join("b/image/blobs/sha256")), blobs);
}

#[test]
fn shared_and_repeated_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let base = layer_tar(&[("base", b"base\n")]);
    let top = layer_tar(&[("top", b"top\n")]);
    // Image one: base. Image two: base, top. Image three: base, base (the same layer in two
    // chains, so it is unpacked twice).
    let one = config_for(&[&base]);
    let two = config_for(&[&base, &top]);
    let three = config_for(&[&base, &base]);
    let files = vec![
        ("base.tar".to_owned(), base.clone()),
        ("top.tar".to_owned(), top.clone()),
        ("dup.tar".to_owned(), base.clone()),
        ("one.json".to_owned(), one.clone()),
        ("two.json".to_owned(), two.clone()),
        ("three.json".to_owned(), three.clone()),
    ];
    let manifest = json!([
        {"Config": "one.json", "RepoTags": ["x/one:1"], "Layers": ["base.tar"]},
        {"Config": "two.json", "RepoTags": ["x/two:1"], "Layers": ["base.tar", "top.tar"]},
        {"Config": "./three.json", "RepoTags": ["x/three:1"], "Layers": ["base.tar", "base.tar"]},
    ]);
    let loaded = load(&store, &archive(&files, manifest)).expect("load");
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[2].id, sha256_digest(&three));
    // Chains: base; base+top; base+base.
    assert_eq!(names(&dir.path().join("image/layers")).len(), 3);
    let dirs = store.prepare_rootfs("c3", "x/three:1").expect("rootfs");
    for lower in &dirs.lowerdirs {
        assert_eq!(std::fs::read(lower.join("base")).expect("file"), b"base\n");
    }
    assert!(
        names(&dir.path().join("image/ingest")).is_empty(),
        "dup.tar dropped"
    );
    // Blobs: 3 configs, 2 layers.
    assert_eq!(names(&dir.path().join("image/blobs/sha256")).len(), 5);
}

#[test]
fn failures_leave_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let base = layer_tar(&[("base", b"base\n")]);
    let config = config_for(&[&base]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            archive(
                &[
                    ("l.tar".into(), layer_tar(&[("other", b"x")])),
                    ("c.json".into(), config.clone()),
                ],
                json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]),
            ),
            "invalid diffID",
        ),
        (
            archive(
                &[("c.json".into(), config.clone())],
                json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]),
            ),
            "l.tar is missing",
        ),
        (
            archive(
                &[
                    ("l.tar".into(), base.clone()),
                    ("c.json".into(), config.clone()),
                ],
                json!([{"Config": "c.json", "RepoTags": ["x@sha256:00"], "Layers": ["l.tar"]}]),
            ),
            "invalid tag",
        ),
        (
            archive(
                &[
                    ("l.tar".into(), vec![0u8; 1 << 20]),
                    ("c.json".into(), config.clone()),
                ],
                json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]),
            ),
            "invalid diffID",
        ),
    ];
    for (bytes, expected) in cases {
        let error = load(&store, &bytes).expect_err(expected).to_string();
        assert!(error.contains(expected), "{error}");
        for area in ["ingest", "blobs/sha256", "layers", "images"] {
            assert!(
                names(&dir.path().join("image").join(area)).is_empty(),
                "{area} after {expected}"
            );
        }
    }
    // The limit stops expansion.
    let big = layer_tar(&[("big", &vec![7u8; 2 << 20])]);
    let bytes = archive(
        &[
            ("l.tar".into(), big.clone()),
            ("c.json".into(), config_for(&[&big])),
        ],
        json!([{"Config": "c.json", "Layers": ["l.tar"]}]),
    );
    let mut progress = |_: crate::LoadProgress<'_>| {};
    let error = store
        .load(
            &mut &bytes[..],
            &LoadOptions {
                size_limit: Some(1 << 20),
            },
            &mut progress,
        )
        .expect_err("limit");
    assert!(error.to_string().contains("size limit"), "{error}");
    assert!(names(&dir.path().join("image/ingest")).is_empty());
}
