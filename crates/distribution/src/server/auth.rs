//! Who may do what: users from an Apache htpasswd file (bcrypt entries), HTTP basic auth,
//! and bearer tokens from the registry's own token endpoint (`/token`).
//!
//! A client without credentials gets `401` and a `WWW-Authenticate: Bearer realm=…/token,
//! service=…,scope=…` challenge; it fetches a token from the realm with basic credentials
//! (or none, for anonymous pulls when `--anonymous-pull` allows them), and sends it on.
//! Tokens are JWTs signed with HMAC-SHA256 by the key in the store (`token.key`); each
//! carries its subject, expiry and the scopes granted, and every request checks signature,
//! audience, expiry and that a granted scope covers what the request needs. Users of the
//! htpasswd file may pull, push and delete everywhere; anonymous clients may only pull (and
//! list the catalog and search), and only with `--anonymous-pull`.
//!
//! bcrypt is slow by design, so a verified user/password pair is remembered (by its sha256)
//! for a few minutes; failed attempts are counted per client address, and past
//! [`MAX_FAILURES`] within [`FAILURE_WINDOW`] the client gets `429 TOOMANYREQUESTS`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::{RegistryError, StartError};
use crate::protocol::auth::{Challenge, Scope, TokenResponse, parse_basic};

/// Failed credential checks one client address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failed attempts are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a verified password is remembered.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// Entries kept in the verified and failure tables before they are pruned.
const TABLE_LIMIT: usize = 4096;

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Any valid identity (the `/v2/` ping: a login check).
    Authenticated,
    /// `registry:catalog:*` (also search).
    Catalog,
    /// An action on a repository.
    Repository {
        /// The repository.
        name: String,
        /// `pull`, `push` or `delete`.
        action: &'static str,
    },
}

impl Access {
    fn scope(&self) -> Option<String> {
        match self {
            Self::Authenticated => None,
            Self::Catalog => Some("registry:catalog:*".to_owned()),
            Self::Repository { name, action } => Some(if *action == "pull" {
                format!("repository:{name}:pull")
            } else {
                format!("repository:{name}:pull,{action}")
            }),
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    Anonymous,
    User(String),
}

/// A scope in a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GrantedAccess {
    #[serde(rename = "type")]
    resource_type: String,
    name: String,
    actions: Vec<String>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<GrantedAccess>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// The authenticator of a registry with `--htpasswd`.
#[derive(Debug)]
pub struct Auth {
    users: HashMap<String, String>,
    anonymous_pull: bool,
    service: String,
    key: [u8; 32],
    token_ttl: Duration,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// How an [`Auth`] is set up.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// Allow pulls without credentials.
    pub anonymous_pull: bool,
    /// The service name of challenges and tokens.
    pub service: String,
    /// Token lifetime.
    pub token_ttl: Duration,
}

impl Auth {
    /// Reads the htpasswd file: `user:hash` lines, bcrypt hashes only (`$2y$`, `$2a$`,
    /// `$2b$`), `#` comments and blank lines ignored.
    pub fn load(htpasswd: &Path, key: [u8; 32], options: AuthOptions) -> Result<Self, StartError> {
        let text =
            std::fs::read_to_string(htpasswd).map_err(|source| StartError::HtpasswdRead {
                path: htpasswd.to_owned(),
                source,
            })?;
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry_error = |reason| StartError::HtpasswdEntry {
                path: htpasswd.to_owned(),
                line: index + 1,
                reason,
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| entry_error("not user:hash"))?;
            if user.is_empty() {
                return Err(entry_error("empty user name"));
            }
            if !["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
                return Err(entry_error(
                    "only bcrypt entries are supported (htpasswd -B)",
                ));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self {
            users,
            anonymous_pull: options.anonymous_pull,
            service: options.service,
            key,
            token_ttl: options.token_ttl,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The challenge sent to a client that must authenticate for `access`.
    fn challenge(&self, realm: &str, access: &[Access], error: Option<&str>) -> String {
        Challenge {
            realm: realm.to_owned(),
            service: self.service.clone(),
            scope: access.iter().find_map(Access::scope),
            error: error.map(str::to_owned),
        }
        .to_string()
    }

    /// Checks that the request (its `Authorization` header) may do everything in `access`.
    /// `realm` is the token endpoint's URL, for the challenge.
    pub async fn authorize(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
        realm: &str,
        access: &[Access],
    ) -> Result<(), RegistryError> {
        let unauthorized = |error: Option<&str>| RegistryError::Unauthorized {
            challenge: self.challenge(realm, access, error),
        };
        match authorization {
            Some(header)
                if header
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("bearer ") =>
            {
                let token = header.trim_start()[7..].trim();
                let Some(claims) = self.verify_token(token) else {
                    return Err(unauthorized(Some("invalid_token")));
                };
                let covered = access.iter().all(|need| match need {
                    Access::Authenticated => true,
                    Access::Catalog => claims.access.iter().any(|g| {
                        g.resource_type == "registry"
                            && g.name == "catalog"
                            && !g.actions.is_empty()
                    }),
                    Access::Repository { name, action } => claims.access.iter().any(|g| {
                        g.resource_type == "repository"
                            && g.name == *name
                            && g.actions.iter().any(|a| a == action || a == "*")
                    }),
                });
                if covered {
                    Ok(())
                } else {
                    Err(RegistryError::Denied {
                        challenge: Some(self.challenge(realm, access, Some("insufficient_scope"))),
                    })
                }
            }
            Some(header) => match self.identify(Some(header), peer).await? {
                Identity::User(_) => Ok(()),
                Identity::Anonymous => Err(unauthorized(None)),
            },
            None => {
                let anonymous_ok = self.anonymous_pull
                    && !access.is_empty()
                    && access.iter().all(|a| match a {
                        Access::Authenticated => false,
                        Access::Catalog => true,
                        Access::Repository { action, .. } => *action == "pull",
                    });
                if anonymous_ok {
                    Ok(())
                } else {
                    Err(unauthorized(None))
                }
            }
        }
    }

    /// Answers the token endpoint: verifies basic credentials (none: anonymous) and issues
    /// a token for what the identity may have of the scopes asked for.
    pub async fn issue_token(
        &self,
        authorization: Option<&str>,
        credentials: Option<(String, String)>,
        peer: Option<IpAddr>,
        scopes: &[String],
    ) -> Result<TokenResponse, RegistryError> {
        let identity = match credentials {
            Some((user, password)) => self.check_password(&user, &password, peer).await?,
            None => self.identify(authorization, peer).await?,
        };
        let mut access: Vec<GrantedAccess> = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split(' ')) {
            let Some(scope) = Scope::parse(scope) else {
                continue;
            };
            let actions: Vec<String> = scope
                .actions
                .iter()
                .filter(|action| self.may(&identity, &scope.resource_type, action))
                .cloned()
                .collect();
            if !actions.is_empty() {
                access.push(GrantedAccess {
                    resource_type: scope.resource_type,
                    name: scope.name,
                    actions,
                });
            }
        }
        let now = unix_now();
        let claims = Claims {
            iss: self.service.clone(),
            sub: match &identity {
                Identity::User(user) => user.clone(),
                Identity::Anonymous => String::new(),
            },
            aud: self.service.clone(),
            exp: now + self.token_ttl.as_secs(),
            nbf: now.saturating_sub(5),
            iat: now,
            jti: hex::encode(rand::random::<[u8; 12]>()),
            access,
        };
        let token = self.sign(&claims);
        Ok(TokenResponse {
            token: token.clone(),
            access_token: Some(token),
            expires_in: Some(self.token_ttl.as_secs()),
            issued_at: Some(
                chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        })
    }

    fn may(&self, identity: &Identity, resource_type: &str, action: &str) -> bool {
        match identity {
            Identity::User(_) => matches!(
                (resource_type, action),
                ("repository", "pull" | "push" | "delete" | "*") | ("registry", "*" | "search")
            ),
            Identity::Anonymous => {
                self.anonymous_pull
                    && matches!(
                        (resource_type, action),
                        ("repository", "pull") | ("registry", "*" | "search")
                    )
            }
        }
    }

    /// The identity of basic credentials (none: anonymous; wrong ones: an error).
    async fn identify(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Identity, RegistryError> {
        let Some(header) = authorization else {
            return Ok(Identity::Anonymous);
        };
        let Some((user, password)) = parse_basic(header) else {
            self.record_failure(peer)?;
            return Err(RegistryError::Unauthorized {
                challenge: self.basic_challenge(),
            });
        };
        self.check_password(&user, &password, peer).await
    }

    fn basic_challenge(&self) -> String {
        format!("Basic realm=\"{}\"", self.service)
    }

    async fn check_password(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Identity, RegistryError> {
        self.check_not_blocked(peer)?;
        let fingerprint: [u8; 32] = {
            let mut hasher = Sha256::new();
            hasher.update(user.as_bytes());
            hasher.update([0]);
            hasher.update(password.as_bytes());
            hasher.update(self.key);
            hasher.finalize().into()
        };
        let remembered = self
            .verified
            .lock()
            .expect("auth table lock")
            .get(&fingerprint)
            .is_some_and(|until| *until > Instant::now());
        let ok = remembered || {
            let hash = self.users.get(user).cloned();
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || {
                hash.is_some_and(|hash| bcrypt::verify(password, &hash).unwrap_or(false))
            })
            .await
            .map_err(|_| RegistryError::Internal {
                what: "password check",
            })?
        };
        if !ok {
            self.record_failure(peer)?;
            return Err(RegistryError::Unauthorized {
                challenge: self.basic_challenge(),
            });
        }
        if !remembered {
            let mut verified = self.verified.lock().expect("auth table lock");
            if verified.len() >= TABLE_LIMIT {
                let now = Instant::now();
                verified.retain(|_, until| *until > now);
                if verified.len() >= TABLE_LIMIT {
                    verified.clear();
                }
            }
            verified.insert(fingerprint, Instant::now() + VERIFIED_TTL);
        }
        Ok(Identity::User(user.to_owned()))
    }

    fn check_not_blocked(&self, peer: Option<IpAddr>) -> Result<(), RegistryError> {
        let Some(peer) = peer else { return Ok(()) };
        let failures = self.failures.lock().expect("auth table lock");
        match failures.get(&peer) {
            Some(f) if f.count >= MAX_FAILURES && f.since.elapsed() < FAILURE_WINDOW => {
                Err(RegistryError::TooManyRequests {
                    retry_after: (FAILURE_WINDOW - f.since.elapsed()).as_secs().max(1),
                })
            }
            _ => Ok(()),
        }
    }

    fn record_failure(&self, peer: Option<IpAddr>) -> Result<(), RegistryError> {
        let Some(peer) = peer else { return Ok(()) };
        let mut failures = self.failures.lock().expect("auth table lock");
        if failures.len() >= TABLE_LIMIT {
            failures.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(peer).or_insert(Failures {
            count: 0,
            since: Instant::now(),
        });
        if entry.since.elapsed() >= FAILURE_WINDOW {
            *entry = Failures {
                count: 0,
                since: Instant::now(),
            };
        }
        entry.count += 1;
        Ok(())
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key size")
    }

    fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signed = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    fn verify_token(&self, token: &str) -> Option<Claims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return None;
        }
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let now = unix_now();
        (claims.aud == self.service && claims.exp > now && claims.nbf <= now).then_some(claims)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(anonymous_pull: bool) -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).expect("hash");
        std::fs::write(&path, format!("# users\n\nalice:{hash}\n")).expect("write");
        let auth = Auth::load(
            &path,
            [7; 32],
            AuthOptions {
                anonymous_pull,
                service: "test-registry".into(),
                token_ttl: Duration::from_secs(60),
            },
        )
        .expect("load");
        (dir, auth)
    }

    fn pull(name: &str) -> Access {
        Access::Repository {
            name: name.into(),
            action: "pull",
        }
    }

    fn push(name: &str) -> Access {
        Access::Repository {
            name: name.into(),
            action: "push",
        }
    }

    #[test]
    fn refuses_non_bcrypt_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "bob:$apr1$x$y\n").expect("write");
        let options = AuthOptions {
            anonymous_pull: false,
            service: "s".into(),
            token_ttl: Duration::from_secs(1),
        };
        let err = Auth::load(&path, [0; 32], options.clone()).expect_err("md5");
        assert!(err.to_string().contains("line 1"), "{err}");
        std::fs::write(&path, "nocolon\n").expect("write");
        assert!(Auth::load(&path, [0; 32], options).is_err());
    }

    #[tokio::test]
    async fn basic_and_bearer() {
        let (_dir, auth) = auth(false);
        let realm = "http://r/token";
        let peer = Some(IpAddr::from([127, 0, 0, 2]));
        let good = crate::protocol::auth::basic_authorization("alice", "secret");
        let bad = crate::protocol::auth::basic_authorization("alice", "wrong");
        // No credentials: a challenge naming the scope.
        let err = auth
            .authorize(None, peer, realm, &[pull("a/b")])
            .await
            .expect_err("anonymous");
        let challenge = err.challenge().expect("challenge").to_owned();
        assert!(
            challenge.contains(r#"scope="repository:a/b:pull""#),
            "{challenge}"
        );
        assert!(challenge.starts_with(r#"Bearer realm="http://r/token",service="test-registry""#));
        auth.authorize(Some(&good), peer, realm, &[push("a/b")])
            .await
            .expect("basic");
        assert!(matches!(
            auth.authorize(Some(&bad), peer, realm, &[pull("a/b")])
                .await,
            Err(RegistryError::Unauthorized { .. })
        ));
        // A token for pull on a/b covers exactly that.
        let token = auth
            .issue_token(
                Some(&good),
                None,
                peer,
                &[
                    "repository:a/b:pull".into(),
                    "repository:c:pull,push".into(),
                ],
            )
            .await
            .expect("token");
        let bearer = format!("Bearer {}", token.token);
        auth.authorize(Some(&bearer), peer, realm, &[pull("a/b")])
            .await
            .expect("covered");
        auth.authorize(Some(&bearer), peer, realm, &[push("c"), pull("c")])
            .await
            .expect("covered");
        let err = auth
            .authorize(Some(&bearer), peer, realm, &[push("a/b")])
            .await
            .expect_err("not covered");
        assert!(matches!(err, RegistryError::Denied { .. }));
        assert_eq!(err.http_status(), 401);
        assert!(
            err.challenge()
                .is_some_and(|c| c.contains("insufficient_scope"))
        );
        auth.authorize(Some(&bearer), peer, realm, &[Access::Authenticated])
            .await
            .expect("any token logs in");
        // A tampered or foreign token is refused.
        let mut forged = token.token.clone();
        forged.push('x');
        assert!(
            auth.authorize(
                Some(&format!("Bearer {forged}")),
                peer,
                realm,
                &[pull("a/b")]
            )
            .await
            .is_err()
        );
        let (_dir2, other) = {
            let (dir, mut other) = self::auth(false);
            other.key = [8; 32];
            (dir, other)
        };
        assert!(
            other
                .authorize(Some(&bearer), peer, realm, &[pull("a/b")])
                .await
                .is_err()
        );
        // An anonymous token carries nothing without --anonymous-pull.
        let anonymous = auth
            .issue_token(None, None, peer, &["repository:a/b:pull".into()])
            .await
            .expect("anonymous token");
        assert!(
            auth.authorize(
                Some(&format!("Bearer {}", anonymous.token)),
                peer,
                realm,
                &[pull("a/b")]
            )
            .await
            .is_err()
        );
        // Wrong credentials at the token endpoint are refused.
        assert!(auth.issue_token(Some(&bad), None, peer, &[]).await.is_err());
    }

    #[tokio::test]
    async fn anonymous_pull_only() {
        let (_dir, auth) = auth(true);
        let realm = "http://r/token";
        auth.authorize(None, None, realm, &[pull("x")])
            .await
            .expect("anonymous pull");
        auth.authorize(None, None, realm, &[Access::Catalog])
            .await
            .expect("anonymous catalog");
        assert!(
            auth.authorize(None, None, realm, &[push("x")])
                .await
                .is_err()
        );
        // The ping still challenges, so `docker login` checks the password.
        assert!(
            auth.authorize(None, None, realm, &[Access::Authenticated])
                .await
                .is_err()
        );
        let token = auth
            .issue_token(None, None, None, &["repository:x:pull,push".into()])
            .await
            .expect("token");
        let bearer = format!("Bearer {}", token.token);
        auth.authorize(Some(&bearer), None, realm, &[pull("x")])
            .await
            .expect("pull granted");
        assert!(
            auth.authorize(Some(&bearer), None, realm, &[push("x")])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn too_many_failures() {
        let (_dir, auth) = auth(false);
        let peer = Some(IpAddr::from([127, 0, 0, 9]));
        let bad = crate::protocol::auth::basic_authorization("alice", "nope");
        let good = crate::protocol::auth::basic_authorization("alice", "secret");
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                auth.issue_token(Some(&bad), None, peer, &[]).await,
                Err(RegistryError::Unauthorized { .. })
            ));
        }
        assert!(matches!(
            auth.issue_token(Some(&good), None, peer, &[]).await,
            Err(RegistryError::TooManyRequests { .. })
        ));
        // Another client is not affected.
        auth.issue_token(Some(&good), None, Some(IpAddr::from([127, 0, 0, 10])), &[])
            .await
            .expect("other client");
    }
}
