//! A container's networking, as the container service drives the network service.
//!
//! - create: the network mode and every network in `NetworkingConfig` must exist; the
//!   record keeps the endpoint choices per network (`Record::endpoints`).
//! - start: `resolv.conf` is written before the monitor starts; once the init exists
//!   (blocked before exec) it is attached to its networks, its ports are published and
//!   `/etc/hosts` gets its addresses. Any failure releases what was taken and kills the init.
//! - exit: everything the run held is released (addresses, ports, rules, DNS names); the
//!   kernel removes the devices with the namespace.
//! - `network connect`/`disconnect`: on a running container the interface is added or
//!   removed live; on a stopped one only the record changes.
use std::sync::Arc;

use berth_api::models::{EndpointSettings, NetworkSettings};
use berth_monitor::protocol::Request;
use berth_network::{ContainerNet, Endpoint, NetworkError, NetworkService};
use serde_json::Value;

use super::{ContainerService, Entry, Result, blocking, conflict, io_err};
use crate::ContainerError;
use crate::monitor::call_ok;
use crate::net::{self, NetMode};
use crate::store::{Record, Status};

impl ContainerService {
    /// The network service, when the daemon has one.
    pub fn networks(&self) -> Option<&Arc<NetworkService>> {
        self.cfg.network.as_ref()
    }

    fn require_networks(&self) -> Result<Arc<NetworkService>> {
        self.cfg
            .network
            .clone()
            .ok_or_else(|| ContainerError::NotImplemented {
                message: "networking is disabled in this daemon".into(),
            })
    }

    /// Checks the network mode and the endpoint choices at create, and returns the endpoint
    /// settings to keep, one per network the container joins at start (the mode's network
    /// first).
    pub(super) async fn plan_networks(
        &self,
        hc: &mut berth_api::models::HostConfig,
        requested: Option<&std::collections::HashMap<String, EndpointSettings>>,
    ) -> Result<Vec<(String, EndpointSettings)>> {
        let mut mode = net::mode(hc);
        let Some(service) = self.cfg.network.clone() else {
            return Ok(Vec::new());
        };
        // `-b none`: no default bridge, so the default network is `none`.
        if mode == NetMode::Network("bridge".into())
            && hc.network_mode.as_deref().is_none_or(|m| m != "bridge")
            && service.inspect("bridge").is_err()
        {
            hc.network_mode = Some("none".into());
            mode = NetMode::None;
        }
        let mut out = Vec::new();
        if let NetMode::Network(name) = &mode {
            // In memory, under a short lock: no blocking task (a thread hand-off costs
            // milliseconds on a loaded host, and this is on the `run` path).
            let info = service.inspect(name)?;
            // The docker CLI keys the endpoint of the default network as `default`.
            let chosen = requested
                .and_then(|r| {
                    r.get(name)
                        .or_else(|| r.get(&info.name))
                        .or_else(|| r.get("default").filter(|_| info.name == "bridge"))
                })
                .cloned()
                .unwrap_or_default();
            if net::attach_options(Some(&chosen))?.ip.is_some() && info.name == "bridge" {
                return Err(NetworkError::StaticIpOnDefaultBridge.into());
            }
            out.push((info.name.clone(), chosen));
            hc.network_mode = Some(if name == "bridge" {
                "bridge".into()
            } else {
                name.clone()
            });
        }
        for (name, settings) in requested.into_iter().flatten() {
            let name = if name == "default" { "bridge" } else { name };
            if out.iter().any(|(n, _)| n == name)
                || matches!(mode, NetMode::Network(ref m) if m == name)
            {
                continue;
            }
            if !matches!(mode, NetMode::Network(_)) {
                // Docker ignores endpoint settings for none/host/container modes.
                continue;
            }
            let info = service.inspect(name)?;
            net::attach_options(Some(settings))?;
            out.push((info.name, settings.clone()));
        }
        Ok(out)
    }

    /// Writes `resolv.conf` for a run, before the monitor starts: the network's DNS (the
    /// embedded server on user networks), unless `--dns` was given. With `--network
    /// container:X` the container shares X's `hosts` and `resolv.conf`, as with Docker.
    pub(super) async fn prepare_resolv_conf(&self, entry: &Entry, rec: &Record) -> Result<()> {
        let mode = net::mode(&rec.host_config);
        if let NetMode::Container(other) = &mode {
            let from = self.lookup(other)?.paths.data_dir.clone();
            let to = entry.paths.data_dir.clone();
            return blocking(move || -> Result<()> {
                for f in ["hosts", "resolv.conf"] {
                    let (src, dst) = (from.join(f), to.join(f));
                    let text = std::fs::read(&src).map_err(io_err("read", &src))?;
                    std::fs::write(&dst, text).map_err(io_err("write", &dst))?;
                }
                Ok(())
            })
            .await?;
        }
        let (Some(service), NetMode::Network(name)) = (self.cfg.network.clone(), mode) else {
            return Ok(());
        };
        if rec.host_config.dns.as_ref().is_some_and(|d| !d.is_empty()) {
            return Ok(());
        }
        let path = entry.paths.data_dir.join("resolv.conf");
        // Two small files, read and written inline: cheaper than a blocking task here.
        let mut text = service.resolv_conf_for(&name)?;
        for s in rec.host_config.dns_search.iter().flatten() {
            text.push_str(&format!("search {s}\n"));
        }
        // In place, not renamed: a running container's bind mount holds this inode.
        std::fs::write(&path, text).map_err(io_err("write", &path))
    }

    /// Attaches a started init (blocked before exec) to its networks and publishes its
    /// ports. On failure everything is released and the caller kills the init.
    pub(super) async fn setup_networks(&self, entry: &Entry, rec: &Record, pid: i32) -> Result<()> {
        let Some(service) = self.cfg.network.clone() else {
            return Ok(());
        };
        let mode = net::mode(&rec.host_config);
        if let Some(network) = namespace_network(&mode)
            && pid > 0
        {
            // dockerd joins such a container to its `none` or `host` network too, and says so.
            self.publish_network_event("connect", &rec.id, network);
        }
        if matches!(mode, NetMode::Host | NetMode::Container(_)) || pid <= 0 {
            return Ok(());
        }
        if rec.endpoints.is_empty() {
            return Ok(());
        }
        let container = ContainerNet {
            id: rec.id.clone(),
            name: rec.name.clone(),
        };
        let plan = rec.endpoints.clone();
        let names: Vec<String> = plan.iter().map(|(n, _)| n.clone()).collect();
        // Docker ignores published ports without a network to publish from.
        let bindings = if matches!(mode, NetMode::Network(_)) {
            net::port_bindings(&rec.config, &rec.host_config)?
        } else {
            Vec::new()
        };
        let hosts = entry.paths.data_dir.join("hosts");
        let hostname = rec.config.hostname.clone().unwrap_or_default();
        let mut extra = rec.host_config.extra_hosts.clone().unwrap_or_default();
        extra.extend(
            self.links(rec)
                .await?
                .iter()
                .filter(|l| !l.ip.is_empty())
                .map(super::links::hosts_entry),
        );
        let id = rec.id.clone();
        blocking(move || -> Result<()> {
            let began = std::time::Instant::now();
            let result = (|| -> Result<()> {
                let mut endpoints = Vec::new();
                for (name, settings) in &plan {
                    let opts = net::attach_options(Some(settings))?;
                    endpoints.push(service.attach(&container, name, pid, &opts)?);
                }
                if !bindings.is_empty() {
                    service.publish(&container.id, &bindings)?;
                }
                write_hosts(&hosts, &hostname, &endpoints, &extra)
            })();
            if result.is_err()
                && let Err(error) = service.release(&id)
            {
                // The setup error is the one returned; this one is only logged.
                tracing::warn!(container_id = %id, %error, "releasing a failed network setup failed");
            }
            tracing::debug!(
                container_id = %id,
                micros = began.elapsed().as_micros() as u64,
                "network setup"
            );
            result
        })
        .await??;
        for network in &names {
            self.publish_network_event("connect", &rec.id, network);
        }
        Ok(())
    }

    /// Frees what a run held on its networks (no-op without networking or endpoints).
    pub(super) async fn release_networks(&self, rec: &Record) {
        let id = rec.id.as_str();
        let Some(service) = self.cfg.network.clone() else {
            return;
        };
        if let Some(network) = namespace_network(&net::mode(&rec.host_config)) {
            self.publish_network_event("disconnect", id, network);
        }
        let joined: Vec<String> = service
            .endpoints(id)
            .into_iter()
            .map(|e| e.network_name)
            .collect();
        for network in &joined {
            self.publish_network_event("disconnect", id, network);
        }
        let id = id.to_string();
        let released = blocking(move || {
            let began = std::time::Instant::now();
            let r = service.release(&id);
            tracing::debug!(
                container_id = %id,
                micros = began.elapsed().as_micros() as u64,
                "network release"
            );
            r
        })
        .await;
        if let Ok(Err(error)) = released {
            tracing::warn!(%error, "releasing a container's network resources failed");
        }
    }

    /// dockerd's network event of a container joining or leaving `network` (actor: the
    /// network; attributes: the container, the network's name and driver).
    fn publish_network_event(&self, action: &str, container_id: &str, network: &str) {
        let Some(info) = self
            .cfg
            .network
            .as_ref()
            .and_then(|s| s.inspect(network).ok())
        else {
            return;
        };
        let attributes = std::collections::HashMap::from([
            ("container".to_string(), container_id.to_string()),
            ("name".to_string(), info.name.clone()),
            ("type".to_string(), info.driver.clone()),
        ]);
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::NETWORK,
            action,
            &info.id,
            attributes,
        );
    }

    /// After a rename: the container's DNS name on its networks follows.
    pub(super) async fn rename_in_networks(&self, rec: &Record) {
        let Some(service) = self.cfg.network.clone() else {
            return;
        };
        let (id, name) = (rec.id.clone(), rec.name.clone());
        if let Ok(Err(error)) = blocking(move || service.rename(&id, &name)).await {
            tracing::warn!(%error, "renaming a container's DNS names failed");
        }
    }

    /// Kills an init whose network setup failed.
    pub(super) async fn kill_unstarted(&self, entry: &Entry) {
        let kill = Request::Kill {
            signal: libc::SIGKILL,
        };
        if let Err(error) = call_ok(&*self.monitor, &entry.paths.socket(), &kill).await {
            // The exit watcher still learns the outcome (an exit line, or the monitor gone).
            tracing::warn!(container_id = %entry.id, %error, "killing an init that could not start failed");
        }
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(
        &self,
        network: &str,
        reference: &str,
        settings: Option<EndpointSettings>,
    ) -> Result<()> {
        let service = self.require_networks()?;
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        let info = blocking({
            let (service, network) = (service.clone(), network.to_string());
            move || service.inspect(&network)
        })
        .await??;
        if matches!(info.driver.as_str(), "host" | "null") {
            return Err(conflict(format!(
                "container cannot be connected to network {}",
                info.name
            )));
        }
        if matches!(
            net::mode(&rec.host_config),
            NetMode::Host | NetMode::Container(_)
        ) {
            return Err(conflict(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network: {}",
                rec.name
            )));
        }
        if rec.endpoints.iter().any(|(n, _)| *n == info.name) {
            return Err(ContainerError::Network {
                source: NetworkError::AlreadyAttached {
                    container: rec.name.clone(),
                    network: info.name,
                },
            });
        }
        let settings = settings.unwrap_or_default();
        let opts = net::attach_options(Some(&settings))?;
        let running = matches!(rec.state.status, Status::Running | Status::Paused);
        if running {
            let pid = i32::try_from(rec.state.pid).unwrap_or(0);
            let container = ContainerNet {
                id: rec.id.clone(),
                name: rec.name.clone(),
            };
            let hosts = entry.paths.data_dir.join("hosts");
            let hostname = rec.config.hostname.clone().unwrap_or_default();
            let extra = rec.host_config.extra_hosts.clone().unwrap_or_default();
            let name = info.name.clone();
            let id = rec.id.clone();
            let service = service.clone();
            blocking(move || -> Result<()> {
                service.attach(&container, &name, pid, &opts)?;
                let endpoints = service.endpoints(&id);
                // /etc/hosts follows; a failure there does not undo a working interface.
                if let Err(error) = write_hosts(&hosts, &hostname, &endpoints, &extra) {
                    tracing::warn!(container_id = %id, %error, "updating /etc/hosts after connect failed");
                }
                Ok(())
            })
            .await??;
        }
        if running {
            self.publish_network_event("connect", &rec.id, &info.name);
        }
        rec.endpoints.push((info.name.clone(), settings));
        if let Err(error) = self.save(&entry, &rec).await {
            // The record does not list the network: neither does the container.
            rec.endpoints.pop();
            if running {
                let (id, name) = (rec.id.clone(), info.name);
                if let Ok(Err(undo)) = blocking(move || service.detach(&id, &name)).await {
                    tracing::warn!(container_id = %entry.id, error = %undo, "undoing a connect failed");
                }
            }
            return Err(error);
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(&self, network: &str, reference: &str) -> Result<()> {
        let service = self.require_networks()?;
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        let info = blocking({
            let (service, network) = (service.clone(), network.to_string());
            move || service.inspect(&network)
        })
        .await??;
        let Some(pos) = rec.endpoints.iter().position(|(n, _)| *n == info.name) else {
            return Err(ContainerError::Network {
                source: NetworkError::NotAttached {
                    container: rec.name.clone(),
                    network: info.name,
                },
            });
        };
        if matches!(rec.state.status, Status::Running | Status::Paused) {
            let (id, name) = (rec.id.clone(), info.name.clone());
            blocking(move || service.detach(&id, &name)).await??;
            self.publish_network_event("disconnect", &rec.id, &info.name);
        }
        let mut updated = rec.clone();
        updated.endpoints.remove(pos);
        // A failed write leaves the network in the record, to be attached again at the next
        // start; the live interface is already gone.
        self.save(&entry, &updated).await?;
        *rec = updated;
        Ok(())
    }

    /// `NetworkSettings` of a container: live endpoints while it runs, the configured
    /// networks (without addresses) otherwise.
    pub(super) fn network_settings(&self, rec: &Record, sandbox_key: String) -> NetworkSettings {
        let live: Vec<Endpoint> = match (&self.cfg.network, rec.state.status) {
            (Some(s), Status::Running | Status::Paused | Status::Restarting) => {
                s.endpoints(&rec.id)
            }
            _ => Vec::new(),
        };
        let published = match &self.cfg.network {
            Some(s) if !live.is_empty() => s.published_ports(&rec.id),
            _ => Vec::new(),
        };
        let mut networks = std::collections::HashMap::new();
        match net::mode(&rec.host_config) {
            NetMode::None => {
                networks.insert("none".to_string(), net::configured_settings(None));
            }
            NetMode::Host => {
                networks.insert("host".to_string(), net::configured_settings(None));
            }
            NetMode::Container(_) | NetMode::Network(_) => {}
        }
        // `network connect` may add networks to any mode but host and container.
        for (name, settings) in &rec.endpoints {
            let value = match live.iter().find(|e| e.network_name == *name) {
                Some(ep) => net::endpoint_settings(ep),
                None => net::configured_settings(Some(settings)),
            };
            networks.insert(name.clone(), value);
        }
        NetworkSettings {
            sandbox_id: Some(String::new()),
            sandbox_key: Some(sandbox_key),
            ports: Some(if live.is_empty() {
                std::collections::HashMap::new()
            } else {
                net::port_map(&rec.config, &published)
            }),
            networks: Some(networks),
        }
    }

    /// `ps`'s `Ports` and `NetworkSettings.Networks` of a container.
    pub(super) fn summary_network(
        &self,
        rec: &Record,
    ) -> (
        Vec<berth_api::models::PortSummary>,
        std::collections::HashMap<String, EndpointSettings>,
    ) {
        use berth_api::models::{PortSummary, PortSummaryTypeEnum};
        let settings = self.network_settings(rec, String::new());
        let mut ports = Vec::new();
        for (key, bindings) in settings.ports.iter().flatten() {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            let Ok(private_port) = port.parse::<u16>() else {
                continue;
            };
            let typ = Some(if proto == "udp" {
                PortSummaryTypeEnum::UDP
            } else {
                PortSummaryTypeEnum::TCP
            });
            match bindings {
                None => ports.push(PortSummary {
                    ip: None,
                    private_port,
                    public_port: None,
                    typ,
                }),
                Some(list) => {
                    for b in list {
                        ports.push(PortSummary {
                            ip: b.host_ip.clone(),
                            private_port,
                            public_port: b.host_port.as_deref().and_then(|p| p.parse().ok()),
                            typ,
                        });
                    }
                }
            }
        }
        ports.sort_by_key(|p| (p.private_port, p.public_port));
        (ports, settings.networks.unwrap_or_default())
    }

    /// `ps --filter network=NAME|ID`, `publish=PORT[/PROTO]` (a host port) and
    /// `expose=PORT[/PROTO]` (a container port).
    pub(super) fn network_filters_match(
        &self,
        rec: &Record,
        filters: &berth_api::filters::Filters,
    ) -> bool {
        let (ports, networks) = self.summary_network(rec);
        let port_is = |want: &str, port: u16, proto: &str| match want.split_once('/') {
            Some((p, pr)) => p.parse() == Ok(port) && pr == proto,
            None => want.parse() == Ok(port),
        };
        let proto = |p: &berth_api::models::PortSummary| {
            p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into())
        };
        filters.any("network", |n| {
            networks.iter().any(|(name, ep)| {
                name == n
                    || ep
                        .network_id
                        .as_deref()
                        .is_some_and(|id| !id.is_empty() && id.starts_with(n))
            })
        }) && filters.any("publish", |want| {
            ports.iter().any(|p| {
                p.public_port
                    .is_some_and(|port| port_is(want, port, &proto(p)))
            })
        }) && filters.any("expose", |want| {
            ports
                .iter()
                .any(|p| port_is(want, p.private_port, &proto(p)))
                || rec.config.exposed_ports.iter().flatten().any(|k| {
                    let (port, pr) = k.split_once('/').unwrap_or((k, "tcp"));
                    port.parse().is_ok_and(|port| port_is(want, port, pr))
                })
        })
    }

    /// `GET /containers/{id}/json` as JSON, with the top-level `NetworkSettings` fields API
    /// 1.44 still has (`IPAddress`, `Gateway`, `MacAddress`, …).
    pub async fn inspect_json(&self, reference: &str, size: bool) -> Result<Value> {
        let resp = self.inspect(reference, size).await?;
        let mut value = serde_json::to_value(&resp).map_err(|source| ContainerError::Encode {
            what: "inspect",
            source,
        })?;
        let entry = self.lookup(reference)?;
        let rec = entry.rec.lock().await.clone();
        let first = rec.endpoints.first().map(|(n, _)| n.clone());
        let bridge = match (&self.cfg.network, first.as_deref()) {
            (Some(s), Some("bridge")) => s
                .inspect("bridge")
                .ok()
                .and_then(|i| i.options.get("com.docker.network.bridge.name").cloned()),
            _ => None,
        };
        if let (Some(settings), Some(obj)) = (
            resp.network_settings.as_ref(),
            value
                .get_mut("NetworkSettings")
                .and_then(Value::as_object_mut),
        ) && let Value::Object(extra) =
            net::legacy_fields(settings, first.as_deref(), bridge.as_deref())
        {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
        Ok(value)
    }
}

/// The network dockerd names for a container with no endpoint of its own: `none` or `host`.
fn namespace_network(mode: &NetMode) -> Option<&'static str> {
    match mode {
        NetMode::None => Some("none"),
        NetMode::Host => Some("host"),
        NetMode::Container(_) | NetMode::Network(_) => None,
    }
}

/// Writes a container's /etc/hosts: loopback lines, `--add-host` entries, then one line per
/// address with the hostname. In place: the running container's bind mount holds the inode.
fn write_hosts(
    path: &std::path::Path,
    hostname: &str,
    endpoints: &[Endpoint],
    extra: &[String],
) -> Result<()> {
    let mut text = berth_network::hosts_file(hostname, &[]);
    for e in extra {
        if let Some((name, ip)) = e.split_once(':') {
            text.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    for ep in endpoints {
        text.push_str(&format!("{}\t{hostname}\n", ep.ip));
        if let Some(ip6) = ep.ip6 {
            text.push_str(&format!("{ip6}\t{hostname}\n"));
        }
    }
    std::fs::write(path, text).map_err(io_err("write", path))
}

impl From<NetworkError> for ContainerError {
    fn from(source: NetworkError) -> Self {
        ContainerError::Network { source }
    }
}
