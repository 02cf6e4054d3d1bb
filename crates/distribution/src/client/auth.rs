//! Credentials as Docker clients send them, and the bearer tokens berth obtains with them.
//!
//! The docker CLI (and berth's) sends the credentials of the registry an operation talks to
//! in the `X-Registry-Auth` header: base64url of Docker's `AuthConfig` JSON (`e30=` for `{}`).
//! `POST /auth` carries the same JSON as its body. A registry that answers `401` with a
//! `Bearer` challenge gets a token from its realm (with the credentials as basic auth, or an
//! identity token as an OAuth2 refresh token), for the scopes the operation needs; tokens are
//! cached until shortly before they expire, so one pull asks once, whatever its layer count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// Docker's `AuthConfig` (`api/types/registry/authconfig.go`). A `null` field reads as empty, as
/// Go's decoder leaves it (bollard sends its unset fields as `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub username: String,
    /// Password.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub password: String,
    /// `base64(username:password)`, as `config.json` stores it.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth: String,
    /// Unused, kept for old clients.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub email: String,
    /// The registry (`127.0.0.1:5000`, `https://index.docker.io/v1/`).
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub serveraddress: String,
    /// An OAuth2 refresh token (from a login that returned one).
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub registrytoken: String,
}

/// A string that may be `null` (read as empty).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Why an `X-Registry-Auth` (or `X-Registry-Config`) header was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid {header} header: {reason}")]
pub struct AuthHeaderError {
    header: &'static str,
    reason: String,
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` value: base64url as the docker CLI writes it (standard
    /// base64 and missing padding accepted too); an empty header is no credentials.
    pub fn from_header(value: &str) -> Result<Self, AuthHeaderError> {
        decode_header("X-Registry-Auth", value)
    }

    /// Decodes an `X-Registry-Config` value (`POST /build`): base64url JSON of a map from
    /// registry to auth config, as the docker CLI sends every credential it has; an empty
    /// header is none.
    pub fn map_from_header(value: &str) -> Result<HashMap<String, Self>, AuthHeaderError> {
        decode_header("X-Registry-Config", value)
    }

    /// The header value for these credentials (base64url JSON, as the docker CLI sends it).
    pub fn to_header(&self) -> String {
        URL_SAFE.encode(serde_json::to_vec(self).expect("auth configs always serialize"))
    }

    /// What to authenticate with.
    pub fn credentials(&self) -> Credentials {
        if !self.registrytoken.is_empty() {
            return Credentials::Token(self.registrytoken.clone());
        }
        let (mut user, mut password) = (self.username.clone(), self.password.clone());
        if user.is_empty()
            && let Some((u, p)) = STANDARD
                .decode(self.auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        {
            (user, password) = (u, p);
        }
        if !self.identitytoken.is_empty() {
            return Credentials::Identity {
                user,
                token: self.identitytoken.clone(),
            };
        }
        if user.is_empty() && password.is_empty() {
            Credentials::Anonymous
        } else {
            Credentials::Basic { user, password }
        }
    }
}

/// A credentials header's JSON (base64url as the docker CLI writes it; standard base64 and
/// missing padding accepted too); an empty header is the empty value.
fn decode_header<T: serde::de::DeserializeOwned + Default>(
    header: &'static str,
    value: &str,
) -> Result<T, AuthHeaderError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(T::default());
    }
    let bytes = [&URL_SAFE, &URL_SAFE_NO_PAD, &STANDARD, &STANDARD_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .ok_or_else(|| AuthHeaderError {
            header,
            reason: "not base64".to_owned(),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| AuthHeaderError {
        header,
        reason: e.to_string(),
    })
}

/// What a request authenticates with.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Nothing (anonymous tokens where the registry gives them).
    #[default]
    Anonymous,
    /// A user name and password.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token.
    Identity {
        /// User, when known.
        user: String,
        /// The token.
        token: String,
    },
    /// A bearer token given by the client.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { user, .. } => write!(f, "Basic({user})"),
            Self::Identity { user, .. } => write!(f, "Identity({user})"),
            Self::Token(_) => f.write_str("Token"),
        }
    }
}

impl Credentials {
    /// Who these are, for cache keys (no secret in it: a different password is told apart
    /// by a hash of it).
    pub(crate) fn identity(&self) -> String {
        use sha2::Digest as _;
        let secret = |s: &str| hex::encode(&sha2::Sha256::digest(s.as_bytes())[..8]);
        match self {
            Self::Anonymous => String::new(),
            Self::Basic { user, password } => format!("basic:{user}:{}", secret(password)),
            Self::Identity { user, token } => format!("identity:{user}:{}", secret(token)),
            Self::Token(token) => format!("token:{}", secret(token)),
        }
    }
}

/// A cached token.
#[derive(Debug, Clone)]
struct Cached {
    token: String,
    until: Instant,
}

/// Bearer tokens by realm, service, scopes and credentials.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, Cached>>,
}

/// Tokens are given up this long before their stated expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime a token without `expires_in` has (the token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

impl TokenCache {
    pub(crate) fn key(realm: &str, service: &str, scopes: &[String], who: &str) -> String {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        format!("{realm}\n{service}\n{}\n{who}", scopes.join(" "))
    }

    /// A token still valid for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(key)
            .filter(|cached| cached.until > Instant::now())
            .map(|cached| cached.token.clone())
    }

    /// Keeps a token valid for `lifetime` (seconds, from the token answer).
    pub(crate) fn put(&self, key: String, token: String, lifetime: Option<u64>) {
        let lifetime = lifetime
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        tokens.retain(|_, cached| cached.until > now);
        tokens.insert(key, Cached { token, until });
    }

    /// Forgets a token the registry refused.
    pub(crate) fn forget(&self, key: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The token endpoint's answer, with the OAuth2 fields berth reads.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenAnswer {
    #[serde(default)]
    pub(crate) token: String,
    #[serde(default)]
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

impl TokenAnswer {
    pub(crate) fn bearer(&self) -> Option<&str> {
        [&self.token, &self.access_token]
            .into_iter()
            .find(|t| !t.is_empty())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bollard sends every field of its `DockerCredentials`, the unset ones as `null`; Go's
    /// decoder (dockerd) leaves a string empty for `null`, and so must we.
    #[test]
    fn null_fields_as_bollard_sends_them() {
        let json = r#"{"username":"bollard","password":null,"auth":null,"email":null,"serveraddress":null,"identitytoken":null,"registrytoken":null}"#;
        let config = AuthConfig::from_header(&URL_SAFE.encode(json)).expect("nulls");
        assert_eq!(
            config,
            AuthConfig {
                username: "bollard".into(),
                ..AuthConfig::default()
            }
        );
        let nested = format!(r#"{{"127.0.0.1:5000":{json}}}"#);
        let map = AuthConfig::map_from_header(&URL_SAFE.encode(nested)).expect("map of nulls");
        assert_eq!(map["127.0.0.1:5000"].username, "bollard");
    }

    #[test]
    fn headers_as_the_docker_cli_sends_them() {
        assert_eq!(
            AuthConfig::from_header("e30=").expect("empty"),
            AuthConfig::default()
        );
        assert_eq!(
            AuthConfig::from_header("").expect("none").credentials(),
            Credentials::Anonymous
        );
        let config = AuthConfig {
            username: "alice".into(),
            password: "s3cr?t>>".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..AuthConfig::default()
        };
        let header = config.to_header();
        assert_eq!(
            AuthConfig::from_header(&header).expect("round trip"),
            config
        );
        let unpadded = header.trim_end_matches('=');
        assert_eq!(
            AuthConfig::from_header(unpadded).expect("no padding"),
            config
        );
        let standard = STANDARD.encode(serde_json::to_vec(&config).expect("json"));
        assert_eq!(
            AuthConfig::from_header(&standard).expect("standard"),
            config
        );
        assert!(AuthConfig::from_header("!!!").is_err());
        assert_eq!(
            config.credentials(),
            Credentials::Basic {
                user: "alice".into(),
                password: "s3cr?t>>".into()
            }
        );
        let stored = AuthConfig {
            auth: STANDARD.encode("bob:pw:with:colons"),
            ..AuthConfig::default()
        };
        assert_eq!(
            stored.credentials(),
            Credentials::Basic {
                user: "bob".into(),
                password: "pw:with:colons".into()
            }
        );
        assert!(!format!("{:?}", config.credentials()).contains("s3cr"));
    }

    #[test]
    fn tokens_expire() {
        let cache = TokenCache::default();
        let key = TokenCache::key("r", "s", &["b".into(), "a".into()], "");
        assert_eq!(
            key,
            TokenCache::key("r", "s", &["a".into(), "b".into()], "")
        );
        cache.put(key.clone(), "t".into(), Some(300));
        assert_eq!(cache.get(&key).as_deref(), Some("t"));
        cache.put(key.clone(), "short".into(), Some(5));
        assert_eq!(cache.get(&key), None, "shorter than the margin");
        cache.put(key.clone(), "t".into(), None);
        cache.forget(&key);
        assert_eq!(cache.get(&key), None);
    }
}
