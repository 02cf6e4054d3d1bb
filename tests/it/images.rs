//! Integration tests: commit, history, df, prune, rmi, import/export.

use std::path::{Path, PathBuf};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "commit_captures_the_diff_and_the_config",
        commit_captures_the_diff_and_the_config,
    ),
    (
        "commit_opaque_dirs_and_shared_snapshots",
        commit_opaque_dirs_and_shared_snapshots,
    ),
    (
        "commit_pauses_a_running_container",
        commit_pauses_a_running_container,
    ),
    (
        "commit_refusals_leave_nothing",
        commit_refusals_leave_nothing,
    ),
    (
        "rmi_children_parents_and_history",
        rmi_children_parents_and_history,
    ),
    ("image_prune_and_system_df", image_prune_and_system_df),
    (
        "export_import_round_trip_keeps_everything",
        export_import_round_trip_keeps_everything,
    ),
    (
        "import_from_file_stdin_and_url",
        import_from_file_stdin_and_url,
    ),
    (
        "import_bad_archives_leave_nothing",
        import_bad_archives_leave_nothing,
    ),
    (
        "import_compression_bomb_stops_at_the_disk",
        import_compression_bomb_stops_at_the_disk,
    ),
    (
        "bootstrap_debian_refusals_leave_nothing",
        bootstrap_debian_refusals_leave_nothing,
    ),
    ("bootstrap_debian_runs_bash", bootstrap_debian_runs_bash),
    ("bootstrap_busybox_config", bootstrap_busybox_config),
    ("docker_cli_image_commands", docker_cli_image_commands),
    (
        "images_list_flags_and_filters",
        images_list_flags_and_filters,
    ),
    (
        "graph_driver_data_names_the_layer_dirs",
        graph_driver_data_names_the_layer_dirs,
    ),
];

/// The entries of a stored layer tar (uncompressed), by name.
fn layer_entries(env: &TestEnv, diff_id: &str) -> Vec<(String, tar::EntryType)> {
    let hex = diff_id.trim_start_matches("sha256:");
    let path = env.data_root.join("image/blobs/sha256").join(hex);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            (
                name.trim_end_matches('/').to_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}

fn layers_of(env: &TestEnv, image: &str) -> Vec<String> {
    let out = env
        .berth(&[
            "image",
            "inspect",
            "-f",
            "{{range .RootFS.Layers}}{{.}} {{end}}",
            image,
        ])
        .ok();
    out.split_whitespace().map(str::to_owned).collect()
}

fn snapshot_dirs(env: &TestEnv) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(env.data_root.join("image/layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

fn image_count(env: &TestEnv) -> usize {
    env.berth(&["images", "-aq", "--no-trunc"])
        .ok()
        .lines()
        .count()
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn commit_captures_the_diff_and_the_config(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "cm-src",
        "busybox",
        "sh",
        "-c",
        "echo hi > /hello && ln /hello /hello2 && ln -s /hello /hellolink && rm /etc/group \
         && mkdir -p /tmp/x && echo y > /tmp/x/y && chmod 4755 /tmp/x/y && mkfifo /fifo",
    ])
    .ok();
    let busybox_id = env
        .berth(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok();
    let id = env
        .berth(&[
            "commit",
            "-m",
            "the message",
            "-a",
            "Tester <t@example.com>",
            "-c",
            "ENV FOO=bar",
            "-c",
            "CMD [\"cat\", \"/hello\"]",
            "-c",
            "WORKDIR /tmp",
            "-c",
            "LABEL stage=one",
            "-c",
            "EXPOSE 8080",
            "-c",
            "USER root",
            "-c",
            "VOLUME /data",
            "cm-src",
            "committed:v1",
        ])
        .ok();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(env.berth(&["run", "--rm", "committed:v1"]).ok(), "hi");
    let seen = env
        .berth(&[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "test ! -e /etc/group && cat /tmp/x/y && pwd && echo $FOO && stat -c '%h %a' /hello /tmp/x/y \
             && readlink /hellolink && test -p /fifo && echo fifo",
        ])
        .ok();
    assert_eq!(seen, "y\n/tmp\nbar\n2 644\n1 4755\n/hello\nfifo");

    let inspect = |template: &str| {
        env.berth(&["image", "inspect", "-f", template, "committed:v1"])
            .ok()
    };
    assert_eq!(inspect("{{.Id}}"), id);
    assert_eq!(inspect("{{.Comment}}"), "the message");
    assert_eq!(inspect("{{.Author}}"), "Tester <t@example.com>");
    assert_eq!(inspect("{{.Parent}}"), busybox_id);
    assert_eq!(inspect("{{.Config.Labels.stage}}"), "one");
    assert_eq!(inspect("{{.Config.User}}"), "root");
    assert_eq!(inspect("{{.Config.WorkingDir}}"), "/tmp");
    assert_eq!(
        inspect("{{json .Config.ExposedPorts}}"),
        r#"{"8080/tcp":{}}"#
    );
    assert_eq!(inspect("{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    assert!(inspect("{{json .Config.Env}}").contains("FOO=bar"));

    // The new layer is exactly the container's diff: whiteout for the deletion, a hard link
    // entry, none of the files the engine bind-mounts.
    let layers = layers_of(env, "committed:v1");
    assert_eq!(layers.len(), layers_of(env, "busybox").len() + 1);
    let entries = layer_entries(env, layers.last().unwrap());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "hello",
        "hello2",
        "hellolink",
        "etc/.wh.group",
        "tmp/x/y",
        "fifo",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for unwanted in ["etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/group"] {
        assert!(!names.contains(&unwanted), "{unwanted} in {names:?}");
    }
    let kind = |name: &str| entries.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(kind("hello2"), tar::EntryType::Link);
    assert_eq!(kind("hellolink"), tar::EntryType::Symlink);
    assert_eq!(kind("fifo"), tar::EntryType::Fifo);

    // History: the committed layer says what made it.
    let history = env
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "committed:v1",
        ])
        .ok();
    let first = history.lines().next().unwrap();
    assert!(first.starts_with("sh -c echo hi > /hello"), "{history}");
    assert!(first.ends_with("|the message"), "{history}");
    assert!(
        history.lines().any(|l| l.contains("bootstrap busybox")),
        "{history}"
    );

    // The real docker CLI commits the same way.
    if let Some(r) = env.docker(&[
        "commit",
        "-c",
        "CMD [\"echo\", \"from docker\"]",
        "cm-src",
        "viadocker:1",
    ]) {
        let docker_id = r.ok();
        assert!(docker_id.starts_with("sha256:"), "{docker_id}");
        assert_eq!(
            env.berth(&["run", "--rm", "viadocker:1"]).ok(),
            "from docker"
        );
        let parent = env
            .docker(&["image", "inspect", "-f", "{{.Parent}}", "viadocker:1"])
            .unwrap()
            .ok();
        assert_eq!(parent, busybox_id);
        env.berth(&["rmi", "viadocker:1"]).ok();
    }

    // Without a name the image is dangling.
    let dangling = env.berth(&["commit", "cm-src"]).ok();
    let listed = env
        .berth(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
        .ok();
    assert!(listed.lines().any(|l| l == dangling), "{listed}");
    env.berth(&["rmi", &dangling]).ok();
    env.berth(&["rm", "cm-src"]).ok();
    env.berth(&["rmi", "committed:v1"]).ok();
}

fn commit_opaque_dirs_and_shared_snapshots(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "op-1",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo old > /d/old && echo old > /d/sub/f",
    ])
    .ok();
    env.berth(&["commit", "op-1", "opaque:base"]).ok();
    env.berth(&[
        "run",
        "--name",
        "op-2",
        "opaque:base",
        "sh",
        "-c",
        "rm -rf /d && mkdir /d && echo new > /d/new",
    ])
    .ok();
    env.berth(&["commit", "op-2", "opaque:top"]).ok();
    let layers = layers_of(env, "opaque:top");
    let entries = layer_entries(env, layers.last().unwrap());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"d/.wh..wh..opq"), "{names:?}");
    assert!(names.contains(&"d/new"), "{names:?}");
    assert_eq!(
        env.berth(&["run", "--rm", "opaque:top", "sh", "-c", "ls -A /d"])
            .ok(),
        "new"
    );

    // One snapshot per layer chain: containers of the image add none.
    let before = snapshot_dirs(env);
    for name in ["sh-1", "sh-2", "sh-3"] {
        env.berth(&["create", "--name", name, "opaque:top", "true"])
            .ok();
    }
    assert_eq!(
        snapshot_dirs(env),
        before,
        "containers share the image's snapshots"
    );
    let top_hex = env
        .berth(&["image", "inspect", "-f", "{{.Id}}", "opaque:top"])
        .ok();
    assert!(top_hex.starts_with("sha256:"));
    // The committed file exists once on disk, in the snapshot of its chain.
    let found: Vec<PathBuf> = before
        .iter()
        .map(|d| d.join("diff/d/new"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    for name in ["sh-1", "sh-2", "sh-3", "op-1", "op-2"] {
        env.berth(&["rm", name]).ok();
    }
    env.berth(&["rmi", "opaque:top", "opaque:base"]).ok();
    assert!(
        !found[0].exists(),
        "the last user gone, the snapshot is removed"
    );
}

fn commit_pauses_a_running_container(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "cm-live",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; exec sleep 1000",
    ])
    .ok();
    assert!(env.eventually(10, || {
        env.berth(&["exec", "cm-live", "cat", "/live"])
            .stdout
            .trim()
            == "live"
    }));
    env.berth(&["commit", "cm-live", "live:1"]).ok();
    assert_eq!(env.inspect("cm-live", "{{.State.Status}}"), "running");
    env.berth(&["container", "commit", "-p=false", "cm-live", "live:2"])
        .ok();
    assert_eq!(env.inspect("cm-live", "{{.State.Status}}"), "running");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let events = env
        .berth(&[
            "events",
            "--since",
            &(now - 60).to_string(),
            "--until",
            &(now + 1).to_string(),
            "--filter",
            "container=cm-live",
        ])
        .ok();
    // Paused and unpaused around the first commit only; a commit event for each.
    assert_eq!(events.matches("container pause ").count(), 1, "{events}");
    assert_eq!(events.matches("container unpause ").count(), 1, "{events}");
    assert_eq!(events.matches("container commit ").count(), 2, "{events}");
    for image in ["live:1", "live:2"] {
        assert_eq!(
            env.berth(&["run", "--rm", image, "cat", "/live"]).ok(),
            "live"
        );
    }
    env.berth(&["rm", "-f", "cm-live"]).ok();
    env.berth(&["rmi", "live:1", "live:2"]).ok();
}

fn commit_refusals_leave_nothing(env: &TestEnv) {
    env.berth(&["create", "--name", "cm-bad", "busybox", "true"])
        .ok();
    let images = image_count(env);
    let blobs = |root: &Path| {
        std::fs::read_dir(root.join("image/blobs/sha256"))
            .unwrap()
            .count()
    };
    let blobs_before = blobs(&env.data_root);
    let r = env.berth(&["commit", "nosuchcontainer", "x:1"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("No such container: nosuchcontainer"),
        "{r:?}"
    );
    let r = env.berth(&["commit", "-c", "RUN echo", "cm-bad", "x:1"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("run is not a valid change command"),
        "{r:?}"
    );
    let r = env.berth(&["commit", "cm-bad", "Upper:1"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {r:?}");
    assert_eq!(image_count(env), images);
    assert_eq!(blobs(&env.data_root), blobs_before);
    env.berth(&["rm", "cm-bad"]).ok();
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:")[..12].to_owned()
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn rmi_children_parents_and_history(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "rp-1",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/a bs=1000 count=1000 2>/dev/null",
    ])
    .ok();
    let parent = env.berth(&["commit", "-m", "one", "rp-1", "parent:1"]).ok();
    env.berth(&[
        "run",
        "--name",
        "rp-2",
        "parent:1",
        "sh",
        "-c",
        "echo b > /b",
    ])
    .ok();
    let child = env.berth(&["commit", "rp-2", "child:1"]).ok();
    env.berth(&["rm", "rp-1", "rp-2"]).ok();

    // History: newest first, one line per layer, the committed layer's own size.
    let history = env
        .berth(&[
            "history",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
            "child:1",
        ])
        .ok();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].starts_with(&format!("{}|sh -c echo b > /b|", short(&child))),
        "{history}"
    );
    assert!(
        lines[1].starts_with("<missing>|sh -c dd if=/dev/zero"),
        "{history}"
    );
    assert!(lines[1].ends_with("|1MB|one"), "{history}");
    assert!(
        lines[2].contains("berth image bootstrap busybox"),
        "{history}"
    );
    let quiet = env.berth(&["history", "-q", "child:1"]).ok();
    assert_eq!(
        quiet.lines().next(),
        Some(short(&child).as_str()),
        "{quiet}"
    );
    let full = env.berth(&["history", "--no-trunc", "-q", "child:1"]).ok();
    assert_eq!(full.lines().next(), Some(child.as_str()), "{full}");

    // The parent's last tag goes, the image stays: a child stands on it.
    let r = env.berth(&["rmi", "parent:1"]).ok();
    assert_eq!(
        r,
        "Untagged: parent:1:latest".replace(":1:latest", ":1"),
        "{r}"
    );
    let all = env.berth(&["images", "-aq", "--no-trunc"]).ok();
    assert!(
        all.lines().any(|l| l == parent),
        "images -a shows intermediates: {all}"
    );
    let top = env.berth(&["images", "-q", "--no-trunc"]).ok();
    assert!(
        !top.lines().any(|l| l == parent),
        "images hides intermediates: {top}"
    );
    let r = env.berth(&["rmi", "-f", &parent]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("image has dependent child images"),
        "{r:?}"
    );
    // Removing the child takes the dangling parent along.
    let r = env.berth(&["rmi", "child:1"]).ok();
    assert!(r.contains(&format!("Deleted: {child}")), "{r}");
    assert!(r.contains(&format!("Deleted: {parent}")), "{r}");
    let all = env.berth(&["images", "-aq", "--no-trunc"]).ok();
    assert!(!all.contains(&parent) && !all.contains(&child), "{all}");

    // Several at once, by the ids `images -q` prints; --no-prune keeps the parent.
    env.berth(&["run", "--name", "rp-3", "busybox", "true"])
        .ok();
    let a = env.berth(&["commit", "rp-3", "multi:a"]).ok();
    env.berth(&["rm", "rp-3"]).ok();
    env.berth(&["run", "--name", "rp-4", "multi:a", "touch", "/x"])
        .ok();
    let b = env.berth(&["commit", "rp-4", "multi:b"]).ok();
    env.berth(&["rm", "rp-4"]).ok();
    env.berth(&["rmi", "multi:a"]).ok();
    env.berth(&["rmi", "--no-prune", "multi:b"]).ok();
    let all = env.berth(&["images", "-aq", "--no-trunc"]).ok();
    assert!(all.lines().any(|l| l == a) && !all.contains(&b), "{all}");
    env.berth(&["tag", &a, "multi:c"]).ok();
    env.berth(&["tag", &a, "multi:d"]).ok();
    let ids = env
        .berth(&["images", "-q", "--filter", "reference=multi"])
        .ok();
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2, "two tags, one image, listed per tag");
    let mut args = vec!["rmi", "-f"];
    args.extend(ids);
    let r = env.berth(&args);
    assert!(r.stdout.contains(&format!("Deleted: {a}")), "{r:?}");
}

fn image_prune_and_system_df(env: &TestEnv) {
    let images_size = || {
        env.berth(&["system", "df", "--format", "{{.Type}}={{.Size}}"])
            .ok()
            .lines()
            .find_map(|l| l.strip_prefix("Images=").map(str::to_owned))
            .unwrap()
    };
    let before = images_size();
    env.berth(&[
        "run",
        "--name",
        "df-1",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ])
    .ok();
    let dangling = env.berth(&["commit", "df-1"]).ok();
    let labelled = env
        .berth(&["commit", "-c", "LABEL prune=me", "df-1", "prune:labelled"])
        .ok();
    let kept = env.berth(&["commit", "df-1", "prune:kept"]).ok();
    // Shared layers count once: three images on busybox's layer, a few bytes more.
    assert_eq!(images_size(), before);
    let rows = env
        .berth(&[
            "system",
            "df",
            "--format",
            "{{.Type}}|{{.TotalCount}}|{{.Active}}",
        ])
        .ok();
    let images = env.berth(&["images", "-aq"]).ok().lines().count();
    let containers = env.berth(&["ps", "-aq"]).ok().lines().count();
    assert!(rows.contains(&format!("Images|{images}|")), "{rows}");
    assert!(
        rows.contains(&format!("Containers|{containers}|")),
        "{rows}"
    );
    assert!(rows.contains("Local Volumes|0|0"), "{rows}");
    let verbose = env.berth(&["system", "df", "-v"]).ok();
    for section in [
        "Images space usage:",
        "SHARED SIZE",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ] {
        assert!(verbose.contains(section), "{section}: {verbose}");
    }
    assert!(verbose.contains("prune        kept"), "{verbose}");
    if let Some(r) = env.docker(&["system", "df"]) {
        let out = r.ok();
        assert!(
            out.contains("Images") && out.contains("RECLAIMABLE"),
            "{out}"
        );
        let v = env.docker(&["system", "df", "-v"]).unwrap().ok();
        assert!(v.contains("prune        kept"), "{v}");
    }
    env.berth(&["rm", "df-1"]).ok();

    // until=1h keeps everything this young; label picks one; dangling by default.
    let r = env
        .berth(&["image", "prune", "-a", "-f", "--filter", "until=1h"])
        .ok();
    assert!(r.contains("Total reclaimed space: 0B"), "{r}");
    let r = env
        .berth(&["image", "prune", "-a", "-f", "--filter", "label=prune=me"])
        .ok();
    assert!(r.contains(&format!("deleted: {labelled}")), "{r}");
    assert!(!r.contains(&kept), "{r}");
    let r = env.berth(&["image", "prune", "-f"]).ok();
    assert!(r.contains(&format!("deleted: {dangling}")), "{r}");
    assert!(!r.contains(&kept), "{r}");
    let r = env.berth(&["image", "prune", "-f", "--filter", "until=soon"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid filter 'until=soon'"), "{r:?}");
    env.berth(&["rmi", "prune:kept"]).ok();
}

/// What a tree looks like, path by path: type and mode, owner, device number, size, link
/// target, extended attributes, and which paths share an inode.
fn describe_tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut inodes: std::collections::HashMap<u64, String> = Default::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(name);
            let path = root.join(&rel);
            let m = std::fs::symlink_metadata(&path).unwrap();
            let mut line = format!(
                "{} mode={:o} owner={}:{} rdev={}",
                rel.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.rdev()
            );
            if m.is_file() {
                line += &format!(" size={}", m.len());
                if m.nlink() > 1 {
                    let first = inodes
                        .entry(m.ino())
                        .or_insert_with(|| rel.display().to_string());
                    line += &format!(" inode-of={first}");
                }
            }
            if m.file_type().is_symlink() {
                line += &format!(" -> {}", std::fs::read_link(&path).unwrap().display());
            } else {
                for attr in ["user.berth", "security.capability"] {
                    if let Ok(Some(v)) = xattr_get(&path, attr) {
                        line += &format!(" {attr}={v:?}");
                    }
                }
            }
            out.push(line);
            if m.is_dir() {
                stack.push(rel);
            }
        }
    }
    out.sort();
    out
}

fn xattr_get(path: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    xattr::get(path, name)
}

fn sh(script: &str) {
    let st = std::process::Command::new("sh")
        .args(["-ec", script])
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

fn export_import_round_trip_keeps_everything(env: &TestEnv) {
    let dir = env.root.join("rt");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let s = src.display();
    sh(&format!(
        "cd {s} && mkdir -p bin etc empty/deeper sticky dev && cp /bin/busybox bin/busybox && ln -s busybox bin/sh \
         && ln -s busybox bin/cat && ln -s busybox bin/stat \
         && echo secret > etc/shadow && chmod 0600 etc/shadow && chown 1234:5678 etc/shadow \
         && echo s > bin/suid && chmod 4755 bin/suid && chmod 1777 sticky && chmod 0700 empty/deeper \
         && echo linked > etc/a && ln etc/a etc/b && ln -s /etc/a abs-link && ln -s ../nowhere dangling \
         && mknod dev/null0 c 1 3 && mknod dev/blk b 7 0 && mkfifo dev/fifo && chown 7:8 dev/null0 \
         && setcap cap_net_raw+ep bin/suid"
    ));
    xattr::set(src.join("etc/a"), "user.berth", b"kept").unwrap();
    // setcap clears setuid on some versions; restate the mode after it.
    sh(&format!("chmod 4755 {s}/bin/suid"));
    let tar1 = dir.join("1.tar");
    sh(&format!(
        "tar --xattrs --xattrs-include='*' --numeric-owner -C {s} -cf {} .",
        tar1.display()
    ));
    env.berth(&["import", tar1.to_str().unwrap(), "rt:1"]).ok();
    let c1 = env.berth(&["create", "rt:1", "true"]).ok();
    let tar2 = dir.join("2.tar");
    env.berth(&["export", "-o", tar2.to_str().unwrap(), &c1])
        .ok();
    env.berth(&["rm", &c1]).ok();
    // Second round through the real docker CLI when present.
    let image2 = if let Some(r) =
        env.docker_stdin(&["import", "-", "rt:2"], &std::fs::read(&tar2).unwrap())
    {
        r.ok();
        "rt:2"
    } else {
        env.berth(&["import", tar2.to_str().unwrap(), "rt:2"]).ok();
        "rt:2"
    };
    let c2 = env.berth(&["create", image2, "true"]).ok();
    let tar3 = dir.join("3.tar");
    let out = std::process::Command::new(crate::harness::berth_exe())
        .env("BERTH_HOST", env.host())
        .args(["export", &c2])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&tar3, &out.stdout).unwrap();
    env.berth(&["rm", &c2]).ok();

    let back = dir.join("back");
    std::fs::create_dir_all(&back).unwrap();
    sh(&format!(
        "tar --xattrs --xattrs-include='*' --numeric-owner -C {} -xpf {}",
        back.display(),
        tar3.display()
    ));
    let (want, got) = (describe_tree(&src), describe_tree(&back));
    // Everything but the directory mtimes the extraction touched.
    assert_eq!(got, want);
    assert!(want.iter().any(|l| l.contains("user.berth")), "{want:?}");
    assert!(
        want.iter().any(|l| l.contains("security.capability")),
        "{want:?}"
    );
    // And a container sees it through the overlay.
    let seen = env
        .berth(&[
            "run",
            "--rm",
            "rt:2",
            "stat",
            "-c",
            "%a %u:%g %h",
            "/bin/suid",
            "/etc/shadow",
            "/etc/a",
        ])
        .ok();
    assert_eq!(seen, "4755 0:0 1\n600 1234:5678 1\n644 0:0 2");
    env.berth(&["rmi", "rt:1", "rt:2"]).ok();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Serves `body` to `count` GET requests on 127.0.0.1; returns the URL.
fn serve_file(body: Vec<u8>, count: usize, path: &str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/x-tar\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}{path}")
}

/// A rootfs tar with busybox in it, gzip-compressed when asked.
fn busybox_rootfs_tar(env: &TestEnv, name: &str, gzip: bool) -> PathBuf {
    let dir = env.root.join(format!("{name}-tree"));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "echo"] {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    let tar = env.root.join(name);
    sh(&format!(
        "tar -C {} -c{}f {} .",
        dir.display(),
        if gzip { "z" } else { "" },
        tar.display()
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    tar
}

fn import_from_file_stdin_and_url(env: &TestEnv) {
    let plain = busybox_rootfs_tar(env, "imp-plain.tar", false);
    let gz = busybox_rootfs_tar(env, "imp-gz.tar.gz", true);
    let zst = env.root.join("imp.tar.zst");
    sh(&format!(
        "zstd -q -f {} -o {}",
        plain.display(),
        zst.display()
    ));

    // File (gzip), with changes and a message.
    env.berth(&[
        "import",
        "-m",
        "from a file",
        "-c",
        "ENV WHO=file",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo $WHO\"]",
        gz.to_str().unwrap(),
        "imp:file",
    ])
    .ok();
    assert_eq!(env.berth(&["run", "--rm", "imp:file"]).ok(), "file");
    assert_eq!(
        env.berth(&["history", "--format", "{{.Comment}}", "imp:file"])
            .ok(),
        "from a file"
    );
    // stdin (zstd), piped: quiet but for the id.
    let r = env.berth_stdin(&["import", "-", "imp:stdin"], &std::fs::read(&zst).unwrap());
    let id = r.ok();
    assert!(id.starts_with("sha256:") && !id.contains('\n'), "{id}");
    assert_eq!(
        env.berth(&["run", "--rm", "imp:stdin", "echo", "ok"]).ok(),
        "ok"
    );
    // A URL on loopback, through berth and docker.
    let url = serve_file(std::fs::read(&plain).unwrap(), 2, "/rootfs.tar");
    env.berth(&["import", "-c", "CMD [\"echo\", \"url\"]", &url, "imp:url"])
        .ok();
    assert_eq!(env.berth(&["run", "--rm", "imp:url"]).ok(), "url");
    assert_eq!(
        env.berth(&["history", "--format", "{{.Comment}}", "imp:url"])
            .ok(),
        format!("Imported from {url}")
    );
    if let Some(r) = env.docker(&["import", &url, "imp:docker-url"]) {
        let out = r.ok();
        assert!(
            out.ends_with(
                &env.berth(&["image", "inspect", "-f", "{{.Id}}", "imp:docker-url"])
                    .ok()
            ),
            "{out}"
        );
        env.berth(&["rmi", "imp:docker-url"]).ok();
    }
    // What cannot be fetched: one line, nothing made.
    let images = image_count(env);
    for (source, wanted) in [
        (
            "http://127.0.0.1:1/x.tar",
            "\"http://127.0.0.1:1/x.tar\": Connection refused",
        ),
        // https is fetched too (rustls, the registry client's HTTP client).
        (
            "https://127.0.0.1:1/x.tar",
            "\"https://127.0.0.1:1/x.tar\": Connection refused",
        ),
    ] {
        let r = env.berth(&["import", source, "imp:bad"]);
        assert_ne!(r.code, 0, "{source}");
        assert!(r.stderr.contains(wanted), "{source}: {r:?}");
        assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    }
    let missing = serve_file(Vec::new(), 0, "/none");
    let r = env.berth(&["import", &missing, "imp:bad"]);
    assert_ne!(r.code, 0);
    assert_eq!(image_count(env), images);
    env.berth(&["rmi", "imp:file", "imp:stdin", "imp:url"]).ok();
}

/// Blobs, snapshots and ingest entries on disk.
fn store_files(env: &TestEnv) -> (usize, usize, usize) {
    let count = |p: &str| {
        std::fs::read_dir(env.data_root.join("image").join(p))
            .unwrap()
            .count()
    };
    (count("blobs/sha256"), count("layers"), count("ingest"))
}

fn raw_tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in entries {
        let mut header = tar::Header::new_old();
        // Written raw: the tar crate refuses to build `..` names itself.
        let bytes = header.as_mut_bytes();
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(*kind);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn import_bad_archives_leave_nothing(env: &TestEnv) {
    use tar::EntryType as T;
    let before = store_files(env);
    let images = image_count(env);
    let host_marker = "/tmp/berth-escape-marker";
    let _ = std::fs::remove_file(host_marker);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            raw_tar(&[(
                "../../../../tmp/berth-escape-marker",
                T::Regular,
                b"x",
                None,
            )]),
            "path contains '..'",
        ),
        (
            "symlink then write through it",
            raw_tar(&[
                ("escape", T::Symlink, b"", Some("/tmp")),
                ("escape/berth-escape-marker", T::Regular, b"x", None),
            ]),
            "a parent directory is a symlink",
        ),
        (
            "hardlink to a host file",
            raw_tar(&[("passwd", T::Link, b"", Some("/etc/passwd"))]),
            "hard link target does not exist in the layer",
        ),
        (
            "hardlink outside",
            raw_tar(&[("passwd", T::Link, b"", Some("../../../etc/passwd"))]),
            "path contains '..'",
        ),
        (
            "whiteout outside the layer",
            raw_tar(&[("../.wh.etc", T::Regular, b"", None)]),
            "path contains '..'",
        ),
        (
            "whiteout through a symlink",
            raw_tar(&[
                ("etc", T::Symlink, b"", Some("/etc")),
                ("etc/.wh.passwd", T::Regular, b"", None),
            ]),
            "a parent directory is a symlink",
        ),
        (
            "truncated",
            raw_tar(&[("big", T::Regular, &[7u8; 4096], None)])[..1500].to_vec(),
            "invalid tar archive",
        ),
    ];
    for (name, bytes, wanted) in cases {
        let r = env.berth_stdin(&["import", "-", "bad:1"], &bytes);
        assert_ne!(r.code, 0, "{name}");
        assert!(r.stderr.contains(wanted), "{name}: {r:?}");
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "{name}: one line: {r:?}"
        );
        assert_eq!(store_files(env), before, "{name} left files behind");
        assert_eq!(image_count(env), images, "{name} made an image");
    }
    assert!(
        !Path::new(host_marker).exists(),
        "written outside the data root"
    );
    // An absolute path is made relative (as Docker and tar do): it lands inside the image.
    let abs = raw_tar(&[("/tmp/berth-escape-marker", T::Regular, b"inside", None)]);
    env.berth_stdin(&["import", "-", "abs:1"], &abs).ok();
    assert!(!Path::new(host_marker).exists());
    let c = env.berth(&["create", "abs:1", "x"]).ok();
    let out = std::process::Command::new(crate::harness::berth_exe())
        .env("BERTH_HOST", env.host())
        .args(["export", &c])
        .output()
        .unwrap();
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.contains(&"tmp/berth-escape-marker".to_owned()),
        "{names:?}"
    );
    env.berth(&["rm", &c]).ok();
    env.berth(&["rmi", "abs:1"]).ok();
    // Through the docker CLI too: the error is one line.
    if let Some(r) = env.docker_stdin(
        &["import", "-", "bad:2"],
        &raw_tar(&[("../x", T::Regular, b"x", None)]),
    ) {
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("path contains '..'"), "{r:?}");
    }
    assert_eq!(store_files(env), before);
}

fn import_compression_bomb_stops_at_the_disk(env: &TestEnv) {
    // A second daemon whose data root is a small tmpfs: a 512 MB layer in a few kB of zstd must
    // be refused before it fills it, and leave nothing. (Its exec root must be short.)
    struct Cleanup(PathBuf, Option<std::process::Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(mut daemon) = self.1.take() {
                // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
                unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
                let _ = daemon.wait();
            }
            let table = format!("bbm{}", std::process::id());
            let _ = crate::harness::remove_network_state(&table, &table);
            let _ = std::process::Command::new("umount")
                .arg(self.0.join("data"))
                .status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let root = PathBuf::from(format!("/tmp/bbm{}", std::process::id()));
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut cleanup = Cleanup(root.clone(), None);
    sh(&format!(
        "mount -t tmpfs -o size=64m berth-bomb {}",
        data.display()
    ));
    let bomb = env.root.join("bomb.tar.zst");
    sh(&format!(
        "cd {r} && truncate -s 512M zeros && tar -cf - zeros | zstd -1 -q > {b} && rm zeros",
        r = env.root.display(),
        b = bomb.display()
    ));
    let sock = root.join("run/berth.sock");
    let host = format!("unix://{}", sock.display());
    cleanup.1 = Some(
        std::process::Command::new(crate::harness::berth_exe())
            // No default bridge, and an nft table of its own (removed by the cleanup).
            .args(["daemon", "-H", &host, "--bridge", "none", "--nft-table"])
            .arg(format!("bbm{}", std::process::id()))
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(root.join("run"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(env.eventually(20, || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    }));
    let berth = |args: &[&str]| {
        std::process::Command::new(crate::harness::berth_exe())
            .env("BERTH_HOST", &host)
            .args(args)
            .output()
            .unwrap()
    };
    let r = berth(&["import", bomb.to_str().unwrap(), "bomb:1"]);
    let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
    let images = berth(&["images", "-aq"]);
    let count = |p: &str| {
        std::fs::read_dir(data.join("image").join(p))
            .unwrap()
            .count()
    };
    let left = (count("blobs/sha256"), count("layers"), count("ingest"));
    drop(cleanup);
    std::fs::remove_file(&bomb).unwrap();
    assert!(!r.status.success());
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(images.stdout.is_empty());
    assert_eq!(left, (0, 0, 0));
}

fn bootstrap_debian_refusals_leave_nothing(env: &TestEnv) {
    let before = store_files(env);
    let images = image_count(env);
    for (args, wanted) in [
        (vec!["debian:../x"], "cannot bootstrap"),
        (vec!["debian:Bad"], "invalid Debian suite"),
        (
            vec!["debian:x", "--mirror", "file:///etc"],
            "invalid mirror",
        ),
        (
            vec![
                "debian:nosuchsuite",
                "--mirror",
                "http://127.0.0.1:1/debian",
            ],
            "debootstrap of nosuchsuite failed",
        ),
        (vec!["alpine"], "alpine"),
    ] {
        let mut all = vec!["image", "bootstrap"];
        all.extend(args.iter().copied());
        let r = env.berth(&all);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(wanted), "{args:?}: {r:?}");
        assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    }
    assert_eq!(store_files(env), before);
    assert_eq!(image_count(env), images);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&env.data_root.display().to_string()),
        "{mounts}"
    );
}

/// Slow (a real debootstrap from the mirror, ~1 minute): only with BERTH_TEST_DEBIAN=1.
fn bootstrap_debian_runs_bash(env: &TestEnv) {
    if std::env::var("BERTH_TEST_DEBIAN").as_deref() != Ok("1") {
        crate::skip("slow (debootstrap from the mirror): set BERTH_TEST_DEBIAN=1");
    }
    let id = env.berth(&["image", "bootstrap", "debian:bookworm"]).ok();
    assert!(id.starts_with("sha256:"), "{id}");
    let out = env
        .berth(&[
            "run",
            "--rm",
            "debian:bookworm",
            "bash",
            "-c",
            "cat /etc/debian_version; echo $PATH; command -v apt-get",
        ])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("12."), "{out}");
    assert_eq!(
        lines[1],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(lines[2], "/usr/bin/apt-get");
    assert_eq!(
        env.berth(&["run", "--rm", "debian:bookworm"]).code,
        0,
        "CMD bash"
    );
    assert_eq!(
        env.berth(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Cmd}}",
            "debian:bookworm"
        ])
        .ok(),
        r#"["bash"]"#
    );
    let history = env
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "debian:bookworm",
        ])
        .ok();
    assert!(
        history.contains("debootstrap --variant=minbase bookworm"),
        "{history}"
    );
    env.berth(&["rmi", "debian:bookworm"]).ok();
}

fn bootstrap_busybox_config(env: &TestEnv) {
    let inspect = |t: &str| env.berth(&["image", "inspect", "-f", t, "busybox"]).ok();
    assert_eq!(inspect("{{json .Config.Cmd}}"), r#"["sh"]"#);
    assert!(inspect("{{json .Config.Env}}").contains("PATH=/usr/local/sbin"));
    let history = env
        .berth(&["history", "--format", "{{.CreatedBy}}", "busybox"])
        .ok();
    assert_eq!(history, "berth image bootstrap busybox");
}

fn docker_cli_image_commands(env: &TestEnv) {
    let Some(_) = env.docker(&["version"]) else {
        crate::skip("the docker CLI is not installed");
    };
    let docker = |args: &[&str]| env.docker(args).unwrap();
    docker(&["tag", "busybox", "dk/tagged:1"]).ok();
    let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).ok();
    let id = env
        .berth(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok();
    assert!(
        listed.contains(&format!("dk/tagged:1 {}", short(&id))),
        "{listed}"
    );
    let inspect = docker(&["image", "inspect", "dk/tagged:1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Config",
        "RootFS",
        "Size",
        "Os",
        "Architecture",
    ] {
        assert!(v[0].get(key).is_some(), "{key} missing: {inspect}");
    }
    assert_eq!(v[0]["Id"], id.as_str());
    let history = docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "dk/tagged:1",
    ])
    .ok();
    assert_eq!(history, "berth image bootstrap busybox");
    assert_eq!(docker(&["history", "-q", "dk/tagged:1"]).ok(), short(&id));
    let r = docker(&["rmi", "dk/tagged:1"]).ok();
    assert_eq!(r, "Untagged: dk/tagged:1");
    let r = docker(&["rmi", "nosuch:image"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("No such image: nosuch:image"), "{r:?}");
    // A container keeps its image: refused without -f.
    let c = env.berth(&["create", "busybox", "true"]).ok();
    let r = docker(&["rmi", &id]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("image is being used by stopped container"),
        "{r:?}"
    );
    env.berth(&["rm", &c]).ok();
    let pruned = docker(&["image", "prune", "-f"]).ok();
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let df = docker(&["system", "df", "--format", "{{.Type}}"]).ok();
    assert_eq!(df, "Images\nContainers\nLocal Volumes\nBuild Cache");
}

fn images_list_flags_and_filters(env: &TestEnv) {
    env.berth(&["run", "--name", "ls-src", "busybox", "true"])
        .ok();
    let old = env
        .berth(&["commit", "-c", "LABEL tier=old", "ls-src", "lsimg:old"])
        .ok();
    // Creation times are in seconds: the next image must be a second younger.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let new = env
        .berth(&["commit", "-c", "LABEL tier=new", "ls-src", "lsimg:new"])
        .ok();
    env.berth(&["rm", "ls-src"]).ok();
    let list = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend(args);
        env.berth(&all).ok()
    };
    assert_eq!(
        list(&["--filter", "reference=lsimg"]),
        "lsimg:new\nlsimg:old"
    );
    assert_eq!(list(&["--filter", "reference=lsimg:o*"]), "lsimg:old");
    assert_eq!(list(&["--filter", "label=tier=new"]), "lsimg:new");
    assert_eq!(
        list(&[
            "--filter",
            "before=lsimg:new",
            "--filter",
            "reference=lsimg"
        ]),
        "lsimg:old"
    );
    assert_eq!(list(&["--filter", "since=lsimg:old"]), "lsimg:new");
    assert_eq!(
        list(&["lsimg"]),
        "lsimg:new\nlsimg:old",
        "REPOSITORY argument"
    );
    let quiet = env.berth(&["images", "-q", "lsimg"]).ok();
    assert_eq!(quiet, format!("{}\n{}", short(&new), short(&old)));
    let full = env.berth(&["images", "-q", "--no-trunc", "lsimg"]).ok();
    assert_eq!(full, format!("{new}\n{old}"));
    let table = env.berth(&["images", "--digests", "lsimg:old"]).ok();
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "REPOSITORY",
            "TAG",
            "DIGEST",
            "IMAGE",
            "ID",
            "CREATED",
            "SIZE"
        ]
    );
    assert!(lines.next().unwrap().contains("<none>"), "{table}");
    let json = env.berth(&["images", "--format", "json", "lsimg:new"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["Tag"], "new");
    assert_eq!(
        list(&["--filter", "until=1h", "--filter", "reference=lsimg"]),
        ""
    );
    let r = env.berth(&["images", "--filter", "bogus=1"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("invalid filter 'bogus'"), "{r:?}");
    env.berth(&["rmi", "lsimg:old", "lsimg:new"]).ok();
}

/// `GraphDriver.Data` names real directories, as dockerd's overlay2 does: an image's top layer
/// (`UpperDir`) and the ones under it (`LowerDir`); a container's layers, its writable layer and,
/// while it runs, its merged root (`MergedDir`).
fn graph_driver_data_names_the_layer_dirs(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "gd_src",
        "busybox",
        "sh",
        "-c",
        "echo top > /gd-top",
    ])
    .ok();
    env.berth(&["commit", "gd_src", "gd_img"]).ok();
    env.berth(&["rm", "gd_src"]).ok();
    let image = |field: &str| {
        env.berth(&[
            "image",
            "inspect",
            "-f",
            &format!("{{{{.GraphDriver.Data.{field}}}}}"),
            "gd_img",
        ])
        .ok()
    };
    let upper = image("UpperDir");
    assert_eq!(
        std::fs::read_to_string(Path::new(&upper).join("gd-top")).unwrap(),
        "top\n"
    );
    let lower = image("LowerDir");
    assert_eq!(lower.split(':').count(), 1, "{lower}");
    assert!(Path::new(&lower).join("bin/busybox").exists(), "{lower}");
    // A one-layer image has no LowerDir; the docker CLI says so for a missing key.
    let base = env.berth(&[
        "image",
        "inspect",
        "-f",
        "{{.GraphDriver.Data.LowerDir}}",
        "busybox",
    ]);
    assert!(
        base.stderr.contains("no entry for key \"LowerDir\""),
        "{base:?}"
    );

    env.berth(&["run", "-d", "--name", "gd_run", "gd_img", "sleep", "60"])
        .ok();
    env.berth(&["exec", "gd_run", "sh", "-c", "echo run > /gd-run"])
        .ok();
    let merged = env.inspect("gd_run", "{{.GraphDriver.Data.MergedDir}}");
    let merged = Path::new(&merged);
    assert_eq!(
        std::fs::read_to_string(merged.join("gd-run")).unwrap(),
        "run\n"
    );
    assert_eq!(
        std::fs::read_to_string(merged.join("gd-top")).unwrap(),
        "top\n"
    );
    let upper = env.inspect("gd_run", "{{.GraphDriver.Data.UpperDir}}");
    assert_eq!(
        std::fs::read_to_string(Path::new(&upper).join("gd-run")).unwrap(),
        "run\n"
    );
    let lower = env.inspect("gd_run", "{{.GraphDriver.Data.LowerDir}}");
    assert_eq!(lower.split(':').count(), 2, "{lower}");
    env.berth(&["kill", "gd_run"]).ok();
    let stopped = env.berth(&["inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "gd_run"]);
    assert!(
        stopped.stderr.contains("no entry for key \"MergedDir\""),
        "{stopped:?}"
    );
    env.berth(&["rm", "-f", "gd_run"]).ok();
    env.berth(&["rmi", "gd_img"]).ok();
}
