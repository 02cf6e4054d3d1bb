//! `login` (`POST /auth`): checks credentials against a registry as Docker does — a registry
//! that asks for none accepts any; one with a bearer challenge must issue a token for them;
//! one with basic auth must accept them on `/v2/`.

use hyper::Method;

use super::Distribution;
use super::auth::AuthConfig;
use super::endpoint::{DOCKER_HUB, DOCKER_HUB_SERVER_ADDRESS};
use super::error::ClientError;
use super::http;
use super::session::{Session, registry_error};

/// A successful login's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStatus {
    /// `Login Succeeded`.
    pub status: String,
    /// An identity token to store instead of the password (when the registry gives one).
    pub identity_token: String,
}

/// The registry a login's server address names (`host[:port]`, `docker.io` for Docker Hub).
pub fn login_registry(server_address: &str) -> String {
    let trimmed = server_address.trim();
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_owned(),
        _ => host,
    }
}

/// The key credentials for `registry` are stored under in `config.json` (Docker's: the v1
/// index URL for Docker Hub, else `host[:port]`).
pub fn config_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_SERVER_ADDRESS.to_owned()
    } else {
        registry.to_owned()
    }
}

/// The credentials for the registry of image `reference` among `configs` (the map of
/// `X-Registry-Config`, keyed as `config.json` is: `host[:port]`, the v1 index URL for Docker
/// Hub, with or without a scheme); none when the registry is not there or the reference does
/// not parse.
pub fn auth_for_reference(
    configs: &std::collections::HashMap<String, AuthConfig>,
    reference: &str,
) -> AuthConfig {
    let Ok(name) = super::parse_reference(reference) else {
        return AuthConfig::default();
    };
    let registry = login_registry(name.domain());
    configs
        .iter()
        .find(|(key, _)| login_registry(key) == registry)
        .map(|(_, auth)| auth.clone())
        .unwrap_or_default()
}

impl Distribution {
    /// Checks `auth`'s credentials against the registry of its server address.
    pub async fn login(&self, auth: &AuthConfig) -> Result<LoginStatus, ClientError> {
        let registry = login_registry(&auth.serveraddress);
        let session = Session::open(
            &self.http,
            &self.options,
            &self.tokens,
            &registry,
            auth.credentials(),
            Vec::new(),
            false,
        )
        .await?;
        let url = session.url("/v2/");
        let response = session
            .send(Method::GET, &url, &[], || Some(http::empty()))
            .await?;
        if !response.status().is_success() {
            return Err(registry_error("GET", &url, response).await);
        }
        Ok(LoginStatus {
            status: "Login Succeeded".to_owned(),
            identity_token: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_of_a_reference() {
        use std::collections::HashMap;
        let auth = |user: &str| AuthConfig {
            username: user.to_owned(),
            ..AuthConfig::default()
        };
        let configs: HashMap<String, AuthConfig> = [
            ("127.0.0.1:5000".to_owned(), auth("local")),
            ("https://index.docker.io/v1/".to_owned(), auth("hub")),
            ("http://reg.example:8080".to_owned(), auth("schemed")),
        ]
        .into();
        let user = |r: &str| auth_for_reference(&configs, r).username;
        assert_eq!(user("127.0.0.1:5000/team/app:1"), "local");
        assert_eq!(user("debian:bookworm"), "hub");
        assert_eq!(user("docker.io/library/debian"), "hub");
        assert_eq!(user("reg.example:8080/x"), "schemed");
        assert_eq!(user("127.0.0.1:5001/team/app"), "");
        assert_eq!(user("Not A Reference"), "");
    }

    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(login_registry(""), DOCKER_HUB);
        assert_eq!(login_registry("https://index.docker.io/v1/"), DOCKER_HUB);
        assert_eq!(login_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            login_registry("http://Reg.Example:5000/v2/"),
            "reg.example:5000"
        );
        assert_eq!(config_key(DOCKER_HUB), "https://index.docker.io/v1/");
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
