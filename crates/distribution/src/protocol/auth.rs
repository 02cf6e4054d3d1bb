//! The registry auth conversation: `WWW-Authenticate` challenges, access scopes, basic
//! credentials, and the token endpoint's answer (Docker's token auth specification).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// An access scope: `repository:library/busybox:pull,push`, `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `repository`, `registry`, …
    pub resource_type: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses `type:name:actions` (the name may hold `:`; the type and actions never do).
    pub fn parse(scope: &str) -> Option<Self> {
        let (resource_type, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// `repository:<name>:<actions>`.
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            resource_type: "repository".to_owned(),
            name: name.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

/// A bearer challenge: where to get a token, for which service and scope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// The token endpoint's URL.
    pub realm: String,
    /// The service the token is for.
    pub service: String,
    /// The scope the request needs, if any.
    pub scope: Option<String>,
    /// `insufficient_scope` when a token lacked the scope, or `invalid_token`.
    pub error: Option<String>,
}

impl Challenge {
    /// Reads a `WWW-Authenticate: Bearer k="v",…` header (`None` for another scheme).
    pub fn parse(header: &str) -> Option<Self> {
        let (scheme, params) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut challenge = Self::default();
        for (key, value) in parse_params(params) {
            match key.to_ascii_lowercase().as_str() {
                "realm" => challenge.realm = value,
                "service" => challenge.service = value,
                "scope" => challenge.scope = Some(value),
                "error" => challenge.error = Some(value),
                _ => {}
            }
        }
        Some(challenge)
    }
}

impl fmt::Display for Challenge {
    /// The header value, `Bearer realm="…",service="…"[,scope="…"][,error="…"]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bearer realm=\"{}\",service=\"{}\"",
            quoted(&self.realm),
            quoted(&self.service)
        )?;
        if let Some(scope) = &self.scope {
            write!(f, ",scope=\"{}\"", quoted(scope))?;
        }
        if let Some(error) = &self.error {
            write!(f, ",error=\"{}\"", quoted(error))?;
        }
        Ok(())
    }
}

/// A value inside a quoted-string (`"` and `\` escaped).
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `k="v", k2=v2` pairs (quoted strings may hold commas and escapes).
fn parse_params(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = params.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

/// The token endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    #[serde(default)]
    pub token: String,
    /// The same token, under the OAuth2 name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Seconds the token is valid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// RFC 3339 time of issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
}

/// `Basic <base64(user:password)>`.
pub fn basic_authorization(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The user and password of a `Basic` `Authorization` header value.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let scope = Scope::parse("repository:a/b:pull,push").expect("scope");
        assert_eq!(scope, Scope::repository("a/b", &["pull", "push"]));
        assert_eq!(scope.to_string(), "repository:a/b:pull,push");
        let catalog = Scope::parse("registry:catalog:*").expect("scope");
        assert_eq!(catalog.actions, ["*"]);
        let plugin = Scope::parse("repository(plugin):x:pull").expect("scope");
        assert_eq!(plugin.resource_type, "repository(plugin)");
        assert_eq!(Scope::parse("repository:a").map(|s| s.name), None);
        assert_eq!(Scope::parse(":a:pull"), None);
    }

    #[test]
    fn challenge_round_trip() {
        let challenge = Challenge {
            realm: "http://127.0.0.1:5000/token".into(),
            service: "berth-registry".into(),
            scope: Some("repository:a/b:pull,push".into()),
            error: Some("insufficient_scope".into()),
        };
        let header = challenge.to_string();
        assert_eq!(
            header,
            "Bearer realm=\"http://127.0.0.1:5000/token\",service=\"berth-registry\",\
             scope=\"repository:a/b:pull,push\",error=\"insufficient_scope\""
        );
        assert_eq!(Challenge::parse(&header), Some(challenge));
        let hub = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token", service=registry.docker.io,scope="a\"b""#,
        )
        .expect("bearer");
        assert_eq!(hub.service, "registry.docker.io");
        assert_eq!(hub.scope.as_deref(), Some("a\"b"));
        assert_eq!(Challenge::parse("Basic realm=\"x\""), None);
    }

    #[test]
    fn basic_credentials() {
        let header = basic_authorization("user", "pa:ss");
        assert_eq!(parse_basic(&header), Some(("user".into(), "pa:ss".into())));
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
