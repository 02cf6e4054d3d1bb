use std::io::Write as _;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::protocol::manifest::ParsedManifest;

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).expect("name")
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).expect("tag")
}

/// Uploads `bytes` as a blob of `repo` the way the HTTP layer does.
fn upload(store: &Store, repo: &RepositoryName, bytes: &[u8]) -> Digest {
    let id = store.start_upload(repo).expect("start");
    let (mut file, size, _) = store.open_upload(repo, &id).expect("open");
    assert_eq!(size, 0);
    file.write_all(bytes).expect("write");
    let (hasher, size) = store.hash_upload(repo, &id).expect("hash");
    assert_eq!(size, bytes.len() as u64);
    let digest = Digest::from_hasher(hasher);
    store
        .finish_upload(repo, &id, &digest, &digest)
        .expect("finish");
    digest
}

fn image_manifest(config: &Digest, layers: &[&Digest], subject: Option<&Digest>) -> Vec<u8> {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 2},
        "layers": layers.iter().map(|d| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.as_str(), "size": 1})).collect::<Vec<_>>(),
    });
    if let Some(subject) = subject {
        doc["subject"] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.as_str(), "size": 1});
        doc["artifactType"] = json!("application/vnd.example.sig");
    }
    serde_json::to_vec(&doc).expect("json")
}

fn index(children: &[&Digest]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children.iter().map(|d| json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.as_str(), "size": 1})).collect::<Vec<_>>(),
    }))
    .expect("json")
}

fn put(
    store: &Store,
    repo: &RepositoryName,
    t: Option<&str>,
    bytes: &[u8],
) -> Result<Digest, RegistryError> {
    let parsed = ParsedManifest::parse(None, bytes).expect("parse");
    store.put_manifest(repo, t.map(tag).as_ref(), bytes, &parsed)
}

fn blob_files(root: &Path) -> usize {
    fs::read_dir(root.join("blobs/sha256")).expect("ls").count()
}

#[test]
fn layout_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("r");
    Store::open(&root).expect("open");
    assert_eq!(
        fs::read_to_string(root.join("version")).expect("version"),
        "1"
    );
    for sub in ["blobs/sha256", "uploads", "tmp", "repositories"] {
        assert!(root.join(sub).is_dir(), "{sub}");
    }
    fs::write(root.join("tmp/left-by-crash"), b"x").expect("write");
    Store::open(&root).expect("reopen");
    assert_eq!(fs::read_dir(root.join("tmp")).expect("ls").count(), 0);
    fs::write(root.join("version"), "2").expect("write");
    assert!(matches!(
        Store::open(&root),
        Err(RegistryError::LayoutVersion { .. })
    ));
    let key = {
        fs::write(root.join("version"), "1").expect("write");
        let store = Store::open(&root).expect("open");
        let key = store.token_key().expect("key");
        assert_eq!(store.token_key().expect("key again"), key, "kept");
        key
    };
    assert_ne!(key, [0; 32]);
}

#[test]
fn uploads_are_verified_and_scoped_to_their_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let (a, b) = (name("a"), name("team/b"));
    let digest = upload(&store, &a, b"layer bytes");
    assert_eq!(store.repository_blob(&a, &digest).expect("stat"), Some(11));
    assert_eq!(
        store.repository_blob(&b, &digest).expect("stat"),
        None,
        "another repository does not see it"
    );
    // A wrong digest: refused, the session gone, nothing visible.
    let id = store.start_upload(&a).expect("start");
    let (mut file, _, _) = store.open_upload(&a, &id).expect("open");
    file.write_all(b"other bytes").expect("write");
    let (hasher, _) = store.hash_upload(&a, &id).expect("hash");
    let actual = Digest::from_hasher(hasher);
    let claimed = Digest::of(b"something else");
    assert!(matches!(
        store.finish_upload(&a, &id, &claimed, &actual),
        Err(RegistryError::DigestMismatch { .. })
    ));
    assert_eq!(blob_files(dir.path()), 1);
    assert!(store.repository_blob(&a, &actual).expect("stat").is_none());
    assert!(matches!(
        store.upload_size(&a, &id),
        Err(RegistryError::UploadUnknown { .. })
    ));
    // A session belongs to the repository that started it.
    let id = store.start_upload(&a).expect("start");
    assert!(matches!(
        store.open_upload(&b, &id),
        Err(RegistryError::UploadUnknown { .. })
    ));
    store.cancel_upload(&a, &id).expect("cancel");
    assert_eq!(
        fs::read_dir(dir.path().join("uploads"))
            .expect("ls")
            .count(),
        0
    );
    // Mounting links a stored blob; the same bytes uploaded again are stored once.
    assert!(store.link_blob(&b, &digest).expect("mount"));
    assert!(store.repository_blob(&b, &digest).expect("stat").is_some());
    assert!(!store.link_blob(&b, &Digest::of(b"absent")).expect("mount"));
    assert_eq!(upload(&store, &b, b"layer bytes"), digest);
    assert_eq!(blob_files(dir.path()), 1);
    store.unlink_blob(&b, &digest).expect("unlink");
    assert!(store.repository_blob(&b, &digest).expect("stat").is_none());
    assert!(store.repository_blob(&a, &digest).expect("stat").is_some());
}

#[test]
fn purges_stale_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let id = store.start_upload(&name("a")).expect("start");
    assert_eq!(
        store
            .purge_uploads(Duration::from_secs(3600))
            .expect("purge"),
        0
    );
    assert!(store.upload_exists(&id));
    // A session started (by its record) long ago.
    let info = dir
        .path()
        .join("uploads")
        .join(id.as_str())
        .join("info.json");
    fs::write(&info, r#"{"repository":"a","started":1000}"#).expect("write");
    assert_eq!(
        store
            .purge_uploads(Duration::from_secs(3600))
            .expect("purge"),
        1
    );
    assert!(!store.upload_exists(&id));
}

#[test]
fn manifests_tags_and_repositories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let repo = name("library/app");
    let config = upload(&store, &repo, b"{}");
    let layer = upload(&store, &repo, b"layer");
    let missing = Digest::of(b"never uploaded");
    let bad = image_manifest(&config, &[&layer, &missing], None);
    assert!(matches!(
        put(&store, &repo, Some("v1"), &bad),
        Err(RegistryError::ManifestBlobUnknown { digest }) if digest == missing.as_str()
    ));
    // A blob of another repository is not enough.
    let other = name("other");
    let foreign = upload(&store, &other, b"foreign");
    let bad = image_manifest(&config, &[&foreign], None);
    assert!(matches!(
        put(&store, &repo, Some("v1"), &bad),
        Err(RegistryError::ManifestBlobUnknown { .. })
    ));
    assert_eq!(store.tags(&repo).expect("tags"), None, "nothing stored");

    let bytes = image_manifest(&config, &[&layer], None);
    let digest = put(&store, &repo, Some("v1"), &bytes).expect("put");
    assert_eq!(digest, Digest::of(&bytes));
    put(&store, &repo, Some("latest"), &bytes).expect("tag again");
    assert_eq!(
        store.resolve_tag(&repo, &tag("v1")).expect("resolve"),
        Some(digest.clone())
    );
    let stored = store
        .manifest(&repo, &digest)
        .expect("read")
        .expect("stored");
    assert_eq!(stored.bytes, bytes);
    assert_eq!(
        stored.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        store.tags(&repo).expect("tags"),
        Some(vec!["latest".into(), "v1".into()])
    );
    // The manifest is a blob of the repository too.
    assert!(
        store
            .repository_blob(&repo, &digest)
            .expect("stat")
            .is_some()
    );

    // Nested names are separate repositories.
    let parent = name("library");
    let config2 = upload(&store, &parent, b"{}");
    put(
        &store,
        &parent,
        Some("x"),
        &image_manifest(&config2, &[], None),
    )
    .expect("put");
    let names: Vec<String> = store
        .repositories()
        .expect("list")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["library", "library/app"], "`other` has no manifest");

    // An index needs its manifests in the repository.
    let absent = Digest::of(b"no such manifest");
    let parsed_index = index(&[&digest, &absent]);
    assert!(matches!(
        put(&store, &repo, Some("multi"), &parsed_index),
        Err(RegistryError::ManifestBlobUnknown { digest }) if digest == absent.as_str()
    ));
    let good_index = index(&[&digest]);
    put(&store, &repo, Some("multi"), &good_index).expect("index");

    store.delete_tag(&repo, &tag("latest")).expect("untag");
    assert!(matches!(
        store.delete_tag(&repo, &tag("latest")),
        Err(RegistryError::ManifestUnknown { .. })
    ));
    store.delete_manifest(&repo, &digest).expect("delete");
    assert_eq!(store.manifest(&repo, &digest).expect("read"), None);
    assert_eq!(
        store.tags(&repo).expect("tags"),
        Some(vec!["multi".into()]),
        "tags of a deleted manifest go with it"
    );
}

#[test]
fn referrers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let repo = name("app");
    let config = upload(&store, &repo, b"{}");
    let subject = put(
        &store,
        &repo,
        Some("v1"),
        &image_manifest(&config, &[], None),
    )
    .expect("put");
    // A referrer of a subject the registry does not have is accepted (OCI 1.1).
    let sig_bytes = image_manifest(&config, &[], Some(&subject));
    let sig = put(&store, &repo, None, &sig_bytes).expect("referrer");
    let unknown_subject = Digest::of(b"elsewhere");
    put(
        &store,
        &repo,
        None,
        &image_manifest(&config, &[], Some(&unknown_subject)),
    )
    .expect("ok");
    let list = store.referrers(&repo, &subject).expect("referrers");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, sig.as_str());
    assert_eq!(list[0].size, sig_bytes.len() as u64);
    assert_eq!(
        list[0].artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    store.delete_manifest(&repo, &sig).expect("delete");
    assert!(
        store
            .referrers(&repo, &subject)
            .expect("referrers")
            .is_empty()
    );
}

// One scenario: each collection runs on what the previous one left.
#[allow(clippy::too_many_lines)]
#[test]
fn garbage_collection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let repo = name("app");
    let config = upload(&store, &repo, b"{}");
    let kept_layer = upload(&store, &repo, b"kept");
    let orphan = upload(&store, &repo, b"orphan");
    let tagged = put(
        &store,
        &repo,
        Some("v1"),
        &image_manifest(&config, &[&kept_layer], None),
    )
    .expect("put");
    let untagged_layer = upload(&store, &repo, b"untagged layer");
    let untagged = put(
        &store,
        &repo,
        None,
        &image_manifest(&config, &[&untagged_layer], None),
    )
    .expect("put");
    let child_layer = upload(&store, &repo, b"child layer");
    let child = put(
        &store,
        &repo,
        None,
        &image_manifest(&config, &[&child_layer], None),
    )
    .expect("child");
    let list = put(&store, &repo, Some("multi"), &index(&[&child])).expect("index");
    let sig = put(
        &store,
        &repo,
        None,
        &image_manifest(&config, &[], Some(&tagged)),
    )
    .expect("sig");
    let blobs_before = blob_files(dir.path());

    // Within the grace period nothing goes.
    let young = GcOptions {
        dry_run: false,
        delete_untagged: true,
        grace: Duration::from_secs(3600),
    };
    let report = store.collect_garbage(&young).expect("gc");
    assert!(report.blobs_removed.is_empty() && report.manifests_removed.is_empty());
    assert_eq!(report.blobs_young, 1, "the orphan is young");

    // Dry: reported, nothing removed.
    let dry = GcOptions {
        dry_run: true,
        delete_untagged: false,
        grace: Duration::ZERO,
    };
    let report = store.collect_garbage(&dry).expect("gc");
    assert_eq!(
        report
            .blobs_removed
            .iter()
            .map(|b| &b.0)
            .collect::<Vec<_>>(),
        [&orphan]
    );
    assert_eq!(blob_files(dir.path()), blobs_before);

    // Untagged manifests stay without --delete-untagged.
    let plain = GcOptions {
        dry_run: false,
        ..dry.clone()
    };
    let report = store.collect_garbage(&plain).expect("gc");
    assert_eq!(report.blobs_removed.len(), 1);
    assert_eq!(report.bytes_freed(), 6);
    assert!(
        store
            .repository_blob(&repo, &orphan)
            .expect("stat")
            .is_none()
    );
    assert!(
        !store.layer_link(&repo, &orphan).exists(),
        "links to removed blobs go too"
    );
    assert!(store.manifest(&repo, &untagged).expect("read").is_some());

    // -m: the untagged manifest and its layer go; the index's child and the tagged
    // manifest's referrer stay.
    let untag = GcOptions {
        dry_run: false,
        delete_untagged: true,
        grace: Duration::ZERO,
    };
    let report = store.collect_garbage(&untag).expect("gc");
    assert_eq!(report.manifests_removed, [(repo.clone(), untagged.clone())]);
    let mut removed: Vec<Digest> = report.blobs_removed.iter().map(|b| b.0.clone()).collect();
    removed.sort();
    let mut expected = vec![untagged.clone(), untagged_layer.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    for digest in [&tagged, &child, &list, &sig] {
        assert!(
            store.manifest(&repo, digest).expect("read").is_some(),
            "{digest}"
        );
    }
    for digest in [&config, &kept_layer, &child_layer] {
        assert!(
            store
                .repository_blob(&repo, digest)
                .expect("stat")
                .is_some(),
            "{digest}"
        );
    }
    // A second run finds nothing.
    let report = store.collect_garbage(&untag).expect("gc");
    assert!(report.blobs_removed.is_empty() && report.manifests_removed.is_empty());
}

#[test]
fn gc_waits_for_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(Store::open(dir.path()).expect("open"));
    let guard = store.commit_guard().expect("guard");
    let collector = {
        let store = store.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            store
                .collect_garbage(&GcOptions {
                    dry_run: false,
                    delete_untagged: false,
                    grace: Duration::ZERO,
                })
                .expect("gc");
            started.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(guard);
    let waited = collector.join().expect("join");
    assert!(
        waited >= Duration::from_millis(250),
        "gc waited for the commit: {waited:?}"
    );
}

#[test]
fn a_blob_committed_after_a_long_session_is_young() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let repo = name("slow");
    let id = store.start_upload(&repo).expect("start");
    let (mut file, _, path) = store.open_upload(&repo, &id).expect("open");
    file.write_all(b"written long ago").expect("write");
    // The session's last write was two hours ago; the client finishes it now.
    file.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .expect("age");
    drop(file);
    assert!(path.exists());
    let (hasher, _) = store.hash_upload(&repo, &id).expect("hash");
    let digest = Digest::from_hasher(hasher);
    store
        .finish_upload(&repo, &id, &digest, &digest)
        .expect("finish");
    // A collection now (before the manifest that will use it) spares it.
    let report = store
        .collect_garbage(&GcOptions {
            dry_run: false,
            delete_untagged: false,
            grace: Duration::from_secs(3600),
        })
        .expect("gc");
    assert!(report.blobs_removed.is_empty(), "{report:?}");
    assert!(
        store
            .repository_blob(&repo, &digest)
            .expect("stat")
            .is_some()
    );
}
