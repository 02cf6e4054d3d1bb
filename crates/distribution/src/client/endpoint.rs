//! Where a registry is reached and how: Docker's rules for secure and insecure registries and
//! for mirrors.
//!
//! A registry is insecure when its `host[:port]` is listed with `--insecure-registry`, or its
//! address (resolved, for a name) falls in an insecure CIDR: `127.0.0.0/8` and `::1` always,
//! plus the CIDRs listed. An insecure registry is tried over HTTPS without verifying its
//! certificate, then over plain HTTP; a secure one only over HTTPS, its certificate checked.
//! `docker.io` is reached at `registry-1.docker.io`, after the `--registry-mirror`s (pulls
//! only).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::http::Tls;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is.
const DOCKER_HUB_API: &str = "https://registry-1.docker.io";
/// Docker Hub's v1 index (search).
pub(crate) const DOCKER_HUB_INDEX: &str = "https://index.docker.io";
/// The server address `docker login` uses for Docker Hub.
pub const DOCKER_HUB_SERVER_ADDRESS: &str = "https://index.docker.io/v1/";

/// An `--insecure-registry` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insecure {
    /// `10.0.0.0/8`.
    Cidr(IpAddr, u8),
    /// `myregistry:5000`.
    Host(String),
}

impl Insecure {
    /// Parses `ADDR/BITS` or `host[:port]` (an `http://` or `https://` prefix is refused,
    /// as Docker refuses it).
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.contains("://") {
            return Err(format!(
                "insecure registry {value} should not contain '://'"
            ));
        }
        if let Some((address, bits)) = value.split_once('/') {
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("invalid CIDR {value:?}"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("invalid CIDR {value:?}"))?;
            return Ok(Self::Cidr(address, bits));
        }
        let valid = !value.is_empty()
            && value.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if valid {
            Ok(Self::Host(value.to_ascii_lowercase()))
        } else {
            Err(format!("invalid insecure registry {value:?}"))
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let Self::Cidr(network, bits) = self else {
            return false;
        };
        match (network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// How the daemon talks to registries (its registry flags).
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--insecure-registry` (loopback is always insecure).
    pub insecure: Vec<Insecure>,
    /// `--registry-mirror`: URLs tried before Docker Hub for pulls.
    pub mirrors: Vec<String>,
    /// `--registry-hub`: where `docker.io` names go instead of Docker Hub (pulls, pushes,
    /// logins and searches): an air-gapped site's own registry, or in tests a dead loopback
    /// port, so that nothing a test does ever leaves the machine.
    pub hub: Option<String>,
    /// `--max-concurrent-downloads` (Docker's default: 3).
    pub max_concurrent_downloads: usize,
    /// `--max-concurrent-uploads` (Docker's default: 5).
    pub max_concurrent_uploads: usize,
    /// Per-registry CA certificates, `<dir>/<host[:port]>/*.crt`.
    pub certs_dir: Option<PathBuf>,
    /// The first wait before retrying a transient failure; doubled at each retry.
    pub retry_delay: Duration,
    /// Attempts at a transfer that fails without progress before giving up.
    pub max_attempts: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            mirrors: Vec::new(),
            hub: None,
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            certs_dir: Some(PathBuf::from("/etc/berth/certs.d")),
            retry_delay: Duration::from_millis(250),
            max_attempts: 5,
        }
    }
}

/// Where to send a registry's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://host[:port]`, or a mirror's URL (without trailing `/`).
    pub(crate) base: String,
    pub(crate) tls: Tls,
    /// A `--registry-mirror`.
    pub(crate) mirror: bool,
}

/// The host of `host[:port]` (brackets of an IPv6 address removed).
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map_or(domain, |(host, _)| host)
}

impl RegistryOptions {
    /// Whether `domain` (`host[:port]`) is an insecure registry.
    pub async fn is_insecure(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        if self
            .insecure
            .iter()
            .any(|entry| matches!(entry, Insecure::Host(host) if *host == domain))
        {
            return true;
        }
        let host = host_of(&domain);
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) if domain == DOCKER_HUB => Vec::new(),
            Err(_) => match tokio::net::lookup_host((host, 0)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(_) => Vec::new(),
            },
        };
        addresses
            .into_iter()
            .any(|ip| ip.is_loopback() || self.insecure.iter().any(|entry| entry.contains(ip)))
    }

    /// The endpoints to try for `domain`, in order.
    pub(crate) async fn endpoints(&self, domain: &str, pull: bool) -> Vec<Endpoint> {
        if domain == DOCKER_HUB {
            let mut endpoints: Vec<Endpoint> = if pull {
                self.mirrors
                    .iter()
                    .map(|mirror| Endpoint {
                        base: mirror.trim_end_matches('/').to_owned(),
                        tls: Tls::Verify,
                        mirror: true,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            endpoints.push(self.hub_endpoint(DOCKER_HUB_API));
            return endpoints;
        }
        if self.is_insecure(domain).await {
            vec![
                Endpoint {
                    base: format!("https://{domain}"),
                    tls: Tls::Skip,
                    mirror: false,
                },
                Endpoint {
                    base: format!("http://{domain}"),
                    tls: Tls::Skip,
                    mirror: false,
                },
            ]
        } else {
            vec![Endpoint {
                base: format!("https://{domain}"),
                tls: Tls::Verify,
                mirror: false,
            }]
        }
    }

    /// Docker Hub's endpoint at `default`, or the `--registry-hub` override (TLS verified
    /// when it is https).
    pub(crate) fn hub_endpoint(&self, default: &str) -> Endpoint {
        let base = self
            .hub
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned();
        let tls = if base.starts_with("https://") {
            Tls::Verify
        } else {
            Tls::Skip
        };
        Endpoint {
            base,
            tls,
            mirror: false,
        }
    }

    /// Checks the values: mirrors and the hub override must be http(s) URLs.
    pub fn validate(&self) -> Result<(), String> {
        for mirror in self.mirrors.iter().chain(&self.hub) {
            if !(mirror.starts_with("https://") || mirror.starts_with("http://"))
                || mirror.trim_end_matches('/').matches('/').count() > 2
            {
                return Err(format!(
                    "invalid mirror {mirror:?}: a mirror is an http(s) URL without a path"
                ));
            }
        }
        if self.max_concurrent_downloads == 0 || self.max_concurrent_uploads == 0 {
            return Err("concurrent downloads and uploads must be at least 1".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_values() {
        assert_eq!(
            Insecure::parse("10.0.0.0/8"),
            Ok(Insecure::Cidr("10.0.0.0".parse().expect("ip"), 8))
        );
        assert_eq!(
            Insecure::parse("Reg.Example:5000"),
            Ok(Insecure::Host("reg.example:5000".into()))
        );
        assert!(Insecure::parse("http://reg").is_err());
        assert!(Insecure::parse("10.0.0.0/33").is_err());
        assert!(Insecure::parse("a b").is_err());
        let cidr = Insecure::parse("192.168.0.0/16").expect("cidr");
        assert!(cidr.contains("192.168.3.4".parse().expect("ip")));
        assert!(!cidr.contains("192.169.0.1".parse().expect("ip")));
        assert!(
            Insecure::parse("::/0")
                .expect("all")
                .contains("::2".parse().expect("ip"))
        );
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("h:5000"), "h");
        assert_eq!(host_of("h"), "h");
    }

    #[tokio::test]
    async fn endpoints_follow_dockers_rules() {
        let mut options = RegistryOptions {
            mirrors: vec!["https://mirror.example/".into()],
            insecure: vec![
                Insecure::parse("reg.example:5000").expect("host"),
                Insecure::parse("10.1.0.0/16").expect("cidr"),
            ],
            ..RegistryOptions::default()
        };
        let hub = options.endpoints(DOCKER_HUB, true).await;
        assert_eq!(hub[0].base, "https://mirror.example");
        assert!(hub[0].mirror);
        assert_eq!(hub[1].base, "https://registry-1.docker.io");
        assert_eq!(options.endpoints(DOCKER_HUB, false).await.len(), 1);
        for insecure in [
            "127.0.0.1:5000",
            "localhost:5000",
            "reg.example:5000",
            "10.1.2.3",
        ] {
            let endpoints = options.endpoints(insecure, true).await;
            assert_eq!(endpoints.len(), 2, "{insecure}");
            assert_eq!(endpoints[1].base, format!("http://{insecure}"));
            assert_eq!(endpoints[0].tls, Tls::Skip);
        }
        let secure = options.endpoints("10.2.0.1:443", true).await;
        assert_eq!(
            secure,
            [Endpoint {
                base: "https://10.2.0.1:443".into(),
                tls: Tls::Verify,
                mirror: false
            }]
        );
        assert!(options.validate().is_ok());
        options.mirrors.push("ftp://x".into());
        assert!(options.validate().is_err());
    }
}
