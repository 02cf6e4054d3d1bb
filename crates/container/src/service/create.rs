//! `create`: a new container's record, name, writable layer, `/etc` files and mount points.
use std::path::PathBuf;

use berth_api::models::{
    ContainerConfig, ContainerCreateBody, ContainerCreateResponse, HostConfig,
};

use super::{ContainerService, Result, blocking, conflict, invalid, io_err, mounts, parse_signal};
use crate::spec;
use crate::store::{self, Paths, Record};

/// The container config as the create body gives it (image defaults are merged after).
fn container_config(body: ContainerCreateBody, image_ref: &str) -> ContainerConfig {
    ContainerConfig {
        hostname: body.hostname.filter(|h| !h.is_empty()),
        domainname: body.domainname,
        user: body.user,
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        exposed_ports: body.exposed_ports,
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        env: body.env,
        cmd: body.cmd,
        healthcheck: body.healthcheck,
        args_escaped: body.args_escaped,
        image: Some(image_ref.to_string()),
        volumes: body.volumes,
        working_dir: body.working_dir,
        entrypoint: body.entrypoint,
        network_disabled: body.network_disabled,
        on_build: body.on_build,
        labels: body.labels,
        stop_signal: body.stop_signal,
        stop_timeout: body.stop_timeout,
        shell: body.shell,
    }
}

/// The image's `Healthcheck` (kept verbatim in its config); one that does not decode is none.
fn image_healthcheck(image: &berth_image::ImageConfig) -> Option<berth_api::models::HealthConfig> {
    let value = image.config.as_ref()?.other.get("Healthcheck")?;
    serde_json::from_value(value.clone()).ok()
}

/// Docker's default hostname: the host's with `--network host`, else the short id.
fn default_hostname(network_mode: Option<&str>, id: &str) -> String {
    let short = || id[..12].to_string();
    if network_mode == Some("host") {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(short)
    } else {
        short()
    }
}

/// The log driver and its options, checked as dockerd does, before anything is created. The
/// daemon has already merged its defaults in (`Reloadable::apply_log_defaults`, at the API);
/// what is still unnamed gets the built-in `json-file`.
fn check_log_driver(hc: &mut HostConfig) -> Result<()> {
    let log = hc.log_config.get_or_insert_with(Default::default);
    crate::log_driver::resolve(log, &crate::log_driver::LogDefaults::default()).map_err(invalid)
}

impl ContainerService {
    /// `POST /containers/create?name=`.
    pub async fn create(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let image_ref = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| invalid("No image specified"))?;
        let mut hc = body.host_config.clone().unwrap_or_default();
        spec::validate_host_config(&hc)?;
        super::health::validate(body.healthcheck.as_ref())?;
        // Held from here until the writable layer is made (from then on the container keeps
        // it): an `rmi -f` meanwhile only untags it, and this container can start.
        let hold = {
            let images = self.images.clone();
            let r = image_ref.clone();
            blocking(move || images.hold(&r)).await?
        }
        .map_err(super::image_lookup_error(&image_ref))?;
        let image = hold.record().clone();
        let requested_endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone());
        let mut config = container_config(body, &image_ref);
        spec::merge_image_defaults(&mut config, &image.config);
        super::health::merge(&mut config, image_healthcheck(&image.config));
        let argv = spec::command_line(&config)?;
        if let Some(sig) = config.stop_signal.as_deref() {
            parse_signal(sig)?;
        }
        let id = store::new_id();
        if config.hostname.is_none() {
            config.hostname = Some(default_hostname(hc.network_mode.as_deref(), &id));
        }
        let endpoints = self
            .plan_networks(&mut hc, requested_endpoints.as_ref())
            .await?;
        if hc
            .network_mode
            .as_deref()
            .is_none_or(|m| m.is_empty() || m == "default")
        {
            hc.network_mode = Some("bridge".into());
        }
        check_log_driver(&mut hc)?;
        if let Some(rt) = hc
            .runtime
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "berth")
        {
            self.runtime_path(rt)?;
        }
        let requested = self.requested_mounts(&config, &hc)?;
        let links = self.check_links(&hc)?;
        let cgroup_parent = hc
            .cgroup_parent
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| self.cfg.cgroup_parent.clone());
        let name = self.reserve_name(name, &id)?;
        if !links.is_empty() {
            hc.links = Some(
                links
                    .iter()
                    .map(|(child, alias)| format!("/{child}:/{name}/{alias}"))
                    .collect(),
            );
        }
        let record = Record {
            version: store::RECORD_VERSION,
            id: id.clone(),
            name: name.clone(),
            created: store::now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: hc,
            image_id: image.id.clone(),
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            endpoints,
            mount_points: Vec::new(),
            cgroup_parent,
        };
        let record = match self.make_files(record, requested).await {
            Ok(r) => r,
            Err(e) => {
                self.lock_index().names.remove(&name);
                return Err(e);
            }
        };
        drop(hold);
        let entry = self.new_entry(record.clone());
        self.lock_index().by_id.insert(id.clone(), entry);
        // dockerd's volume service answers every volume a new container names (made now,
        // anonymous, or already there) with a `create` event, before the container's own.
        self.publish_volume_events(&record, "create");
        self.publish(&record, "create", &[]);
        Ok(ContainerCreateResponse {
            id,
            warnings: vec![],
        })
    }

    /// Checks a requested name (or makes one) and takes it, so two creates cannot both.
    fn reserve_name(&self, requested: Option<String>, id: &str) -> Result<String> {
        let name = match requested.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                if !store::valid_name(&n) {
                    return Err(invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n
            }
            None => self.generate_name(),
        };
        let mut idx = self.lock_index();
        if let Some(other) = idx.names.get(&name) {
            return Err(conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        idx.names.insert(name.clone(), id.to_string());
        Ok(name)
    }

    /// The container's files: data dir, `/etc` files, writable layer, volumes, and the
    /// record (durable: the commit point of a create). On failure nothing is left.
    async fn make_files(
        &self,
        record: Record,
        requested: Vec<berth_volume::MountPoint>,
    ) -> Result<Record> {
        let remap = spec::remapped(&record.host_config, self.cfg.userns_remap.as_ref())?;
        let paths = Paths::new(&self.cfg.data_root, &self.cfg.run_root, &record.id);
        let (images, volumes) = (self.images.clone(), self.volumes.clone());
        let id = record.id.clone();
        blocking(move || {
            let made = make_files(&images, &volumes, &paths, record, requested, remap);
            if made.is_err() {
                // The create's own error is the answer; a failed cleanup is only logged.
                let dir_gone = match std::fs::remove_dir_all(&paths.data_dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                    _ => Ok(()),
                };
                let cleaned = dir_gone.and(images.remove_rootfs(&id).map_err(|e| e.to_string()));
                if let Err(error) = cleaned {
                    tracing::warn!(container_id = %id, %error, "cleaning up a failed create failed");
                }
            }
            made
        })
        .await?
    }

    pub(super) fn generate_name(&self) -> String {
        const LEFT: [&str; 12] = [
            "brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quirky", "sharp",
            "tender", "vivid", "witty",
        ];
        const RIGHT: [&str; 12] = [
            "archimedes",
            "babbage",
            "curie",
            "darwin",
            "euler",
            "fermat",
            "gauss",
            "hopper",
            "lovelace",
            "noether",
            "turing",
            "wright",
        ];
        let idx = self.lock_index();
        loop {
            let n = format!(
                "{}_{}",
                LEFT[rand::random_range(0..LEFT.len())],
                RIGHT[rand::random_range(0..RIGHT.len())]
            );
            if !idx.names.contains_key(&n) {
                return n;
            }
            let n2 = format!("{n}{}", rand::random_range(0..100));
            if !idx.names.contains_key(&n2) {
                return n2;
            }
        }
    }

    /// The binary of a configured OCI runtime. Only names the daemon was started with run
    /// (`--add-runtime NAME=PATH`, and `runc` when installed): a path given by a client would
    /// be any host program run as root.
    pub(super) fn runtime_path(&self, name: &str) -> Result<PathBuf> {
        self.cfg
            .runtimes
            .get(name)
            .cloned()
            .ok_or_else(|| invalid(format!("Unknown runtime specified {name}")))
    }
}

/// [`ContainerService::make_files`]' blocking part.
fn make_files(
    images: &berth_image::ImageStore,
    volumes: &berth_volume::VolumeService,
    paths: &Paths,
    mut record: Record,
    requested: Vec<berth_volume::MountPoint>,
    remap: Option<berth_image::IdMapping>,
) -> Result<Record> {
    crate::perms::ensure_dir(&paths.data_dir, crate::perms::DATA_DIR_MODE)
        .map_err(io_err("create", &paths.data_dir))?;
    spec::write_etc_files(
        &paths.data_dir,
        record.config.hostname.as_deref().unwrap_or(""),
        &record.host_config,
    )?;
    images.prepare_rootfs_mapped(&record.id, &record.image_id, remap.as_ref())?;
    let rootfs = images.rootfs(&record.id, &record.image_id)?;
    let owner = remap.as_ref().and_then(berth_image::IdMapping::root);
    record.mount_points = mounts::materialize(volumes, &record.id, requested, &rootfs, owner)?;
    if let Err(e) = store::save(paths, &record, true) {
        mounts::release_mounts(volumes, &record.id, &record.mount_points, true);
        return Err(e);
    }
    Ok(record)
}
