//! Integration tests: save and load (docker-archive and OCI layout), through `berth` and the
//! real docker CLI, interop with a private dockerd both ways, and a corpus of hostile or broken
//! archives that must each be refused with one line and leave no trace.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("archive_save_load_roundtrip", archive_save_load_roundtrip),
    (
        "archive_load_oci_layout_and_compressed_layers",
        archive_load_oci_layout_and_compressed_layers,
    ),
    ("archive_docker_cli_save_load", archive_docker_cli_save_load),
    ("archive_interop_with_dockerd", archive_interop_with_dockerd),
    ("archive_refuses_bad_archives", archive_refuses_bad_archives),
    (
        "archive_refuses_device_nodes_without_cap_mknod",
        archive_refuses_device_nodes_without_cap_mknod,
    ),
];

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The entries of a tar (regular files only), by path.
fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    files
}

/// A tar entry built from raw header bytes, so hostile names (`..`, absolute) can be written.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
}

fn raw_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (path, kind, data, link, dev): (&str, tar::EntryType, &[u8], &str, (u32, u32)) =
            match entry {
                Entry::File(p, d) => (p, tar::EntryType::Regular, d, "", (0, 0)),
                Entry::Dir(p) => (p, tar::EntryType::Directory, &[], "", (0, 0)),
                Entry::Symlink(p, t) => (p, tar::EntryType::Symlink, &[], t, (0, 0)),
                Entry::Hardlink(p, t) => (p, tar::EntryType::Link, &[], t, (0, 0)),
                Entry::Char(p, ma, mi) => (p, tar::EntryType::Char, &[], "", (*ma, *mi)),
                Entry::Fifo(p) => (p, tar::EntryType::Fifo, &[], "", (0, 0)),
            };
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        if matches!(kind, tar::EntryType::Char) {
            header.set_device_major(dev.0).unwrap();
            header.set_device_minor(dev.1).unwrap();
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// busybox's layer tar, as `berth save` writes it.
pub(crate) fn busybox_layer(env: &TestEnv) -> Vec<u8> {
    let out = env.root.join("busybox-save.tar");
    env.berth(&["save", "-o", out.to_str().unwrap(), "busybox"])
        .ok();
    let files = tar_files(&std::fs::read(&out).unwrap());
    let _ = std::fs::remove_file(&out);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layer = manifest[0]["Layers"][0].as_str().unwrap();
    files[layer].clone()
}

/// A two-layer test image: busybox, then a layer with `/arc/hello` (made unique by `tag`).
pub(crate) struct TestImage {
    config: Vec<u8>,
    /// Uncompressed layer tars, bottom first.
    layers: Vec<Vec<u8>>,
}

impl TestImage {
    pub(crate) fn new(env: &TestEnv, tag: &str) -> TestImage {
        let base = busybox_layer(env);
        let hello = format!("hello from {tag}\n");
        let top = raw_tar(&[
            Entry::Dir("arc/"),
            Entry::File("arc/hello", hello.as_bytes()),
        ]);
        TestImage::with_layers(vec![base, top])
    }

    fn with_layers(layers: Vec<Vec<u8>>) -> TestImage {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-11-29T00:00:00Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"]
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "test base"}, {"created_by": "test top"}]
        });
        TestImage {
            config: serde_json::to_vec(&config).unwrap(),
            layers,
        }
    }

    pub(crate) fn id(&self) -> String {
        sha256(&self.config)
    }

    /// A docker-archive (Docker 20.10's layout: `<hex>/layer.tar`, `<id>.json`), with each
    /// layer stored as `encode` makes it.
    pub(crate) fn docker_archive(
        &self,
        tags: &[&str],
        encode: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> Vec<u8> {
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        let mut paths = Vec::new();
        for layer in &self.layers {
            let path = format!("{}/layer.tar", hex_of(&sha256(layer)));
            entries.push((path.clone(), encode(layer)));
            paths.push(path);
        }
        let config_path = format!("{}.json", hex_of(&self.id()));
        entries.push((config_path.clone(), self.config.clone()));
        let manifest = json!([{ "Config": config_path, "RepoTags": tags, "Layers": paths }]);
        entries.push((
            "manifest.json".into(),
            serde_json::to_vec(&manifest).unwrap(),
        ));
        build_tar(&entries)
    }

    /// An OCI image layout alone (no manifest.json), layers stored as `encode` makes them.
    fn oci_layout(&self, tag: &str, encode: &dyn Fn(&[u8]) -> Vec<u8>, media: &str) -> Vec<u8> {
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        let mut descriptors = Vec::new();
        for layer in &self.layers {
            let stored = encode(layer);
            let digest = sha256(&stored);
            descriptors.push(json!({"mediaType": media, "digest": digest, "size": stored.len()}));
            entries.push((format!("blobs/sha256/{}", hex_of(&digest)), stored));
        }
        entries.push((
            format!("blobs/sha256/{}", hex_of(&self.id())),
            self.config.clone(),
        ));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.id(), "size": self.config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let manifest_digest = sha256(&manifest);
        entries.push((
            format!("blobs/sha256/{}", hex_of(&manifest_digest)),
            manifest.clone(),
        ));
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest.len(),
                "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": "v1"}
            }]
        });
        entries.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
        entries.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        build_tar(&entries)
    }
}

fn build_tar(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// What must not change when a load is refused.
#[derive(Debug, PartialEq)]
struct StoreState {
    images: String,
    blobs: Vec<String>,
    layers: Vec<String>,
    records: Vec<String>,
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn store_state(env: &TestEnv) -> StoreState {
    let image = env.data_root.join("image");
    StoreState {
        images: env.berth(&["images", "-a", "--no-trunc"]).ok(),
        blobs: names(&image.join("blobs/sha256")),
        layers: names(&image.join("layers")),
        records: names(&image.join("images")),
    }
}

/// Nothing left half-done in the image store's work areas.
#[track_caller]
fn assert_no_staging_left(env: &TestEnv) {
    let image = env.data_root.join("image");
    assert_eq!(
        names(&image.join("ingest")),
        Vec::<String>::new(),
        "ingest area"
    );
    assert_eq!(names(&image.join("trash")), Vec::<String>::new(), "trash");
}

fn loaded_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("Loaded image"))
        .map(String::from)
        .collect()
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn archive_save_load_roundtrip(env: &TestEnv) {
    let dir = env.root.join("arc-roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    let image = TestImage::new(env, "roundtrip");
    let before = store_state(env);
    // In: a Docker 20.10-style archive.
    let archive = image.docker_archive(&["arc/rt:1"], &|l: &[u8]| l.to_vec());
    let r = env.berth_stdin(&["load"], &archive);
    assert_eq!(loaded_lines(&r.ok()), ["Loaded image: arc/rt:1"]);
    assert_eq!(env.inspect("arc/rt:1", "{{.Id}}"), image.id());
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "arc/rt:1",
        "cat",
        "/arc/hello",
    ]);
    assert_eq!(out.ok(), "hello from roundtrip");
    env.berth(&["tag", "arc/rt:1", "arc/rt:2"]).ok();

    // Out: both tags in one archive, in Docker 25's format.
    let file = dir.join("rt.tar");
    env.berth(&["save", "-o", file.to_str().unwrap(), "arc/rt:1", "arc/rt:2"])
        .ok();
    let files = tar_files(&std::fs::read(&file).unwrap());
    for name in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(files.contains_key(name), "{name} in {:?}", files.keys());
    }
    for (path, data) in &files {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(hex_of(&sha256(data)), hex, "{path} is content-addressed");
        }
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 1, "{manifest}");
    assert_eq!(manifest[0]["RepoTags"], json!(["arc/rt:1", "arc/rt:2"]));
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", hex_of(&image.id()))
    );
    let layers: Vec<&str> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layers.len(), 2);
    for (path, layer) in layers.iter().zip(&image.layers) {
        assert_eq!(
            &files[*path], layer,
            "layers are saved uncompressed, as loaded"
        );
    }
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["docker.io/arc/rt:1", "docker.io/arc/rt:2"]);
    let repositories: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert!(repositories["arc/rt"]["1"].is_string(), "{repositories}");

    // Remove, and load it back: same id, both tags, runs.
    env.berth(&["rmi", "arc/rt:1", "arc/rt:2"]).ok();
    assert_eq!(
        store_state(env),
        before,
        "rmi leaves the store as before the load"
    );
    let r = env.berth(&["load", "-i", file.to_str().unwrap()]);
    assert_eq!(
        loaded_lines(&r.ok()),
        ["Loaded image: arc/rt:1", "Loaded image: arc/rt:2"]
    );
    assert_eq!(env.inspect("arc/rt:2", "{{.Id}}"), image.id());
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "arc/rt:2",
        "cat",
        "/arc/hello",
    ]);
    assert_eq!(out.ok(), "hello from roundtrip");

    // Whole-archive gzip and zstd, through stdin and -q; loading what is there is a no-op.
    let saved = std::fs::read(&file).unwrap();
    for (name, bytes) in [("gzip", gzip(&saved)), ("zstd", zstd(&saved))] {
        env.berth(&["rmi", "arc/rt:1", "arc/rt:2"]).ok();
        let r = env.berth_stdin(&["load", "-q"], &bytes);
        assert_eq!(
            loaded_lines(&r.ok()),
            ["Loaded image: arc/rt:1", "Loaded image: arc/rt:2"],
            "{name}"
        );
    }
    let again = env.berth(&["load", "-i", file.to_str().unwrap()]);
    assert_eq!(loaded_lines(&again.ok()).len(), 2);
    // By id: an untagged image.
    let by_id = dir.join("id.tar");
    env.berth(&["save", "-o", by_id.to_str().unwrap(), &image.id()])
        .ok();
    let files = tar_files(&std::fs::read(&by_id).unwrap());
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert!(manifest[0]["RepoTags"].is_null(), "{manifest}");
    assert!(!files.contains_key("repositories"));
    // docker-py's route: GET /images/{name}/get.
    let single = dir.join("single.tar");
    let curl = std::process::Command::new("curl")
        .args(["-sf", "--unix-socket"])
        .arg(&env.socket)
        .arg("-o")
        .arg(&single)
        .arg("http://berth/v1.44/images/arc/rt:2/get")
        .status();
    if let Ok(status) = curl {
        assert!(status.success(), "curl {status}");
        let files = tar_files(&std::fs::read(&single).unwrap());
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"], json!(["arc/rt:2"]));
        std::fs::remove_file(&single).unwrap();
    }
    // An untagged image loads as its id.
    env.berth(&["rmi", "arc/rt:1", "arc/rt:2"]).ok();
    let r = env.berth(&["load", "-i", by_id.to_str().unwrap()]);
    assert_eq!(
        loaded_lines(&r.ok()),
        [format!("Loaded image ID: {}", image.id())]
    );
    env.berth(&["tag", &image.id(), "arc/rt:1"]).ok();
    env.berth(&["tag", &image.id(), "arc/rt:2"]).ok();

    // Errors: unknown image, terminal refusal is tested by hand; missing input file.
    let r = env.berth(&[
        "save",
        "-o",
        dir.join("x.tar").to_str().unwrap(),
        "arc/nosuch:1",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: No such image: arc/nosuch:1"
    );
    assert!(!dir.join("x.tar").exists(), "no file for a failed save");
    assert_eq!(names_in(&dir), ["id.tar", "rt.tar"], "no temp file left");

    env.berth(&["rmi", "arc/rt:1", "arc/rt:2"]).ok();
    assert_eq!(store_state(env), before);
    assert_no_staging_left(env);
    let _ = std::fs::remove_dir_all(&dir);
}

fn names_in(dir: &Path) -> Vec<String> {
    names(dir)
}

fn archive_load_oci_layout_and_compressed_layers(env: &TestEnv) {
    let image = TestImage::new(env, "oci");
    let before = store_state(env);
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "oci gzip layers",
            image.oci_layout(
                "docker.io/arc/oci:v1",
                &|l: &[u8]| gzip(l),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
        ),
        (
            "oci zstd layers",
            image.oci_layout(
                "docker.io/arc/oci:v1",
                &|l: &[u8]| zstd(l),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ),
        (
            "oci plain layers",
            image.oci_layout(
                "docker.io/arc/oci:v1",
                &|l: &[u8]| l.to_vec(),
                "application/vnd.oci.image.layer.v1.tar",
            ),
        ),
        (
            "docker-archive gzip layers",
            image.docker_archive(&["arc/oci:v1"], &|l: &[u8]| gzip(l)),
        ),
    ];
    for (name, archive) in cases {
        let r = env.berth_stdin(&["load"], &archive);
        assert_eq!(
            loaded_lines(&r.ok()),
            ["Loaded image: arc/oci:v1"],
            "{name}"
        );
        assert_eq!(env.inspect("arc/oci:v1", "{{.Id}}"), image.id(), "{name}");
        let out = env.berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "arc/oci:v1",
            "cat",
            "/arc/hello",
        ]);
        assert_eq!(out.ok(), "hello from oci", "{name}");
        env.berth(&["rmi", "arc/oci:v1"]).ok();
        assert_eq!(store_state(env), before, "{name}");
        assert_no_staging_left(env);
    }
}

fn archive_docker_cli_save_load(env: &TestEnv) {
    let dir = env.root.join("arc-docker-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let image = TestImage::new(env, "docker cli");
    let archive = image.docker_archive(&["arc/dcli:1"], &|l: &[u8]| l.to_vec());
    let input = dir.join("in.tar");
    std::fs::write(&input, &archive).unwrap();
    let r = docker!(env, "load", "-i", input.to_str().unwrap());
    assert_eq!(loaded_lines(&r.ok()), ["Loaded image: arc/dcli:1"]);
    let out = dir.join("out.tar");
    docker!(env, "save", "-o", out.to_str().unwrap(), "arc/dcli:1").ok();
    let files = tar_files(&std::fs::read(&out).unwrap());
    assert!(files.contains_key("manifest.json") && files.contains_key("index.json"));
    docker!(env, "rmi", "arc/dcli:1").ok();
    let bytes = std::fs::read(&out).unwrap();
    let r = env.docker_stdin(&["load"], &bytes).unwrap();
    assert_eq!(loaded_lines(&r.ok()), ["Loaded image: arc/dcli:1"]);
    let run = docker!(
        env,
        "run",
        "--rm",
        "--network",
        "none",
        "arc/dcli:1",
        "cat",
        "/arc/hello"
    );
    assert_eq!(run.ok(), "hello from docker cli");
    // A refused archive: one line, exit 1.
    let r = env
        .docker_stdin(&["load"], b"not an archive at all")
        .unwrap();
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    let r = docker!(
        env,
        "save",
        "-o",
        dir.join("no.tar").to_str().unwrap(),
        "arc/nosuch"
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such image"), "{r:?}");
    docker!(env, "rmi", "arc/dcli:1").ok();
    assert_no_staging_left(env);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A private dockerd (20.10) under the test root: its own socket, data and exec roots, no
/// bridge, no iptables. Stopped (SIGTERM, then waited for) and removed on drop.
pub(crate) struct Dockerd {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub(crate) host: String,
}

impl Dockerd {
    pub(crate) fn start(env: &TestEnv) -> Option<Dockerd> {
        let exe = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .iter()
            .map(Path::new)
            .find(|p| p.exists())?;
        crate::harness::docker_exe()?;
        let dir = env.root.join("dk");
        std::fs::create_dir_all(&dir).unwrap();
        let host = format!("unix://{}", dir.join("d.sock").display());
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = std::process::Command::new(exe)
            .args(["-H", &host, "--data-root"])
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let dockerd = Dockerd { child, dir, host };
        let up = env.eventually(30, || dockerd.docker(env, &["version"]).code == 0);
        assert!(up, "dockerd did not come up: {}", dockerd.log());
        Some(dockerd)
    }

    pub(crate) fn docker(&self, env: &TestEnv, args: &[&str]) -> crate::harness::Run {
        let mut all = vec!["-H", &self.host];
        all.extend_from_slice(args);
        env.docker(&all).expect("docker CLI")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn archive_interop_with_dockerd(env: &TestEnv) {
    let Some(dockerd) = Dockerd::start(env) else {
        crate::skip(
            "dockerd or the docker CLI is not installed (scripts/deps.sh installs docker.io)",
        );
    };
    let dir = env.root.join("arc-interop");
    std::fs::create_dir_all(&dir).unwrap();
    let before = store_state(env);

    // berth → dockerd.
    let image = TestImage::new(env, "interop");
    let archive = image.docker_archive(&["arc/interop:1"], &|l: &[u8]| l.to_vec());
    env.berth_stdin(&["load"], &archive).ok();
    let from_berth = dir.join("from-berth.tar");
    env.berth(&["save", "-o", from_berth.to_str().unwrap(), "arc/interop:1"])
        .ok();
    let r = dockerd.docker(env, &["load", "-i", from_berth.to_str().unwrap()]);
    assert_eq!(
        loaded_lines(&r.ok()),
        ["Loaded image: arc/interop:1"],
        "{}",
        dockerd.log()
    );
    let id = dockerd.docker(env, &["image", "inspect", "-f", "{{.Id}}", "arc/interop:1"]);
    assert_eq!(
        id.ok(),
        image.id(),
        "dockerd keeps the config bytes, so the id"
    );
    let run = [
        "run",
        "--rm",
        "--network",
        "none",
        "arc/interop:1",
        "cat",
        "/arc/hello",
    ];
    assert_eq!(dockerd.docker(env, &run).ok(), "hello from interop");

    // dockerd → berth: an image only dockerd has, and the one it got from berth, in one
    // archive of dockerd's own (legacy `<id>/layer.tar`) format.
    let rootfs = {
        let base = busybox_layer(env);
        let mut files = base[..base.len() - 1024].to_vec();
        files.extend(raw_tar(&[Entry::File("from-docker", b"made by dockerd\n")]));
        files
    };
    let import_args = [
        "-H",
        &dockerd.host,
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-",
        "arc/fromdocker:1",
    ];
    let import = env.docker_stdin(&import_args, &rootfs).expect("docker CLI");
    import.ok();
    let from_docker = dir.join("from-docker.tar");
    dockerd
        .docker(
            env,
            &[
                "save",
                "-o",
                from_docker.to_str().unwrap(),
                "arc/fromdocker:1",
                "arc/interop:1",
            ],
        )
        .ok();
    let files = tar_files(&std::fs::read(&from_docker).unwrap());
    assert!(
        files.keys().any(|k| k.ends_with("/layer.tar")),
        "dockerd 20.10 writes its legacy layout: {:?}",
        files.keys()
    );
    env.berth(&["rmi", "arc/interop:1"]).ok();
    let r = env.berth(&["load", "-i", from_docker.to_str().unwrap()]);
    let mut lines = loaded_lines(&r.ok());
    lines.sort();
    assert_eq!(
        lines,
        [
            "Loaded image: arc/fromdocker:1",
            "Loaded image: arc/interop:1"
        ]
    );
    assert_eq!(env.inspect("arc/interop:1", "{{.Id}}"), image.id());
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "arc/fromdocker:1",
        "cat",
        "/from-docker",
    ]);
    assert_eq!(out.ok(), "made by dockerd");
    let out = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "arc/interop:1",
        "cat",
        "/arc/hello",
    ]);
    assert_eq!(out.ok(), "hello from interop");
    // And back again: what berth loaded from dockerd, saved by berth, runs in dockerd.
    let round = dir.join("round.tar");
    env.berth(&["save", "-o", round.to_str().unwrap(), "arc/fromdocker:1"])
        .ok();
    dockerd.docker(env, &["rmi", "arc/fromdocker:1"]).ok();
    let r = dockerd.docker(env, &["load", "-i", round.to_str().unwrap()]);
    assert_eq!(loaded_lines(&r.ok()), ["Loaded image: arc/fromdocker:1"]);
    let run = [
        "run",
        "--rm",
        "--network",
        "none",
        "arc/fromdocker:1",
        "cat",
        "/from-docker",
    ];
    assert_eq!(dockerd.docker(env, &run).ok(), "made by dockerd");

    drop(dockerd);
    env.berth(&["rmi", "arc/interop:1", "arc/fromdocker:1"])
        .ok();
    assert_eq!(store_state(env), before);
    assert_no_staging_left(env);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One bad archive: what it is, its bytes, and a piece of the one-line error expected.
struct BadCase {
    name: &'static str,
    bytes: Vec<u8>,
    expect: &'static str,
}

/// An outer archive from (path, bytes) pairs, written with raw headers (hostile names allowed).
fn outer(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let list: Vec<Entry<'_>> = entries
        .iter()
        .map(|(p, d)| Entry::File(p.as_str(), d.as_slice()))
        .collect();
    raw_tar(&list)
}

/// A docker-archive of `config` and `layers` (stored as given), manifest naming `paths`.
fn docker_archive_parts(
    config: &[u8],
    layers: &[Vec<u8>],
    tags: Value,
) -> (Vec<(String, Vec<u8>)>, Value) {
    let mut entries = Vec::new();
    let mut paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("{}/layer.tar", hex_of(&sha256(format!("{i}").as_bytes())));
        entries.push((path.clone(), layer.clone()));
        paths.push(path);
    }
    let config_path = format!("{}.json", hex_of(&sha256(config)));
    entries.push((config_path.clone(), config.to_vec()));
    let manifest = json!([{ "Config": config_path, "RepoTags": tags, "Layers": paths }]);
    (entries, manifest)
}

fn with_manifest(mut entries: Vec<(String, Vec<u8>)>, manifest: &Value) -> Vec<u8> {
    entries.push((
        "manifest.json".into(),
        serde_json::to_vec(manifest).unwrap(),
    ));
    outer(&entries)
}

/// The test image with its top layer replaced by `top`.
fn image_with_top(base: &[u8], top: Vec<u8>) -> Vec<u8> {
    let image = TestImage::with_layers(vec![base.to_vec(), top]);
    let (entries, manifest) =
        docker_archive_parts(&image.config, &image.layers, json!(["arc/bad:1"]));
    with_manifest(entries, &manifest)
}

/// gzip members concatenated: `header`, then zeros, expanding to about `total` bytes.
fn gzip_bomb(header: &[u8], total: u64) -> Vec<u8> {
    const MEMBER: usize = 1024 * 1024;
    let zeros = gzip(&vec![0u8; MEMBER]);
    let mut out = gzip(header);
    for _ in 0..total.div_ceil(MEMBER as u64) {
        out.extend_from_slice(&zeros);
    }
    out
}

/// A tar header for a regular file of `size` bytes (GNU, so sizes past 8 GiB fit).
fn big_file_header(path: &str, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_cksum();
    header.as_bytes().to_vec()
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn bad_cases(env: &TestEnv, outside: &Path) -> Vec<BadCase> {
    let base = busybox_layer(env);
    let image = TestImage::new(env, "corpus");
    let good = image.docker_archive(&["arc/bad:1"], &|l: &[u8]| l.to_vec());
    let (entries, manifest) =
        docker_archive_parts(&image.config, &image.layers, json!(["arc/bad:1"]));
    let victim = outside.join("victim");
    let victim_abs = victim.to_str().unwrap().to_owned();
    let outside_abs = outside.to_str().unwrap().to_owned();
    // From a layer's unpack dir (<root>/data/image/ingest/layer-*/diff) to <root>.
    let up = "../../../../../";
    let rel_victim = format!("{up}{}", victim.strip_prefix(&env.root).unwrap().display());
    let rel_outside = format!("{up}{}", outside.strip_prefix(&env.root).unwrap().display());
    let rel_whiteout = format!("{up}outside/.wh.victim");
    let ten_gb = 10 * 1024 * 1024 * 1024u64;
    let mut cases = Vec::new();
    let mut add = |name, bytes, expect| {
        cases.push(BadCase {
            name,
            bytes,
            expect,
        })
    };

    add(
        "truncated archive",
        good[..good.len() / 2].to_vec(),
        "truncated",
    );
    let gz = gzip(&good);
    add(
        "truncated gzip archive",
        gz[..gz.len() / 2].to_vec(),
        "invalid tar archive",
    );
    let mut corrupt = gz.clone();
    let middle = corrupt.len() / 2;
    for b in &mut corrupt[middle..middle + 64] {
        *b ^= 0x5a;
    }
    add("corrupt gzip archive", corrupt, "invalid tar archive");
    add(
        "garbage",
        b"this is not an image archive\n".repeat(100),
        "invalid tar archive",
    );
    add("empty input", Vec::new(), "no manifest.json or index.json");
    add(
        "no manifest",
        outer(&entries),
        "no manifest.json or index.json",
    );

    // The manifest and config disagree with the content.
    let mut wrong = serde_json::from_slice::<Value>(&image.config).unwrap();
    wrong["rootfs"]["diff_ids"][1] = json!(sha256(b"some other layer"));
    let wrong = serde_json::to_vec(&wrong).unwrap();
    let (e, m) = docker_archive_parts(&wrong, &image.layers, json!(["arc/bad:1"]));
    add(
        "layer digest does not match the config",
        with_manifest(e, &m),
        "invalid diffID for layer 1",
    );
    let mut missing = entries.clone();
    missing.remove(1);
    add(
        "manifest names a missing layer",
        with_manifest(missing, &manifest),
        "is missing",
    );
    let mut no_config = entries.clone();
    no_config.remove(2);
    add(
        "manifest names a missing config",
        with_manifest(no_config, &manifest),
        "is missing",
    );
    let mut short = manifest.clone();
    short[0]["Layers"].as_array_mut().unwrap().pop();
    add(
        "manifest lists too few layers",
        with_manifest(entries.clone(), &short),
        "layers length mismatch",
    );
    let mut broken = entries.clone();
    broken.push(("manifest.json".into(), b"[{\"Config\": ".to_vec()));
    add("manifest is not JSON", outer(&broken), "manifest.json");
    let (e, m) = docker_archive_parts(&image.config, &image.layers, json!(["arc/BAD:1"]));
    add("invalid tag", with_manifest(e, &m), "invalid tag");
    let mut windows = serde_json::from_slice::<Value>(&image.config).unwrap();
    windows["os"] = json!("windows");
    let (e, m) = docker_archive_parts(
        &serde_json::to_vec(&windows).unwrap(),
        &image.layers,
        json!(["arc/bad:1"]),
    );
    add(
        "image for another OS",
        with_manifest(e, &m),
        "cannot load windows image",
    );

    // OCI layout: content-addressed names and descriptor sizes are checked.
    let oci = image.oci_layout(
        "docker.io/arc/bad:1",
        &|l: &[u8]| l.to_vec(),
        "application/vnd.oci.image.layer.v1.tar",
    );
    let mut oci_files: Vec<(String, Vec<u8>)> = tar_files(&oci).into_iter().collect();
    let layer_hex = hex_of(&sha256(&image.layers[1])).to_owned();
    let tampered: Vec<(String, Vec<u8>)> = oci_files
        .iter()
        .map(|(p, d)| {
            let mut d = d.clone();
            if p.ends_with(&layer_hex) {
                let at = d.len() - 1100;
                d[at] ^= 1; // inside the end-of-archive padding: still a valid tar
            }
            (p.clone(), d)
        })
        .collect();
    add(
        "OCI blob does not match its name",
        outer(&tampered),
        "has digest",
    );
    let index: Value =
        serde_json::from_slice(&oci_files.iter().find(|(p, _)| p == "index.json").unwrap().1)
            .unwrap();
    let manifest_path = format!(
        "blobs/sha256/{}",
        hex_of(index["manifests"][0]["digest"].as_str().unwrap())
    );
    let without_manifest: Vec<(String, Vec<u8>)> = oci_files
        .iter()
        .filter(|(p, _)| *p != manifest_path)
        .cloned()
        .collect();
    add(
        "OCI index names a missing manifest",
        outer(&without_manifest),
        "is missing",
    );
    let mut oci_manifest: Value = serde_json::from_slice(
        &oci_files
            .iter()
            .find(|(p, _)| *p == manifest_path)
            .unwrap()
            .1,
    )
    .unwrap();
    oci_manifest["layers"][1]["size"] = json!(12345);
    let bytes = serde_json::to_vec(&oci_manifest).unwrap();
    let digest = sha256(&bytes);
    oci_files.retain(|(p, _)| *p != manifest_path && p != "index.json");
    oci_files.push((format!("blobs/sha256/{}", hex_of(&digest)), bytes.clone()));
    let mut index2 = index.clone();
    index2["manifests"][0]["digest"] = json!(digest);
    index2["manifests"][0]["size"] = json!(bytes.len());
    oci_files.push(("index.json".into(), serde_json::to_vec(&index2).unwrap()));
    add(
        "OCI layer size does not match its descriptor",
        outer(&oci_files),
        "expected 12345",
    );

    // Entries of the archive itself.
    let mut dotdot = entries.clone();
    dotdot.push((format!("{up}outside/victim"), b"pwned".to_vec()));
    add(
        "archive entry with ..",
        with_manifest(dotdot, &manifest),
        "path contains '..'",
    );
    let mut absolute = entries.clone();
    absolute.push((victim_abs.clone(), b"pwned".to_vec()));
    add(
        "archive entry with an absolute path",
        with_manifest(absolute, &manifest),
        "absolute path",
    );
    let mut fifo = raw_tar(&[Entry::Fifo("fifo")]);
    fifo.truncate(512);
    fifo.extend(with_manifest(entries.clone(), &manifest));
    add(
        "archive entry that is a fifo",
        fifo,
        "unexpected entry type",
    );
    let mut linked = manifest.clone();
    linked[0]["Layers"][1] = json!("evil/layer.tar");
    let mut with_link = raw_tar(&[Entry::Symlink("evil", &rel_outside)]);
    with_link.truncate(512);
    with_link.extend(with_manifest(entries.clone(), &linked));
    add(
        "archive symlink pointing outside",
        with_link,
        "link points outside the archive",
    );

    // Hostile layers.
    add(
        "layer entry with ..",
        image_with_top(&base, raw_tar(&[Entry::File(&rel_victim, b"pwned")])),
        "path contains '..'",
    );
    add(
        "absolute symlink out, then a write through it",
        image_with_top(
            &base,
            raw_tar(&[
                Entry::Symlink("esc", &outside_abs),
                Entry::File("esc/victim", b"pwned"),
            ]),
        ),
        "a parent directory is a symlink",
    );
    add(
        "relative symlink out, then a write through it",
        image_with_top(
            &base,
            raw_tar(&[
                Entry::Symlink("esc", &rel_outside),
                Entry::File("esc/victim", b"pwned"),
            ]),
        ),
        "a parent directory is a symlink",
    );
    add(
        "hardlink with .. out, then a write through it",
        image_with_top(
            &base,
            raw_tar(&[
                Entry::Hardlink("hl", &rel_victim),
                Entry::File("hl", b"pwned"),
            ]),
        ),
        "path contains '..'",
    );
    add(
        "hardlink to an absolute path, then a write through it",
        image_with_top(
            &base,
            raw_tar(&[
                Entry::Hardlink("hl", &victim_abs),
                Entry::File("hl", b"pwned"),
            ]),
        ),
        "hard link target does not exist in the layer",
    );
    add(
        "whiteout for a path outside the layer",
        image_with_top(&base, raw_tar(&[Entry::File(&rel_whiteout, b"")])),
        "path contains '..'",
    );
    add(
        "whiteout through a symlink out of the layer",
        image_with_top(
            &base,
            raw_tar(&[
                Entry::Symlink("esc", &outside_abs),
                Entry::File("esc/.wh.victim", b""),
            ]),
        ),
        "a parent directory is a symlink",
    );
    let mut bzip = b"BZh91AY&SY".to_vec();
    bzip.extend_from_slice(&[7u8; 600]);
    add(
        "bzip2 layer",
        image_with_top(&base, bzip),
        "unsupported archive compression: bzip2",
    );
    add(
        "layer that is not a tar",
        image_with_top(&base, b"{\"not\": \"a layer\"}".to_vec()),
        "not a tar archive",
    );

    // Compression bombs: 10 GB of zeros, in a layer and as the whole archive.
    let bomb_layer = gzip_bomb(&big_file_header("bomb", ten_gb), ten_gb);
    add(
        "gzip layer expanding to 10 GB",
        image_with_top(&base, bomb_layer),
        "size limit",
    );
    let zstd_frame = zstd(&vec![0u8; 1024 * 1024]);
    let mut zstd_bomb = zstd(&big_file_header("bomb", ten_gb));
    for _ in 0..ten_gb / (1024 * 1024) {
        zstd_bomb.extend_from_slice(&zstd_frame);
    }
    add(
        "zstd layer expanding to 10 GB",
        image_with_top(&base, zstd_bomb),
        "size limit",
    );
    add(
        "gzip archive expanding to 10 GB",
        gzip_bomb(&big_file_header("huge/layer.tar", ten_gb), ten_gb),
        "size limit",
    );
    cases
}

fn archive_refuses_bad_archives(env: &TestEnv) {
    let outside = env.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"original").unwrap();
    let cases = bad_cases(env, &outside);
    assert!(cases.len() >= 20, "a corpus of {} archives", cases.len());
    let before = store_state(env);
    let root_before = names(&env.root);
    let mut failures = Vec::new();
    for case in &cases {
        let started = std::time::Instant::now();
        let r = env.berth_stdin(&["load"], &case.bytes);
        let took = started.elapsed();
        let err = r.stderr.trim();
        let problems = [
            (r.code == 0, "load succeeded"),
            (err.lines().count() != 1, "not one error line"),
            (!err.contains(case.expect), "unexpected error"),
            (!loaded_lines(&r.stdout).is_empty(), "something was loaded"),
        ];
        for (failed, what) in problems {
            if failed {
                failures.push(format!(
                    "{}: {what}: code {} stderr {err:?}",
                    case.name, r.code
                ));
            }
        }
        let after = store_state(env);
        if after != before {
            failures.push(format!("{}: the store changed: {after:?}", case.name));
        }
        let image = env.data_root.join("image");
        for area in ["ingest", "trash"] {
            if !names(&image.join(area)).is_empty() {
                failures.push(format!("{}: {area} not empty", case.name));
            }
        }
        if std::fs::read(outside.join("victim")).unwrap() != b"original"
            || names(&outside) != ["victim"]
        {
            failures.push(format!("{}: wrote outside the data root", case.name));
            std::fs::write(outside.join("victim"), b"original").unwrap();
        }
        if names(&env.root) != root_before {
            failures.push(format!(
                "{}: new files in the test root: {:?}",
                case.name,
                names(&env.root)
            ));
        }
        println!("  refused {:<55} {took:>8.2?} {err}", case.name);
    }
    // The real docker CLI gets the same one line.
    if crate::harness::docker_exe().is_some() {
        for case in cases
            .iter()
            .filter(|c| c.name.contains("symlink out") || c.name == "garbage")
        {
            let r = env.docker_stdin(&["load"], &case.bytes).unwrap();
            if r.code != 1
                || r.stderr.trim().lines().count() != 1
                || !r.stderr.contains(case.expect)
            {
                failures.push(format!("docker load {}: {r:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(store_state(env), before);

    // An absolute path inside a layer is, as in Docker, a path inside the layer: it loads,
    // and the file lands in the image, not on the host.
    let victim = outside.join("victim");
    let base = busybox_layer(env);
    let top = raw_tar(&[Entry::File(victim.to_str().unwrap(), b"contained")]);
    let r = env.berth_stdin(&["load"], &image_with_top(&base, top));
    assert_eq!(loaded_lines(&r.ok()), ["Loaded image: arc/bad:1"]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    let cat = [
        "run",
        "--rm",
        "--network",
        "none",
        "arc/bad:1",
        "cat",
        victim.to_str().unwrap(),
    ];
    assert_eq!(env.berth(&cat).ok(), "contained");
    env.berth(&["rmi", "arc/bad:1"]).ok();
    assert_eq!(store_state(env), before);
    let _ = std::fs::remove_dir_all(&outside);
}

/// A second berth daemon that may not create device nodes (CAP_MKNOD dropped from its
/// bounding set, as in a rootless or restricted context): a layer with a device node is
/// refused with one line and leaves nothing.
fn archive_refuses_device_nodes_without_cap_mknod(env: &TestEnv) {
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.exists() {
        crate::skip("setpriv is not installed");
    }
    let base = busybox_layer(env);
    let top = raw_tar(&[Entry::Dir("dev/"), Entry::Char("dev/null", 1, 3)]);
    let archive = image_with_top(&base, top);
    let dir = env.root.join("r2"); // short: it is also the exec root (monitor socket paths)
    std::fs::create_dir_all(&dir).unwrap();
    let host = format!("unix://{}", dir.join("s").display());
    // No default bridge, and an nft table of its own (removed below), beside the harness's.
    let table = format!("ba{}", std::process::id());
    let log = std::fs::File::create(env.root.join("r2.log")).unwrap();
    let mut daemon = std::process::Command::new(setpriv)
        .args(["--bounding-set", "-mknod", "--inh-caps", "-mknod", "--"])
        .arg(crate::harness::berth_exe())
        .args([
            "daemon",
            "-H",
            &host,
            "--bridge",
            "none",
            "--nft-table",
            &table,
        ])
        .arg("--data-root")
        .arg(dir.join("d"))
        .arg("--exec-root")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn daemon");
    let up = env.eventually(20, || {
        std::os::unix::net::UnixStream::connect(dir.join("s")).is_ok()
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(
            up,
            "{}",
            std::fs::read_to_string(env.root.join("r2.log")).unwrap_or_default()
        );
        let mut load = std::process::Command::new(crate::harness::berth_exe())
            .args(["-H", &host, "load"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        load.stdin.take().unwrap().write_all(&archive).unwrap();
        let out = load.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("create device node"), "{err}");
        let image = dir.join("d/image");
        for area in ["ingest", "trash", "images", "layers", "blobs/sha256"] {
            assert_eq!(names(&image.join(area)), Vec::<String>::new(), "{area}");
        }
    }));
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    let leaks = crate::harness::remove_network_state(&table, &table);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(env.root.join("r2.log"));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(leaks.is_empty(), "{leaks:?}");
}
