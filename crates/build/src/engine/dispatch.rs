//! One stage, step by step: each instruction expanded with the stage's variables, looked up
//! in the cache, else carried out (metadata: a new config; `COPY`/`ADD`/`WORKDIR`: a layer
//! written directly; `RUN`: a container committed), each step's image the parent of the next.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_container::StepExit;
use berth_image::{ChildImage, RunConfig};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::cache::{Cache, CacheRecord, now};
use super::copy::{self, Tree};
use super::error::BuildError;
use super::layered::Layers;
use super::{Run, context, history, line, short};
use crate::instruction::{Command, Healthcheck, Instruction, RunNetwork, RunProgram};
use crate::{Base, MountType, Source, StageEnv};

type Out = UnboundedSender<Bytes>;

fn say(out: &Out, text: impl Into<String>) {
    // The forwarder outlives the stages; a send fails only once it is gone.
    let _ = out.send(line(text));
}

/// The state of a stage while it is built.
#[derive(Debug)]
struct State {
    image: Option<String>,
    config: RunConfig,
    shell: Vec<String>,
    author: Option<String>,
    cmd_set: bool,
    layers: Layers,
}

impl State {
    fn config_key(&self) -> String {
        serde_json::to_value(&self.config)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
}

fn default_shell() -> Vec<String> {
    crate::instruction::DEFAULT_SHELL
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// A stage's state on its base image (none for `scratch`): its config, shell and layers.
async fn base_state(run: &Arc<Run>, base: Option<String>) -> Result<State, BuildError> {
    let mut state = State {
        image: base.clone(),
        config: RunConfig::default(),
        shell: default_shell(),
        author: None,
        cmd_set: false,
        layers: Layers::default(),
    };
    if let Some(id) = &base {
        let images = Arc::clone(&run.builder.images);
        let id2 = id.clone();
        let (record, dirs) = berth_fs::blocking(move || {
            Ok::<_, berth_image::ImageError>((images.resolve(&id2)?, images.layer_dirs(&id2)?))
        })
        .await??;
        state.config = record.config.config.clone().unwrap_or_default();
        state.author = record.config.author.clone();
        state.layers = Layers::new(dirs);
        if let Some(Value::Array(shell)) = state.config.other.get("Shell") {
            let shell: Vec<String> = shell
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if !shell.is_empty() {
                state.shell = shell;
            }
        }
    }
    Ok(state)
}

/// Builds stage `index`; returns its image (`None`: `FROM scratch` and nothing else).
pub(super) async fn stage(
    run: &Arc<Run>,
    index: usize,
    out: &Out,
) -> Result<Option<String>, BuildError> {
    let df_stage = &run.df.stages[index];
    let planned = run
        .plan
        .stage(index)
        .expect("only planned stages are built");
    let mut step = run.first_step[&index];
    say(
        out,
        format!("Step {step}/{} : {}\n", run.total_steps, df_stage.original),
    );
    let base = match &planned.base {
        Base::Scratch => None,
        Base::Image(r) => Some(resolve(run, r).await?),
        Base::Stage(i) => run
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(i)
            .cloned()
            .flatten(),
    };
    let mut state = base_state(run, base.clone()).await?;
    say(
        out,
        format!(" ---> {}\n", base.as_deref().map(short).unwrap_or("")),
    );
    let image_env = state.config.env.clone().unwrap_or_default();
    let mut env = run.plan.stage_env(&image_env);
    let lex = run.df.lex();
    // ONBUILD triggers of the base image run first, and are not inherited.
    let triggers = state.config.on_build.take().unwrap_or_default();
    if !triggers.is_empty() {
        let s = if triggers.len() > 1 { "s" } else { "" };
        say(
            out,
            format!("# Executing {} build trigger{s}\n", triggers.len()),
        );
        for trigger in &triggers {
            let inst = crate::parse_trigger(trigger)?;
            let inst = inst.expand(&lex, &env)?;
            env.apply(&inst, &lex)?;
            execute(run, &mut state, &inst, &env, out).await?;
        }
    }
    let label = if index == run.plan.target {
        run.label_step.clone()
    } else {
        None
    };
    for inst in df_stage.instructions.iter().chain(label.iter()) {
        if run.cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        step += 1;
        say(
            out,
            format!("Step {step}/{} : {}\n", run.total_steps, inst.original),
        );
        let inst = inst.expand(&lex, &env)?;
        if let Command::Arg(_) = &inst.command {
            // The line shows each default as written after expansion (before the build
            // argument overrides it), as Docker's does.
            let mut text = String::from("ARG");
            if let Command::Arg(decls) = &inst.command {
                for d in decls {
                    text.push(' ');
                    text.push_str(&d.name);
                    if let Some(default) = &d.default {
                        let v = lex.process_word(default, &env).map_err(|source| {
                            crate::DockerfileError::Expansion {
                                line: inst.start_line,
                                source,
                            }
                        })?;
                        text.push('=');
                        text.push_str(&v);
                    }
                }
            }
            env.apply(&inst, &lex)?;
            let created_by = history::nop(&state.shell, &text);
            commit_config(run, &mut state, created_by, None, out).await?;
        } else {
            env.apply(&inst, &lex)?;
            execute(run, &mut state, &inst, &env, out).await?;
        }
        if let Some(id) = &state.image {
            say(out, format!(" ---> {}\n", short(id)));
        }
    }
    Ok(state.image)
}

async fn resolve(run: &Run, reference: &str) -> Result<String, BuildError> {
    let images = Arc::clone(&run.builder.images);
    let r = reference.to_owned();
    let record = berth_fs::blocking(move || images.resolve(&r)).await?;
    match record {
        Ok(record) => Ok(record.id),
        Err(_) => Err(BuildError::ImageNotFound {
            reference: reference.to_owned(),
        }),
    }
}

/// A cache hit for `key` (none with `--no-cache`, or outside `--cache-from`).
fn cached(run: &Run, key: &str) -> Option<CacheRecord> {
    if run.req.no_cache {
        return None;
    }
    let images = &run.builder.images;
    let hit = run.builder.cache.get(key, |image| images.exists(image))?;
    match &run.allowed {
        Some(allowed) if !allowed.contains(&hit.image) => None,
        _ => Some(hit),
    }
}

async fn record_step(
    run: &Run,
    key: String,
    parent: Option<&str>,
    image: &berth_image::ImageRecord,
    description: &str,
) {
    let parent_size = match parent {
        Some(p) => {
            let images = Arc::clone(&run.builder.images);
            let p = p.to_owned();
            berth_fs::blocking(move || images.resolve(&p).map(|r| r.size).unwrap_or(0))
                .await
                .unwrap_or(0)
        }
        None => 0,
    };
    let t = now();
    run.builder.cache.insert(
        key,
        CacheRecord {
            image: image.id.clone(),
            parent: parent.map(str::to_owned),
            description: description.to_owned(),
            size: image.size.saturating_sub(parent_size),
            created: t.clone(),
            last_used: t,
            usage_count: 1,
        },
    );
}

async fn set_image(run: &Run, state: &mut State, id: String) -> Result<(), BuildError> {
    let images = Arc::clone(&run.builder.images);
    let id2 = id.clone();
    let dirs = berth_fs::blocking(move || images.layer_dirs(&id2)).await??;
    state.layers = Layers::new(dirs);
    state.image = Some(id);
    Ok(())
}

/// A step that changes only the config (or adds the layer `layer` writes): looked up in the
/// cache by its parent, history line, config and `extra`, else made.
async fn commit_config(
    run: &Arc<Run>,
    state: &mut State,
    created_by: String,
    layer: Option<(String, LayerWriter)>,
    out: &Out,
) -> Result<(), BuildError> {
    commit_step(run, state, created_by, layer, true, out).await
}

/// [`commit_config`]; `in_container`: the step has a container of its own while it is made
/// (created, never started, removed after, as Docker's legacy builder does for every step but
/// `COPY`/`ADD`), so its lines are Docker's (` ---> Running in …`, `Removing intermediate
/// container …`). Not on `scratch` (nothing to create it from).
async fn commit_step(
    run: &Arc<Run>,
    state: &mut State,
    created_by: String,
    layer: Option<(String, LayerWriter)>,
    in_container: bool,
    out: &Out,
) -> Result<(), BuildError> {
    let extra = layer.as_ref().map(|(k, _)| k.clone()).unwrap_or_default();
    let key = Cache::key(
        state.image.as_deref(),
        &[&created_by, &state.config_key(), &extra],
    );
    if let Some(hit) = cached(run, &key) {
        say(out, " ---> Using cache\n");
        return set_image(run, state, hit.image).await;
    }
    let child = ChildImage {
        parent: state.image.clone(),
        config: state.config.clone(),
        created_by: created_by.clone(),
        comment: None,
        author: state.author.clone(),
    };
    let container = match &state.image {
        Some(parent) if in_container => Some(step_container(run, parent, &created_by, out).await?),
        _ => None,
    };
    let images = Arc::clone(&run.builder.images);
    let made = berth_fs::blocking(move || -> Result<berth_image::ImageRecord, BuildError> {
        match layer {
            None => Ok(images.create_child(&child, None)?),
            Some((_, writer)) => {
                let (mut reader, mut pipe) =
                    std::io::pipe().map_err(BuildError::io("pipe", "<layer>"))?;
                std::thread::scope(|scope| {
                    let written = scope.spawn(move || {
                        let r = writer(&mut pipe);
                        drop(pipe);
                        r
                    });
                    let made = images.create_child(&child, Some(&mut reader));
                    drop(reader);
                    let written = written
                        .join()
                        .map_err(|_| BuildError::Task("layer writer panicked".into()))?;
                    match (written, made) {
                        (Ok(()), made) => Ok(made?),
                        // The store stopped reading (the disk is full…): its error says why.
                        (Err(w), Err(m)) if w.is_broken_pipe() => Err(m.into()),
                        // The writer's own error explains a broken pipe on the store's side.
                        (Err(w), _) => Err(w),
                    }
                })
            }
        }
    })
    .await
    .map_err(BuildError::from)
    .and_then(|made| made);
    if let Some(id) = &container {
        end_step_container(run, id, made.is_ok(), out).await;
    }
    let record = made?;
    record_step(run, key, state.image.as_deref(), &record, &created_by).await;
    set_image(run, state, record.id).await
}

/// A step's container on `parent`, created (not started) and announced.
async fn step_container(
    run: &Run,
    parent: &str,
    created_by: &str,
    out: &Out,
) -> Result<String, BuildError> {
    let body = ContainerCreateBody {
        image: Some(parent.to_owned()),
        cmd: Some(vec![created_by.to_owned()]),
        entrypoint: Some(vec![String::new()]),
        labels: Some(HashMap::new()),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let id = run.builder.containers.create_step(body).await?;
    run.builder.step_made(&id);
    say(out, format!(" ---> Running in {}\n", short(&id)));
    Ok(id)
}

/// A step's container once the step is done: removed (and said so) unless it succeeded with
/// `rm=0` (kept, as Docker keeps it); a failed step's goes too.
async fn end_step_container(run: &Run, id: &str, succeeded: bool, out: &Out) {
    let keep = succeeded && !run.req.remove && !run.req.force_remove;
    if !keep {
        if succeeded || run.req.remove || run.req.force_remove {
            say(
                out,
                format!("Removing intermediate container {}\n", short(id)),
            );
        }
        if let Err(error) = run.builder.containers.remove(id, true, true).await {
            tracing::warn!(container_id = %id, %error, "removing a build step's container failed");
        }
    }
    run.builder.step_gone(id);
}

type LayerWriter = Box<dyn FnOnce(&mut dyn std::io::Write) -> Result<(), BuildError> + Send>;

/// Carries out one expanded instruction.
#[allow(clippy::too_many_lines)] // One arm per instruction, as the Dockerfile reference lists them.
async fn execute(
    run: &Arc<Run>,
    state: &mut State,
    inst: &Instruction,
    env: &StageEnv<'_>,
    out: &Out,
) -> Result<(), BuildError> {
    let shell = state.shell.clone();
    let created_by = match &inst.command {
        Command::Env(kvs) => {
            let envs = state.config.env.get_or_insert_with(Vec::new);
            let mut text = String::from("ENV");
            for kv in kvs {
                let entry = format!("{}={}", kv.key, kv.value);
                match envs
                    .iter_mut()
                    .find(|e| e.split('=').next() == Some(kv.key.as_str()))
                {
                    Some(e) => *e = entry.clone(),
                    None => envs.push(entry.clone()),
                }
                text.push(' ');
                text.push_str(&entry);
            }
            history::nop(&shell, &text)
        }
        Command::Label(kvs) => {
            let labels = state.config.labels.get_or_insert_with(HashMap::new);
            let mut text = String::from("LABEL");
            for kv in kvs {
                labels.insert(kv.key.clone(), kv.value.clone());
                text.push_str(&format!(" {}={}", kv.key, kv.value));
            }
            history::nop(&shell, &text)
        }
        Command::Maintainer(name) => {
            state.author = Some(name.clone());
            history::nop(&shell, &format!("MAINTAINER {name}"))
        }
        Command::Expose(ports) => {
            let exposed = state.config.exposed_ports.get_or_insert_with(HashMap::new);
            for port in ports {
                for p in expand_port(port).map_err(BuildError::invalid)? {
                    exposed.insert(p, json!({}));
                }
            }
            history::nop(&shell, &format!("EXPOSE {}", ports.join(" ")))
        }
        Command::User(user) => {
            state.config.user = Some(user.clone());
            history::nop(&shell, &format!("USER {user}"))
        }
        Command::Volume(vols) => {
            let volumes = state.config.volumes.get_or_insert_with(HashMap::new);
            for v in vols {
                if v.trim().is_empty() {
                    return Err(BuildError::invalid(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                volumes.insert(v.clone(), json!({}));
            }
            history::nop(&shell, &format!("VOLUME {}", history::go_list_plain(vols)))
        }
        Command::StopSignal(sig) => {
            state.config.stop_signal = Some(sig.clone());
            history::nop(&shell, &format!("STOPSIGNAL {sig}"))
        }
        Command::Cmd(cmd) => {
            let argv = cmd.to_argv(&shell);
            state.config.cmd = Some(argv.clone());
            state.cmd_set = true;
            history::nop(&shell, &format!("CMD {}", history::go_list(&argv)))
        }
        Command::Entrypoint(ep) => {
            let argv = ep.to_argv(&shell);
            state.config.entrypoint = Some(argv.clone());
            if !state.cmd_set {
                state.config.cmd = None;
            }
            history::nop(&shell, &format!("ENTRYPOINT {}", history::go_list(&argv)))
        }
        Command::Healthcheck(hc) => match hc {
            Healthcheck::None => {
                state
                    .config
                    .other
                    .insert("Healthcheck".into(), json!({ "Test": ["NONE"] }));
                history::nop(&shell, r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" '\x00'}"#)
            }
            Healthcheck::Check(h) => {
                let mut v = serde_json::Map::new();
                v.insert("Test".into(), json!(h.test_vec()));
                let ns =
                    |d: std::time::Duration| json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                if let Some(d) = h.interval {
                    v.insert("Interval".into(), ns(d));
                }
                if let Some(d) = h.timeout {
                    v.insert("Timeout".into(), ns(d));
                }
                if let Some(d) = h.start_period {
                    v.insert("StartPeriod".into(), ns(d));
                }
                if let Some(d) = h.start_interval {
                    v.insert("StartInterval".into(), ns(d));
                }
                if let Some(r) = h.retries {
                    v.insert("Retries".into(), json!(r));
                }
                state
                    .config
                    .other
                    .insert("Healthcheck".into(), Value::Object(v));
                history::nop(&shell, &history::healthcheck(h))
            }
        },
        Command::Shell(argv) => {
            state.config.other.insert("Shell".into(), json!(argv));
            state.shell = argv.clone();
            history::nop(&shell, &format!("SHELL {}", history::go_list_plain(argv)))
        }
        Command::Onbuild(o) => {
            state
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(o.expression.clone());
            history::nop(&shell, &format!("ONBUILD {}", o.expression))
        }
        Command::Arg(_) => unreachable!("ARG is handled by the stage walk"),
        Command::Workdir(path) => return workdir(run, state, path, out).await,
        Command::Run(r) => return run_step(run, state, r, env, out).await,
        Command::Copy(c) => {
            let inline = c
                .inline
                .iter()
                .map(|f| (f.path.clone(), f.data.clone().into_bytes()))
                .collect();
            let spec = CopySpec {
                instruction: "COPY",
                from: c.from.as_deref(),
                sources: &c.sources,
                inline,
                dest: &c.dest,
                chown: c.chown.as_deref(),
                chmod: c.chmod.as_deref(),
                exclude: &c.exclude,
                unpack: false,
                checksum: None,
                line: inst.start_line,
            };
            return copy_step(run, state, spec, out).await;
        }
        Command::Add(a) => {
            let inline = a
                .inline
                .iter()
                .map(|f| (f.path.clone(), f.data.clone().into_bytes()))
                .collect();
            let spec = CopySpec {
                instruction: "ADD",
                from: None,
                sources: &a.sources,
                inline,
                dest: &a.dest,
                chown: a.chown.as_deref(),
                chmod: a.chmod.as_deref(),
                exclude: &a.exclude,
                unpack: true,
                checksum: a.checksum.as_deref(),
                line: inst.start_line,
            };
            return copy_step(run, state, spec, out).await;
        }
    };
    commit_config(run, state, created_by, None, out).await
}

/// `80` → `80/tcp`; `8000-8001/udp` → both ports.
fn expand_port(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for containerPort: {ports}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `WORKDIR`: the new directory, made in a layer when the image does not have it.
async fn workdir(
    run: &Arc<Run>,
    state: &mut State,
    path: &str,
    out: &Out,
) -> Result<(), BuildError> {
    let current = state.config.working_dir.clone().unwrap_or_default();
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", if current.is_empty() { "/" } else { &current })
    };
    let dir = berth_fs::clean(&joined);
    state.config.working_dir = Some(dir.clone());
    let created_by = history::nop1(&state.shell, &format!("WORKDIR {dir}"));
    let resolved = state.layers.resolve(&dir, true);
    let exists = state
        .layers
        .lstat(&resolved)
        .is_some_and(|(_, m)| m.is_dir());
    if exists || state.image.is_none() && dir == "/" {
        return commit_config(run, state, created_by, None, out).await;
    }
    let tar = copy::mkdir_layer(&state.layers, &resolved)?;
    let writer: LayerWriter = Box::new(move |w| {
        w.write_all(&tar)
            .map_err(BuildError::io("write layer", "<tar>"))
    });
    commit_config(
        run,
        state,
        created_by,
        Some((format!("mkdir {resolved}"), writer)),
        out,
    )
    .await
}

struct CopySpec<'a> {
    instruction: &'static str,
    from: Option<&'a str>,
    sources: &'a [String],
    inline: Vec<(String, Vec<u8>)>,
    dest: &'a str,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    exclude: &'a [String],
    unpack: bool,
    checksum: Option<&'a str>,
    line: usize,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The files of an image, unpacked once per build (for `COPY --from`, `RUN --mount=from=`).
async fn image_tree(run: &Arc<Run>, image: &str) -> Result<Arc<context::Context>, BuildError> {
    let mut trees = run.trees.lock().await;
    if let Some(t) = trees.get(image) {
        return Ok(Arc::clone(t));
    }
    let images = Arc::clone(&run.builder.images);
    let dir = run.scratch.join(format!("tree-{}", super::random_name()));
    let empty = run.scratch.join(format!("empty-{}", super::random_name()));
    let image2 = image.to_owned();
    let limit = context::space_limit(&run.scratch, None);
    let tree = berth_fs::blocking(move || -> Result<context::Context, BuildError> {
        let lowerdirs = images.layer_dirs(&image2)?;
        std::fs::create_dir(&empty).map_err(BuildError::io("create directory", &empty))?;
        let dirs = berth_image::RootfsDirs {
            lowerdirs,
            upperdir: empty.clone(),
            workdir: empty.clone(),
        };
        let (mut reader, mut pipe) = std::io::pipe().map_err(BuildError::io("pipe", "<export>"))?;
        std::thread::scope(|scope| {
            let exported = scope.spawn(move || {
                let r = berth_image::export(&dirs, &mut pipe);
                drop(pipe);
                r
            });
            let unpacked = context::unpack(&mut reader, &dir, limit);
            drop(reader);
            exported
                .join()
                .map_err(|_| BuildError::Task("export panicked".into()))??;
            unpacked
        })
    })
    .await??;
    let tree = Arc::new(tree);
    trees.insert(image.to_owned(), Arc::clone(&tree));
    Ok(tree)
}

/// The image a `--from` names: a stage's result or an image.
async fn from_image(
    run: &Arc<Run>,
    from: &str,
    by_index: bool,
    line: usize,
) -> Result<String, BuildError> {
    match run.df.resolve_from(from, by_index, line)? {
        Source::Stage(i) => run
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&i)
            .cloned()
            .flatten()
            .ok_or_else(|| BuildError::invalid(format!("stage {from} has no image to copy from"))),
        Source::Image(r) => resolve(run, &r).await,
    }
}

/// A `COPY`/`ADD`'s sources: the paths to read from the context or tree, and (`ADD <url>`)
/// the files fetched into the scratch area first, with their names.
async fn split_sources(
    run: &Arc<Run>,
    spec: &CopySpec<'_>,
) -> Result<(Vec<String>, Vec<(String, PathBuf)>), BuildError> {
    let inst = spec.instruction;
    let mut sources = Vec::new();
    let mut fetched = Vec::new();
    for s in spec.sources {
        if inst == "ADD" && is_url(s) {
            let name = s
                .split(['?', '#'])
                .next()
                .unwrap_or(s)
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            let dir = run.scratch.join(format!("fetch-{}", super::random_name()));
            std::fs::create_dir(&dir).map_err(BuildError::io("create directory", &dir))?;
            let name = if name.is_empty() {
                if spec.dest.ends_with('/') {
                    return Err(BuildError::copy(
                        inst,
                        format!("cannot determine filename from url: {s}"),
                    ));
                }
                "download".to_owned()
            } else {
                name
            };
            let file = dir.join(&name);
            super::fetch_to(s, &file, spec.checksum)
                .await
                .map_err(|e| match e {
                    BuildError::Invalid { message } => BuildError::copy(inst, message),
                    other => other,
                })?;
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(BuildError::io("chmod", &file))?;
            fetched.push((name, file));
        } else if s.starts_with("git@") || s.ends_with(".git") && is_url(s) {
            return Err(BuildError::copy(
                inst,
                format!("git sources are not supported: {s}"),
            ));
        } else {
            sources.push(s.clone());
        }
    }
    Ok((sources, fetched))
}

async fn copy_step(
    run: &Arc<Run>,
    state: &mut State,
    spec: CopySpec<'_>,
    out: &Out,
) -> Result<(), BuildError> {
    let inst = spec.instruction;
    let tree_ctx: Option<Arc<context::Context>> = match spec.from {
        Some(from) => {
            let image = from_image(run, from, true, spec.line).await?;
            Some(image_tree(run, &image).await?)
        }
        None => None,
    };
    let (sources, fetched) = split_sources(run, &spec).await?;
    if spec.checksum.is_some() && fetched.is_empty() {
        return Err(BuildError::copy(
            inst,
            "checksum can't be specified for non-HTTP(S) sources",
        ));
    }
    let workdir = state
        .config
        .working_dir
        .clone()
        .unwrap_or_else(|| "/".into());
    let layers = state.layers.clone();
    let run2 = Arc::clone(run);
    let (sources2, inline, dest, chown, chmod, exclude) = (
        sources.clone(),
        spec.inline.clone(),
        spec.dest.to_owned(),
        spec.chown.map(str::to_owned),
        spec.chmod.map(str::to_owned),
        spec.exclude.to_vec(),
    );
    let unpack = spec.unpack;
    let tree_ctx2 = tree_ctx.clone();
    let plan = berth_fs::blocking(move || {
        let source: Option<&context::Context> = match (&tree_ctx2, &run2.context) {
            (Some(t), _) => Some(t),
            (None, Some(t)) => Some(t),
            (None, None) => None,
        };
        let tree = source.map(|t| Tree {
            dir: &t.dir,
            root: &t.root,
            digests: Some(&t.digests),
            is_context: tree_ctx2.is_none(),
        });
        let req = copy::Request {
            instruction: inst,
            sources: &sources2,
            inline,
            dest: &dest,
            workdir: &workdir,
            chown: chown.as_deref(),
            chmod: chmod.as_deref(),
            exclude: &exclude,
            unpack,
            fetched,
        };
        copy::plan(tree.as_ref(), &req, &layers)
    })
    .await??;
    let created_by = history::nop1(
        &state.shell,
        &format!("{inst} {} in {} ", plan.source_digest, spec.dest),
    );
    let key = format!(
        "{}\0{}\0{}\0{}",
        spec.chown.unwrap_or(""),
        spec.chmod.unwrap_or(""),
        spec.from.unwrap_or(""),
        plan.source_digest
    );
    let keep = tree_ctx;
    let writer: LayerWriter = Box::new(move |w| {
        let r = copy::write(&plan, w);
        drop(keep);
        r
    });
    commit_step(run, state, created_by, Some((key, writer)), false, out).await
}

/// The mounts of a `RUN`: binds and tmpfs for its container, what keys the cache, and the
/// paths to leave out of the commit.
struct Mounts {
    binds: Vec<String>,
    tmpfs: HashMap<String, String>,
    key: String,
    exclude: Vec<PathBuf>,
}

async fn run_mounts(run: &Arc<Run>, r: &crate::Run, line_no: usize) -> Result<Mounts, BuildError> {
    let mut m = Mounts {
        binds: Vec::new(),
        tmpfs: HashMap::new(),
        key: String::new(),
        exclude: Vec::new(),
    };
    for mount in &r.mounts {
        let target = mount
            .target
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| BuildError::invalid("mount target is required"))?;
        let target = berth_fs::clean(&target);
        m.exclude
            .push(PathBuf::from(target.trim_start_matches('/')));
        m.key.push_str(&mount.spec);
        m.key.push('\n');
        let ro = if mount.readonly { ":ro" } else { "" };
        match mount.kind {
            MountType::Cache => {
                let id = mount
                    .id
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| target.clone());
                let dir = run
                    .builder
                    .root
                    .join("mounts")
                    .join(&Cache::key(None, &[&id])[..32]);
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)
                        .map_err(BuildError::io("create directory", &dir))?;
                    let mode = mount.mode.unwrap_or(0o755);
                    std::fs::set_permissions(
                        &dir,
                        std::os::unix::fs::PermissionsExt::from_mode(mode),
                    )
                    .map_err(BuildError::io("chmod", &dir))?;
                    nix::unistd::chown(
                        &dir,
                        Some(nix::unistd::Uid::from_raw(mount.uid.unwrap_or(0))),
                        Some(nix::unistd::Gid::from_raw(mount.gid.unwrap_or(0))),
                    )
                    .map_err(|e| BuildError::io("chown", &dir)(e.into()))?;
                }
                m.binds.push(format!("{}:{target}{ro}", dir.display()));
            }
            MountType::Bind => {
                let (base_dir, root) = match mount.from.as_deref().filter(|f| !f.is_empty()) {
                    Some(from) => {
                        let image = from_image(run, from, false, line_no).await?;
                        let tree = image_tree(run, &image).await?;
                        (
                            tree.dir.clone(),
                            berth_fs::Root::open(&tree.dir)
                                .map_err(BuildError::io("open", &tree.dir))?,
                        )
                    }
                    None => {
                        let ctx = run
                            .context
                            .as_ref()
                            .ok_or_else(|| BuildError::invalid("no build context"))?;
                        (
                            ctx.dir.clone(),
                            berth_fs::Root::open(&ctx.dir)
                                .map_err(BuildError::io("open", &ctx.dir))?,
                        )
                    }
                };
                let source = mount.source.clone().unwrap_or_default();
                let inside = root
                    .canonical(Path::new(&source))
                    .map_err(|e| BuildError::invalid(format!("mount source {source}: {e}")))?;
                let host = base_dir.join(inside.strip_prefix("/").unwrap_or(&inside));
                if !host.exists() {
                    return Err(BuildError::invalid(format!(
                        "failed to mount {target}: source {source} does not exist"
                    )));
                }
                let ro = if mount.readonly { ":ro" } else { "" };
                m.binds.push(format!("{}:{target}{ro}", host.display()));
            }
            MountType::Tmpfs => {
                m.tmpfs.insert(target, String::new());
            }
            other => {
                return Err(BuildError::invalid(format!(
                    "RUN --mount=type={} is not supported by this builder",
                    other.as_str()
                )));
            }
        }
    }
    Ok(m)
}

async fn run_step(
    run: &Arc<Run>,
    state: &mut State,
    r: &crate::Run,
    env: &StageEnv<'_>,
    out: &Out,
) -> Result<(), BuildError> {
    let Some(parent) = state.image.clone() else {
        return Err(BuildError::invalid(
            "Please provide a source image with `from` prior to run",
        ));
    };
    let mut mounts = run_mounts(run, r, 0).await?;
    let (argv, script) = match r.program(&state.shell) {
        RunProgram::Argv(argv) => (argv, None),
        RunProgram::Script {
            path,
            content,
            argv,
        } => (argv, Some((path, content))),
    };
    if let Some((path, content)) = &script {
        stage_script(run, path, content, &mut mounts)?;
    }
    let created_by = history::run(&env.history_args(), &argv);
    let network = step_network(run, r);
    let script_key = script.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
    let key = Cache::key(
        Some(&parent),
        &[
            &created_by,
            &state.config_key(),
            &mounts.key,
            &network,
            &script_key,
        ],
    );
    if let Some(hit) = cached(run, &key) {
        say(out, " ---> Using cache\n");
        return set_image(run, state, hit.image).await;
    }
    let body = step_body(run, state, &parent, &argv, env, network, &mounts);
    let containers = Arc::clone(&run.builder.containers);
    let id = containers.create_step(body).await?;
    run.builder.step_made(&id);
    say(out, format!(" ---> Running in {}\n", short(&id)));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let out2 = out.clone();
    let pump = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            say(&out2, String::from_utf8_lossy(&chunk).into_owned());
        }
    });
    let exit = containers.run_step(&id, tx, run.cancel.cancelled()).await;
    let _ = pump.await;
    let result = match exit {
        Ok(StepExit::Exited(0)) => containers
            .commit_step(
                &id,
                state.config.clone(),
                created_by.clone(),
                mounts.exclude.clone(),
            )
            .await
            .map_err(BuildError::from),
        Ok(StepExit::Exited(code)) => Err(BuildError::RunFailed {
            command: argv.join(" "),
            code,
        }),
        Ok(StepExit::Cancelled) => Err(BuildError::Cancelled),
        Err(e) => Err(e.into()),
    };
    // The step's container goes whatever happened (`rm=0` keeps it after a success, as Docker).
    end_step_container(run, &id, result.is_ok(), out).await;
    let record = result?;
    record_step(run, key, Some(&parent), &record, &created_by).await;
    set_image(run, state, record.id).await
}

/// Writes a heredoc's script into the scratch area and binds it where the step's argv runs it
/// (left out of the commit).
fn stage_script(
    run: &Run,
    path: &str,
    content: &str,
    mounts: &mut Mounts,
) -> Result<(), BuildError> {
    let dir = run.scratch.join(format!("script-{}", super::random_name()));
    std::fs::create_dir(&dir).map_err(BuildError::io("create directory", &dir))?;
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_default();
    let file = dir.join(&name);
    std::fs::write(&file, content).map_err(BuildError::io("write", &file))?;
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(BuildError::io("chmod", &file))?;
    let target = Path::new(path)
        .parent()
        .map_or_else(|| "/".into(), |p| p.to_string_lossy().into_owned());
    mounts.binds.push(format!("{}:{target}:ro", dir.display()));
    mounts
        .exclude
        .push(PathBuf::from(target.trim_start_matches('/')));
    Ok(())
}

/// The network of a `RUN`: its `--network`, else the build's (`default` is the bridge).
fn step_network(run: &Run, r: &crate::Run) -> String {
    match r.network {
        RunNetwork::None => "none".to_owned(),
        RunNetwork::Host => "host".to_owned(),
        RunNetwork::Default => match run.req.network_mode.as_str() {
            "" | "default" => "bridge".to_owned(),
            other => other.to_owned(),
        },
    }
}

/// The step container's configuration.
fn step_body(
    run: &Run,
    state: &State,
    parent: &str,
    argv: &[String],
    env: &StageEnv<'_>,
    network: String,
    mounts: &Mounts,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(parent.to_owned()),
        cmd: Some(argv.to_vec()),
        entrypoint: Some(vec![String::new()]),
        env: Some(env.run_env()),
        working_dir: state.config.working_dir.clone(),
        user: state.config.user.clone(),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        labels: Some(HashMap::new()),
        host_config: Some(HostConfig {
            network_mode: Some(network),
            extra_hosts: (!run.req.extra_hosts.is_empty()).then(|| run.req.extra_hosts.clone()),
            shm_size: run.req.shm_size,
            binds: (!mounts.binds.is_empty()).then(|| mounts.binds.clone()),
            tmpfs: (!mounts.tmpfs.is_empty()).then(|| mounts.tmpfs.clone()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_ports_as_docker() {
        assert_eq!(expand_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(expand_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(expand_port("8000-8001").unwrap(), ["8000/tcp", "8001/tcp"]);
        assert!(expand_port("x").is_err());
    }

    #[test]
    fn shell_or_exec_argv() {
        use crate::ShellOrExec;
        let sh = default_shell();
        assert_eq!(
            ShellOrExec::Shell("a b".into()).to_argv(&sh),
            ["/bin/sh", "-c", "a b"]
        );
    }
}
