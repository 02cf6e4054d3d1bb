//! `RUN --mount=type=…,target=…` as BuildKit reads it.
use crate::shell::{Env, Lex};
use crate::text::{go_quote, suggest};

/// What a `RUN --mount` mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// A directory of the context or of another stage/image (read-only unless `rw`).
    Bind,
    /// A cache directory kept between builds (`id`, `sharing`).
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file given to the build.
    Secret,
    /// The client's SSH agent socket.
    Ssh,
}

impl MountType {
    /// The name as written in the Dockerfile.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }

    fn parse(value: &str) -> Result<MountType, String> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => {
                return Err(suggest(
                    format!("unsupported mount type {}", go_quote(value)),
                    value,
                    &["bind", "cache", "tmpfs", "secret", "ssh"],
                    true,
                ));
            }
        })
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Used by several writers at once (the default).
    Shared,
    /// A writer gets its own copy when the cache is in use.
    Private,
    /// A writer waits until the cache is free.
    Locked,
}

/// One `--mount` of a `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// `type=` (default `bind`).
    pub kind: MountType,
    /// `from=`: the stage or image the source is taken from (the context when `None`).
    pub from: Option<String>,
    /// `source=`/`src=`: the path in `from`.
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`: where it is mounted.
    pub target: Option<String>,
    /// `ro`/`readonly` or `rw`/`readwrite`; bind, secret and ssh mounts default to read-only.
    pub readonly: bool,
    /// `id=`: the cache, secret or ssh id.
    pub id: Option<String>,
    /// `sharing=` for cache mounts.
    pub sharing: Option<CacheSharing>,
    /// `required` for secret and ssh mounts.
    pub required: bool,
    /// `mode=` (octal) for cache, secret and ssh mounts.
    pub mode: Option<u32>,
    /// `uid=` for cache, secret and ssh mounts.
    pub uid: Option<u32>,
    /// `gid=` for cache, secret and ssh mounts.
    pub gid: Option<u32>,
    /// The specification as written (its values are expanded by [`RunMount::expand`]).
    pub spec: String,
}

const ALL_KEYS: [&str; 16] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "ro",
    "rw",
    "readwrite",
];

impl RunMount {
    /// Parses a `--mount` value. Values holding a `$` are checked once expanded.
    pub fn parse(spec: &str) -> Result<RunMount, String> {
        parse_mount(spec, None)
    }

    /// The mount with its values expanded (as BuildKit expands them, with the stage's
    /// variables) and checked.
    pub fn expand<E: Env + ?Sized>(&self, lex: &Lex, env: &E) -> Result<RunMount, String> {
        let expand = |v: &str| lex.process_word(v, env).map_err(|e| e.to_string());
        parse_mount(&self.spec, Some(&expand))
    }
}

type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

fn parse_u32(value: &str, radix: u32, what: &str) -> Result<u32, String> {
    let invalid = || format!("invalid value {value} for {what}");
    if value.is_empty() || !value.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid());
    }
    u32::from_str_radix(value, radix).map_err(|_| invalid())
}

fn parse_mount(spec: &str, expander: Option<Expander<'_>>) -> Result<RunMount, String> {
    let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = RunMount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: false,
        id: None,
        sharing: None,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        spec: spec.to_string(),
    };
    let mut ro_auto = true;
    // A value left for later (it holds a variable): the checks across keys wait too.
    let mut deferred = false;
    let mut type_deferred = false;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                    continue;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                    continue;
                }
                "required"
                    if type_deferred || matches!(m.kind, MountType::Secret | MountType::Ssh) =>
                {
                    m.required = true;
                    continue;
                }
                "required" => {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
        };
        if !ALL_KEYS.contains(&key.as_str()) && key != "destination" {
            return Err(suggest(
                format!("unexpected key '{key}' in '{field}'"),
                &key,
                &ALL_KEYS,
                true,
            ));
        }
        let value = match expander {
            Some(expand) => expand(value)?,
            None if key == "from" && has_variable(value) => {
                return Err(format!(
                    "'{key}' doesn't support variable expansion, define alias stage instead"
                ));
            }
            None if value.contains('$') => {
                deferred = true;
                type_deferred |= key == "type";
                continue;
            }
            None => value.to_string(),
        };
        match key.as_str() {
            "type" => m.kind = MountType::parse(&value)?,
            "from" => m.from = Some(value).filter(|v| !v.is_empty()),
            "source" | "src" => m.source = Some(value).filter(|v| !v.is_empty()),
            "target" | "dst" | "destination" => m.target = Some(value).filter(|v| !v.is_empty()),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if !type_deferred && !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "id" => m.id = Some(value).filter(|v| !v.is_empty()),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(format!("unsupported sharing value {}", go_quote(&value))),
                });
            }
            "mode" => m.mode = Some(parse_u32(&value, 8, "mode")?),
            "uid" => m.uid = Some(parse_u32(&value, 10, "uid")?),
            "gid" => m.gid = Some(parse_u32(&value, 10, "gid")?),
            _ => unreachable!("keys are checked above"),
        }
    }
    if deferred {
        return Ok(m);
    }
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    for (set, what) in [
        (m.mode.is_some(), "mode"),
        (m.uid.is_some(), "uid"),
        (m.gid.is_some(), "gid"),
    ] {
        if set && !file_info_allowed {
            return Err(format!(
                "{what} not allowed for {} type mounts",
                go_quote(m.kind.as_str())
            ));
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        ));
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    Ok(m)
}

/// `$` followed by anything (Go's `\$.`).
fn has_variable(value: &str) -> bool {
    value
        .find('$')
        .is_some_and(|i| value[i + 1..].chars().next().is_some_and(|c| c != '\n'))
}

/// One CSV record (Go's `encoding/csv` defaults): `,`-separated fields, a field may be
/// `"quoted"` with `""` for a quote inside.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Err("EOF".into());
    }
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    let mut column = 0;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            column += 1;
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            column + 1
                        ));
                    }
                    Some('"') => {
                        column += 1;
                        match chars.peek() {
                            Some('"') => {
                                chars.next();
                                column += 1;
                                field.push('"');
                            }
                            Some(',') | None => break,
                            Some(_) => {
                                return Err(format!(
                                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                                    column + 1
                                ));
                            }
                        }
                    }
                    Some(c) => {
                        column += 1;
                        field.push(c);
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                chars.next();
                column += 1;
                if c == '"' {
                    return Err(format!(
                        "parse error on line 1, column {column}: bare \" in non-quoted-field"
                    ));
                }
                field.push(c);
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => column += 1,
            _ => return Ok(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_with_docker_defaults() {
        let m = RunMount::parse("type=cache,target=/root/.cache,id=pip,sharing=locked").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.id.as_deref(), Some("pip"));
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert!(!m.readonly, "cache mounts are writable");

        let m = RunMount::parse("target=/src,from=builder,source=/out").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly, "bind mounts are read-only by default");
        assert_eq!(m.from.as_deref(), Some("builder"));
        let m = RunMount::parse("type=bind,target=/src,rw").unwrap();
        assert!(!m.readonly);

        let m = RunMount::parse("type=tmpfs,dst=/tmp").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Tmpfs, false));

        let m = RunMount::parse("type=secret,id=tok,required,mode=0400,uid=1000").unwrap();
        assert!(m.required && m.readonly);
        assert_eq!((m.mode, m.uid), (Some(0o400), Some(1000)));
        let m = RunMount::parse("type=ssh,required=true").unwrap();
        assert!(m.required);
        let m = RunMount::parse("\"type=cache\",\"target=/a,b\"").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn bad_mounts_are_refused_as_buildkit_words_it() {
        let cases = [
            ("type=nfs,target=/x", "unsupported mount type \"nfs\""),
            (
                "type=cach,target=/x",
                "unsupported mount type \"cach\" (did you mean cache?)",
            ),
            ("target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
            (
                "target=/x,sourc=a",
                "unexpected key 'sourc' in 'sourc=a' (did you mean source?)",
            ),
            (
                "target=/x,junk",
                "invalid field 'junk' must be a key=value pair",
            ),
            (
                "target=/x,required",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=cache,target=/x,sharing=sometimes",
                "unsupported sharing value \"sometimes\"",
            ),
            (
                "type=bind,target=/x,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            (
                "type=bind,target=/x,mode=0700",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,target=/x,uid=1",
                "uid not allowed for \"tmpfs\" type mounts",
            ),
            (
                "type=cache,target=/x,mode=999",
                "invalid value 999 for mode",
            ),
            ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
            ("target=/x,ro=maybe", "invalid value for ro: maybe"),
            (
                "type=secret,from=x,id=a",
                "secret mount should not have a from",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=secret,id=a,source=b",
                "both source and id can't be set",
            ),
            (
                "target=/x,from=$STAGE",
                "'from' doesn't support variable expansion, define alias stage instead",
            ),
            ("", "failed to parse csv mounts: EOF"),
        ];
        for (spec, want) in cases {
            assert_eq!(RunMount::parse(spec).unwrap_err(), want, "{spec}");
        }
    }

    #[test]
    fn values_with_variables_are_checked_once_expanded() {
        let m = RunMount::parse("type=$T,target=$DIR,id=${ID:-x}").unwrap();
        let env = vec![
            ("T".to_string(), "cache".to_string()),
            ("DIR".to_string(), "/c".to_string()),
        ];
        let e = m.expand(&Lex::new('\\'), &env).unwrap();
        assert_eq!(e.kind, MountType::Cache);
        assert_eq!(e.target.as_deref(), Some("/c"));
        assert_eq!(e.id.as_deref(), Some("x"));
        let env = vec![("T".to_string(), "nfs".to_string())];
        assert_eq!(
            m.expand(&Lex::new('\\'), &env).unwrap_err(),
            "unsupported mount type \"nfs\""
        );
    }
}
