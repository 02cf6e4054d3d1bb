//! An instruction's `--flag` words checked against the flags it accepts (BuildKit's `BFlags`).
use crate::text::suggest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    String,
    /// A string flag that may be repeated (`--mount`, `--exclude`).
    Strings,
}

#[derive(Debug)]
struct Flag {
    name: &'static str,
    kind: Kind,
    used: bool,
    values: Vec<String>,
    bool_value: bool,
}

/// The flags one instruction accepts, then their values once [`Flags::parse`] ran.
#[derive(Debug)]
pub(crate) struct Flags {
    flags: Vec<Flag>,
}

impl Flags {
    pub(crate) fn new() -> Flags {
        Flags { flags: Vec::new() }
    }

    fn add(mut self, name: &'static str, kind: Kind) -> Flags {
        self.flags.push(Flag {
            name,
            kind,
            used: false,
            values: Vec::new(),
            bool_value: false,
        });
        self
    }

    pub(crate) fn bool(self, name: &'static str) -> Flags {
        self.add(name, Kind::Bool)
    }

    pub(crate) fn string(self, name: &'static str) -> Flags {
        self.add(name, Kind::String)
    }

    pub(crate) fn strings(self, name: &'static str) -> Flags {
        self.add(name, Kind::Strings)
    }

    /// Checks `args` (`--name[=value]` words) and records their values.
    pub(crate) fn parse(&mut self, args: &[String]) -> Result<(), String> {
        for arg in args {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                return Ok(());
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(flag) = self.flags.iter_mut().find(|f| f.name == name) else {
                let names: Vec<&str> = self.flags.iter().map(|f| f.name).collect();
                return Err(suggest(format!("unknown flag: {name}"), name, &names, true));
            };
            if flag.used && flag.kind != Kind::Strings {
                return Err(format!("duplicate flag specified: {name}"));
            }
            flag.used = true;
            match (flag.kind, value) {
                (Kind::Bool, Some("")) => return Err(format!("missing a value on flag: {name}")),
                (Kind::Bool, None) => flag.bool_value = true,
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => flag.bool_value = true,
                    "false" => flag.bool_value = false,
                    _ => {
                        return Err(format!("expecting boolean value for flag {name}, not: {v}"));
                    }
                },
                (Kind::String | Kind::Strings, None) => {
                    return Err(format!("missing a value on flag: {name}"));
                }
                (Kind::String, Some(v)) => flag.values = vec![v.to_string()],
                (Kind::Strings, Some(v)) => flag.values.push(v.to_string()),
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// A string flag's value; `None` when absent or empty (Docker treats both as unset).
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|f| f.values.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// A string flag's value as given, `None` only when absent.
    pub(crate) fn raw_value(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|f| f.values.last()).cloned()
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        self.get(name).map(|f| f.values.clone()).unwrap_or_default()
    }

    /// A boolean flag (`--link`, `--link=true`, `--link=false`).
    pub(crate) fn is_true(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.bool_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_as_buildkit() {
        let mut f = Flags::new().string("str1").bool("bool1");
        f.parse(&args(&[])).unwrap();
        assert!(!f.is_true("bool1"));
        assert_eq!(f.value("str1"), None);

        let mut f = Flags::new().string("str1");
        assert_eq!(
            f.parse(&args(&["--str1"])).unwrap_err(),
            "missing a value on flag: str1"
        );
        let mut f = Flags::new().string("str1");
        f.parse(&args(&["--str1="])).unwrap();
        assert_eq!(f.raw_value("str1").as_deref(), Some(""));
        let mut f = Flags::new().string("str1").bool("bool1");
        f.parse(&args(&["--bool1", "--str1=BYE"])).unwrap();
        assert!(f.is_true("bool1"));
        assert_eq!(f.value("str1").as_deref(), Some("BYE"));

        for (input, want) in [("--bool1=true", true), ("--bool1=FALSE", false)] {
            let mut f = Flags::new().bool("bool1");
            f.parse(&args(&[input])).unwrap();
            assert_eq!(f.is_true("bool1"), want);
        }
        let mut f = Flags::new().bool("bool1");
        assert_eq!(
            f.parse(&args(&["--bool1=false1"])).unwrap_err(),
            "expecting boolean value for flag bool1, not: false1"
        );
        let mut f = Flags::new().bool("bool1");
        assert_eq!(
            f.parse(&args(&["--bool1="])).unwrap_err(),
            "missing a value on flag: bool1"
        );
        let mut f = Flags::new().bool("bool1");
        assert_eq!(
            f.parse(&args(&["--bool2"])).unwrap_err(),
            "unknown flag: bool2 (did you mean bool1?)"
        );
        let mut f = Flags::new().string("from");
        assert_eq!(
            f.parse(&args(&["--from=a", "--from=b"])).unwrap_err(),
            "duplicate flag specified: from"
        );
        let mut f = Flags::new().strings("mount");
        f.parse(&args(&["--mount=a", "--mount=b"])).unwrap();
        assert_eq!(f.values("mount"), vec!["a", "b"]);
        let mut f = Flags::new();
        assert_eq!(
            f.parse(&args(&["-x"])).unwrap_err(),
            "arg should start with -- : -x"
        );
        let mut f = Flags::new();
        f.parse(&args(&["--", "--whatever"])).unwrap();
    }
}
