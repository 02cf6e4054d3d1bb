//! Legacy links (`--link name:alias`) on the default bridge, as dockerd makes them: the
//! linked container must exist at create and run at start; the linking container gets its
//! address in `/etc/hosts` (alias, hostname, name) and Docker's `ALIAS_*` variables.
use berth_api::models::HostConfig;

use super::{ContainerService, Result, conflict, invalid};
use crate::ContainerError;
use crate::store::Record;

/// One link at start: what the linking container learns of the linked one.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Link {
    /// The link's name, `/parent/alias`.
    pub(super) name: String,
    /// The alias.
    pub(super) alias: String,
    /// The linked container's name (no slash) and hostname.
    pub(super) child_name: String,
    pub(super) child_hostname: String,
    /// Its address on the default bridge.
    pub(super) ip: String,
    /// Its exposed ports (`80/tcp`).
    pub(super) ports: Vec<String>,
    /// Its environment.
    pub(super) env: Vec<String>,
}

/// `name[:alias]` or the stored `/child:/parent/alias` → (child, alias) (moby's `ParseLink`).
pub(super) fn parse(link: &str) -> Result<(String, String)> {
    let mut parts = link.split(':');
    let name = parts.next().unwrap_or_default();
    let alias = parts.next();
    if name.is_empty() || parts.next().is_some() {
        return Err(invalid(format!("bad format for links: {link}")));
    }
    let alias = alias.unwrap_or(name);
    let child = name.trim_start_matches('/').to_owned();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_owned();
    Ok((child, alias))
}

/// Docker's variables of a link (moby's `Link.ToEnv`): `ALIAS_PORT` (the lowest port, tcp
/// first), `ALIAS_NAME`, per port `ALIAS_PORT_80_TCP{,_ADDR,_PORT,_PROTO}`, and the linked
/// container's environment as `ALIAS_ENV_*` (but HOME and PATH).
pub(super) fn env(link: &Link) -> Vec<String> {
    let alias = link.alias.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = link
        .ports
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((n.parse().ok()?, proto.to_owned()))
        })
        .collect();
    ports.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (a.1 != "tcp").cmp(&(b.1 != "tcp")))
    });
    let ip = &link.ip;
    let mut out = Vec::new();
    if let Some((port, proto)) = ports.first() {
        out.push(format!("{alias}_PORT={proto}://{ip}:{port}"));
    }
    out.push(format!("{alias}_NAME={}", link.name));
    for (port, proto) in &ports {
        let key = format!("{alias}_PORT_{port}_{}", proto.to_uppercase());
        out.push(format!("{key}={proto}://{ip}:{port}"));
        out.push(format!("{key}_ADDR={ip}"));
        out.push(format!("{key}_PORT={port}"));
        out.push(format!("{key}_PROTO={proto}"));
    }
    for kv in &link.env {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        if k != "HOME" && k != "PATH" {
            out.push(format!("{alias}_ENV_{k}={v}"));
        }
    }
    out
}

/// The `/etc/hosts` entry of a link, as `--add-host` takes it (`names:ip`): the alias, the
/// linked container's hostname, and its name unless that is the alias.
pub(super) fn hosts_entry(link: &Link) -> String {
    let mut names = format!("{} {}", link.alias, link.child_hostname);
    if link.alias != link.child_name {
        names.push(' ');
        names.push_str(&link.child_name);
    }
    format!("{names}:{}", link.ip)
}

/// The links' variables under the container's own (which win on the same name).
pub(super) fn merge_env(links: &[Link], own: Option<Vec<String>>) -> Option<Vec<String>> {
    if links.is_empty() {
        return own;
    }
    let own = own.unwrap_or_default();
    let key = |kv: &str| kv.split('=').next().unwrap_or("").to_owned();
    let mut out: Vec<String> = links
        .iter()
        .flat_map(env)
        .filter(|kv| !own.iter().any(|o| key(o) == key(kv)))
        .collect();
    out.extend(own);
    Some(out)
}

impl ContainerService {
    /// At create: each linked container must exist (Docker's error otherwise, as a bad
    /// parameter), and the links are kept as dockerd keeps them, `/child:/parent/alias`.
    pub(super) fn check_links(&self, hc: &HostConfig) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for l in hc.links.iter().flatten() {
            let (child, alias) = parse(l)?;
            let entry = self.lookup(&child).map_err(|e| match e {
                ContainerError::NotFound { reference } => invalid(format!(
                    "could not get container for {child}: No such container: {reference}"
                )),
                other => other,
            })?;
            let name = entry
                .rec
                .try_lock()
                .map(|r| r.name.clone())
                .unwrap_or(child);
            out.push((name, alias));
        }
        Ok(out)
    }

    /// At start: the links, with each linked container's address on the default bridge.
    pub(super) async fn links(&self, rec: &Record) -> Result<Vec<Link>> {
        let mut out = Vec::new();
        for l in rec.host_config.links.iter().flatten() {
            let (child, alias) = parse(l)?;
            let name = format!("/{}/{alias}", rec.name);
            let entry = self.lookup(&child)?;
            let not_running = || {
                conflict(format!(
                    "Cannot link to a non running container: /{child} AS {name}"
                ))
            };
            if !entry.life.borrow().status.is_alive() {
                return Err(not_running());
            }
            let c = entry.rec.lock().await.clone();
            let ip = self
                .cfg
                .network
                .as_ref()
                .and_then(|n| {
                    n.endpoints(&c.id)
                        .into_iter()
                        .find(|e| e.network_name == "bridge")
                })
                .map(|e| e.ip.to_string())
                .unwrap_or_default();
            out.push(Link {
                name,
                alias,
                child_name: c.name.clone(),
                child_hostname: c.config.hostname.clone().unwrap_or_default(),
                ip,
                ports: c.config.exposed_ports.clone().unwrap_or_default(),
                env: c.config.env.clone().unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// `DELETE /containers/{parent}/{alias}?link=1`: the link goes from the container's
    /// `HostConfig.Links` (its next start has it no more).
    pub async fn remove_link(&self, parent: &str, alias: &str) -> Result<()> {
        let entry = self.lookup(parent).map_err(|_| {
            invalid(format!(
                "Cannot get parent /{parent} for link name /{parent}/{alias}"
            ))
        })?;
        let mut rec = entry.rec.lock().await;
        let mut next = rec.clone();
        let links = next.host_config.links.take().unwrap_or_default();
        let before = links.len();
        let kept: Vec<String> = links
            .into_iter()
            .filter(|l| parse(l).map(|(_, a)| a != alias).unwrap_or(true))
            .collect();
        if kept.len() == before {
            return Err(ContainerError::NotFound {
                reference: format!("{parent}/{alias}"),
            });
        }
        next.host_config.links = (!kept.is_empty()).then_some(kept);
        self.save(&entry, &next).await?;
        *rec = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            name: "/web/db".into(),
            alias: "db".into(),
            child_name: "pg".into(),
            child_hostname: "abc123".into(),
            ip: "10.0.0.2".into(),
            ports: vec!["5432/tcp".into(), "53/udp".into(), "53/tcp".into()],
            env: vec!["PATH=/bin".into(), "PASS=x=y".into(), "HOME=/".into()],
        }
    }

    #[test]
    fn links_parse_as_moby() {
        assert_eq!(parse("db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(parse("pg:db").unwrap(), ("pg".into(), "db".into()));
        assert_eq!(parse("/pg:/web/db").unwrap(), ("pg".into(), "db".into()));
        assert!(parse("a:b:c").is_err());
        assert!(parse(":x").is_err());
    }

    #[test]
    fn link_variables_are_dockers() {
        assert_eq!(
            env(&link()),
            [
                "DB_PORT=tcp://10.0.0.2:53",
                "DB_NAME=/web/db",
                "DB_PORT_53_TCP=tcp://10.0.0.2:53",
                "DB_PORT_53_TCP_ADDR=10.0.0.2",
                "DB_PORT_53_TCP_PORT=53",
                "DB_PORT_53_TCP_PROTO=tcp",
                "DB_PORT_53_UDP=udp://10.0.0.2:53",
                "DB_PORT_53_UDP_ADDR=10.0.0.2",
                "DB_PORT_53_UDP_PORT=53",
                "DB_PORT_53_UDP_PROTO=udp",
                "DB_PORT_5432_TCP=tcp://10.0.0.2:5432",
                "DB_PORT_5432_TCP_ADDR=10.0.0.2",
                "DB_PORT_5432_TCP_PORT=5432",
                "DB_PORT_5432_TCP_PROTO=tcp",
                "DB_ENV_PASS=x=y",
            ]
        );
        assert_eq!(hosts_entry(&link()), "db abc123 pg:10.0.0.2");
        let merged = merge_env(&[link()], Some(vec!["DB_NAME=mine".into()])).unwrap();
        assert!(merged.contains(&"DB_NAME=mine".to_string()));
        assert!(!merged.contains(&"DB_NAME=/web/db".to_string()));
    }
}
