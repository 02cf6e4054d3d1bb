//! A Dockerfile as build stages, and what a build with given arguments and target needs.
use std::collections::BTreeMap;
use std::fmt;

use crate::error::DockerfileError;
use crate::instruction::{self, ArgDecl, Command, Instruction, Parsed};
use crate::parser::{self, Directive, Warning};
use crate::shell::{Env, Lex, ShellError};

/// The build arguments Docker accepts without an `ARG` (proxy settings). They reach `RUN` and
/// expansions but stay out of the image's history unless the Dockerfile declares them.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The arguments every build defines in the global scope (usable in `FROM`, and in a stage
/// once declared there with `ARG NAME`).
pub const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// An OS/architecture[/variant] pair (`linux/amd64`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, …
    pub architecture: String,
    /// `v7`, `v6`, … when the architecture has variants.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os[/arch[/variant]]` (or an architecture alone), normalized as containerd
    /// normalizes it (`x86_64` is `amd64`, `aarch64` is `arm64`, `arm` is `arm/v7`).
    pub fn parse(spec: &str) -> Result<Platform, String> {
        let bad =
            || format!("\"{spec}\": unknown operating system or architecture: invalid argument");
        let parts: Vec<&str> = spec.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(bad());
        }
        let host = Platform::host();
        let known_os = |os: &str| {
            matches!(
                os,
                "linux"
                    | "windows"
                    | "darwin"
                    | "freebsd"
                    | "netbsd"
                    | "openbsd"
                    | "solaris"
                    | "illumos"
                    | "android"
                    | "aix"
                    | "plan9"
                    | "js"
                    | "wasip1"
                    | "ios"
            )
        };
        let (os, arch, variant) = match parts.as_slice() {
            [one] => {
                let one = one.to_lowercase();
                if known_os(&one) {
                    (one, host.architecture.clone(), host.variant.clone())
                } else {
                    (host.os.clone(), one, None)
                }
            }
            [os, arch] => (os.to_lowercase(), arch.to_lowercase(), None),
            [os, arch, variant] => (
                os.to_lowercase(),
                arch.to_lowercase(),
                Some(variant.to_lowercase()),
            ),
            _ => return Err(bad()),
        };
        if !known_os(&os) {
            return Err(bad());
        }
        let (architecture, variant) = match (arch.as_str(), variant.as_deref()) {
            ("i386", v) => ("386".to_string(), v.map(str::to_string)),
            ("x86_64" | "x86-64" | "amd64", Some("v1")) | ("x86_64" | "x86-64", None) => {
                ("amd64".to_string(), None)
            }
            ("aarch64" | "arm64", Some("8" | "v8")) | ("aarch64", None) => {
                ("arm64".to_string(), None)
            }
            ("armhf", None) => ("arm".to_string(), Some("v7".to_string())),
            ("armel", None) => ("arm".to_string(), Some("v6".to_string())),
            ("arm", None) => ("arm".to_string(), Some("v7".to_string())),
            ("arm", Some(v)) if !v.starts_with('v') => ("arm".to_string(), Some(format!("v{v}"))),
            (a, v) => {
                if !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(bad());
                }
                (a.to_string(), v.map(str::to_string))
            }
        };
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its position among the stages (what `COPY --from=0` names).
    pub index: usize,
    /// `AS name`, lower case.
    pub name: Option<String>,
    /// The base as written (variables not expanded).
    pub base: String,
    /// `--platform=` as written.
    pub platform: Option<String>,
    /// The `FROM` line's text (for `Step N/M : FROM …`).
    pub original: String,
    /// The `FROM` line.
    pub line: usize,
    /// The instructions after the `FROM`.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The name BuildKit shows for the stage: its own, or `stage-N`.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape token (`\`, or `` ` `` from `# escape=`).
    pub escape: char,
    /// The parser directives at the top of the file.
    pub directives: Vec<Directive>,
    /// The `ARG` instructions before the first `FROM` (the global scope).
    pub meta_args: Vec<Instruction>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// Warnings to print before building (empty continuation lines).
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// Parses a Dockerfile's text. Every instruction is checked (an unknown or malformed one
    /// is refused with Docker's message and its line), none is expanded yet.
    pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
        let ast = parser::parse(text)?;
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for node in ast.nodes {
            let parsed = instruction::parse_node(&node)
                .map_err(|m| DockerfileError::syntax(node.start_line, m))?;
            match parsed {
                Parsed::From(from) => stages.push(Stage {
                    index: stages.len(),
                    name: from.name,
                    base: from.base,
                    platform: from.platform,
                    original: node.original.trim().to_string(),
                    line: node.start_line,
                    instructions: Vec::new(),
                }),
                Parsed::Command(command) => {
                    let line = node.start_line;
                    let inst = instruction::instruction(node, command);
                    match stages.last_mut() {
                        Some(stage) => stage.instructions.push(inst),
                        None if matches!(inst.command, Command::Arg(_)) => meta_args.push(inst),
                        None => {
                            return Err(DockerfileError::syntax(
                                line,
                                "no build stage in current context",
                            ));
                        }
                    }
                }
            }
        }
        if stages.is_empty() {
            return Err(DockerfileError::NoStages);
        }
        Ok(Dockerfile {
            escape: ast.escape,
            directives: ast.directives,
            meta_args,
            stages,
            warnings: ast.warnings,
        })
    }

    /// A lexer with this Dockerfile's escape token.
    pub fn lex(&self) -> Lex {
        Lex::new(self.escape)
    }

    /// The value of a parser directive (`syntax`, `escape`, `check`).
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }

    /// The last stage named `name` (case-insensitive), as BuildKit looks stages up.
    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        let name = name.to_lowercase();
        self.stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// The build arguments given that no `ARG` of the Dockerfile declares (Docker warns about
    /// them: "One or more build-args [...] were not consumed"); proxy arguments are never
    /// reported.
    pub fn unused_build_args(&self, build_args: &BTreeMap<String, String>) -> Vec<String> {
        let declared = |name: &str| {
            self.meta_args
                .iter()
                .chain(self.stages.iter().flat_map(|s| s.instructions.iter()))
                .any(|i| match &i.command {
                    Command::Arg(decls) => decls.iter().any(|d| d.name == name),
                    _ => false,
                })
        };
        build_args
            .keys()
            .filter(|k| !PROXY_ARGS.contains(&k.as_str()) && !declared(k))
            .cloned()
            .collect()
    }

    /// What a build needs: the global arguments resolved, each needed stage's base (image,
    /// earlier stage or `scratch`) and platform expanded, the stages the target depends on
    /// (`FROM <stage>`, `COPY --from`, `RUN --mount=from=`) and nothing else.
    pub fn plan(&self, opts: &BuildOptions) -> Result<BuildPlan, DockerfileError> {
        let lex = self.lex();
        let meta_args = self.resolve_meta_args(&lex, opts)?;
        let meta_env = MetaEnv(&meta_args);

        let mut bases = Vec::with_capacity(self.stages.len());
        let mut platforms = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let base = lex.process_word(&stage.base, &meta_env).map_err(|source| {
                DockerfileError::Expansion {
                    line: stage.line,
                    source,
                }
            })?;
            if base.is_empty() {
                return Err(DockerfileError::Stage {
                    line: stage.line,
                    message: format!("base name ({}) should not be blank", stage.base),
                });
            }
            let platform = match &stage.platform {
                None => None,
                Some(p) => {
                    let value = lex.process_word(p, &meta_env).map_err(|source| {
                        DockerfileError::Expansion {
                            line: stage.line,
                            source,
                        }
                    })?;
                    let platform = Platform::parse(&value).map_err(|e| DockerfileError::Stage {
                        line: stage.line,
                        message: format!("failed to parse platform {value}: {e}"),
                    })?;
                    Some(platform)
                }
            };
            // A base naming an earlier stage is that stage.
            let earlier = self.stages[..stage.index]
                .iter()
                .rev()
                .find(|s| s.name.as_deref() == Some(base.to_lowercase().as_str()));
            bases.push(match earlier {
                Some(s) => Base::Stage(s.index),
                None if base == "scratch" => Base::Scratch,
                None => Base::Image(base),
            });
            platforms.push(platform);
        }

        let target = match &opts.target {
            None => self.stages.len() - 1,
            Some(t) => {
                self.stage_by_name(t)
                    .ok_or_else(|| DockerfileError::TargetNotFound { target: t.clone() })?
                    .index
            }
        };

        // Every stage's dependencies (checked for all stages, as BuildKit does).
        let mut all_deps = Vec::with_capacity(self.stages.len());
        let mut all_images = Vec::with_capacity(self.stages.len());
        for (stage, base) in self.stages.iter().zip(&bases) {
            let mut deps = Vec::new();
            let mut images = Vec::new();
            if let Base::Stage(i) = base {
                deps.push(*i);
            }
            for inst in &stage.instructions {
                let mut froms: Vec<(&str, bool)> = Vec::new();
                match &inst.command {
                    Command::Copy(c) => froms.extend(c.from.as_deref().map(|f| (f, true))),
                    Command::Run(r) => {
                        froms.extend(
                            r.mounts
                                .iter()
                                .filter_map(|m| m.from.as_deref().map(|f| (f, false))),
                        );
                    }
                    _ => {}
                }
                for (from, by_index) in froms {
                    match self.resolve_from(from, by_index, inst.start_line)? {
                        Source::Stage(i) => deps.push(i),
                        Source::Image(name) => images.push(name),
                    }
                }
            }
            deps.sort_unstable();
            deps.dedup();
            let mut unique: Vec<String> = Vec::with_capacity(images.len());
            for image in images {
                if !unique.contains(&image) {
                    unique.push(image);
                }
            }
            let images = unique;
            all_deps.push(deps);
            all_images.push(images);
        }
        self.check_cycles(&all_deps)?;

        // The stages reachable from the target.
        let mut needed = vec![false; self.stages.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !std::mem::replace(&mut needed[i], true) {
                todo.extend(all_deps[i].iter().copied());
            }
        }
        // In an order where every stage comes after its dependencies (lowest index first).
        let mut order = Vec::new();
        let mut placed = vec![false; self.stages.len()];
        while order.len() < needed.iter().filter(|n| **n).count() {
            let next = (0..self.stages.len())
                .find(|&i| needed[i] && !placed[i] && all_deps[i].iter().all(|d| placed[*d]))
                .expect("dependencies are acyclic");
            placed[next] = true;
            order.push(next);
        }
        let stages = order
            .into_iter()
            .map(|i| PlannedStage {
                index: i,
                name: self.stages[i].name.clone(),
                base: bases[i].clone(),
                platform: platforms[i].clone(),
                depends_on: all_deps[i].clone(),
                images: all_images[i].clone(),
            })
            .collect();
        Ok(BuildPlan {
            target,
            stages,
            meta_args,
            build_args: opts.build_args.clone(),
        })
    }

    /// What a `COPY --from` (or, with `by_index` false, a `RUN --mount=from=`) names: a stage
    /// index, a stage name, or else an image.
    pub fn resolve_from(
        &self,
        from: &str,
        by_index: bool,
        line: usize,
    ) -> Result<Source, DockerfileError> {
        if from.contains('$') {
            // Docker does not expand `--from`; an alias stage (`FROM $IMAGE AS x`) does it.
            return Err(DockerfileError::Stage {
                line,
                message: format!("invalid from flag value {from}: invalid reference format"),
            });
        }
        if by_index && let Some(index) = parse_go_int(from) {
            return match usize::try_from(index) {
                Ok(i) if i < self.stages.len() => Ok(Source::Stage(i)),
                _ => Err(DockerfileError::Stage {
                    line,
                    message: format!("invalid stage index {index}"),
                }),
            };
        }
        Ok(match self.stage_by_name(from) {
            Some(stage) => Source::Stage(stage.index),
            None => Source::Image(from.to_string()),
        })
    }

    fn check_cycles(&self, deps: &[Vec<usize>]) -> Result<(), DockerfileError> {
        // 0 = not visited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; deps.len()];
        for start in 0..deps.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some(&(node, next)) = stack.last() {
                if let Some(&dep) = deps[node].get(next) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match state[dep] {
                        0 => {
                            state[dep] = 1;
                            stack.push((dep, 0));
                        }
                        1 => {
                            return Err(DockerfileError::CircularDependency {
                                stage: self.stages[dep].display_name(),
                            });
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// The global arguments: the platform arguments, then each `ARG` before the first `FROM`
    /// (a build argument replaces its default; a default is expanded with the arguments
    /// before it).
    fn resolve_meta_args(
        &self,
        lex: &Lex,
        opts: &BuildOptions,
    ) -> Result<Vec<(String, Option<String>)>, DockerfileError> {
        let target = &opts.target_platform;
        let build = &opts.build_platform;
        let mut args: Vec<(String, Option<String>)> = [
            ("TARGETPLATFORM", target.to_string()),
            ("TARGETOS", target.os.clone()),
            ("TARGETARCH", target.architecture.clone()),
            ("TARGETVARIANT", target.variant.clone().unwrap_or_default()),
            ("BUILDPLATFORM", build.to_string()),
            ("BUILDOS", build.os.clone()),
            ("BUILDARCH", build.architecture.clone()),
            ("BUILDVARIANT", build.variant.clone().unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| {
            let v = opts.build_args.get(k).cloned().unwrap_or(v);
            (k.to_string(), Some(v))
        })
        .collect();
        for inst in &self.meta_args {
            let Command::Arg(decls) = &inst.command else {
                continue;
            };
            for decl in decls {
                let value = match (opts.build_args.get(&decl.name), &decl.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => Some(
                        lex.process_word(default, &MetaEnv(&args))
                            .map_err(|source| DockerfileError::Expansion {
                                line: inst.start_line,
                                source,
                            })?,
                    ),
                    (None, None) => None,
                };
                args.push((decl.name.clone(), value));
            }
        }
        Ok(args)
    }
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The global arguments as variables: a declared one without a value is set and empty.
struct MetaEnv<'a>(&'a [(String, Option<String>)]);

impl Env for MetaEnv<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// What a build is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (the last one when `None`).
    pub target: Option<String>,
    /// The platform built for (`TARGETPLATFORM`).
    pub target_platform: Platform,
    /// The platform the build runs on (`BUILDPLATFORM`).
    pub build_platform: Platform,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Nothing (`FROM scratch`).
    Scratch,
    /// An earlier stage (its index).
    Stage(usize),
    /// An image reference, variables expanded.
    Image(String),
}

/// What a `COPY --from`/`RUN --mount=from=` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A stage (its index).
    Stage(usize),
    /// An image reference.
    Image(String),
}

/// A stage the build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    /// The stage's index in [`Dockerfile::stages`].
    pub index: usize,
    /// Its name.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// `FROM --platform`, expanded and parsed.
    pub platform: Option<Platform>,
    /// The stages that must be built before it (its base stage, `COPY --from`,
    /// `RUN --mount=from=`), sorted.
    pub depends_on: Vec<usize>,
    /// Images it reads from besides its base (`COPY --from=image`, `RUN --mount=from=image`).
    pub images: Vec<String>,
}

/// The stages a build runs and the global arguments it runs them with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The index of the stage whose result is the image.
    pub target: usize,
    /// The stages to build, each after the stages it depends on; stages the target does not
    /// need are absent.
    pub stages: Vec<PlannedStage>,
    /// The global arguments (platform arguments first), for stages that redeclare them.
    pub meta_args: Vec<(String, Option<String>)>,
    /// The build arguments.
    pub build_args: BTreeMap<String, String>,
}

impl BuildPlan {
    /// The planned stage with this index.
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// The stages in waves: every stage of a wave depends only on stages of earlier waves,
    /// so the stages of one wave can be built concurrently.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let mut wave_of: BTreeMap<usize, usize> = BTreeMap::new();
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for stage in &self.stages {
            let wave = stage
                .depends_on
                .iter()
                .map(|d| wave_of[d] + 1)
                .max()
                .unwrap_or(0);
            wave_of.insert(stage.index, wave);
            if waves.len() <= wave {
                waves.resize(wave + 1, Vec::new());
            }
            waves[wave].push(stage.index);
        }
        waves
    }

    /// The state of the variables at the start of `stage`, given its base image's `Env`
    /// (`KEY=value` strings).
    pub fn stage_env(&self, image_env: &[String]) -> StageEnv<'_> {
        StageEnv {
            plan: self,
            env: image_env
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.clone(), String::new()),
                })
                .collect(),
            args: Vec::new(),
        }
    }
}

/// The variables of a stage while its instructions run: the environment (the base image's
/// and `ENV`'s) and the `ARG`s declared so far.
#[derive(Debug, Clone)]
pub struct StageEnv<'p> {
    plan: &'p BuildPlan,
    env: Vec<(String, String)>,
    args: Vec<(String, Option<String>)>,
}

impl StageEnv<'_> {
    /// The environment (`ENV` and the base image's), in order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Sets an environment variable (`ENV`, after expansion).
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }

    /// Declares an `ARG` and returns its value: the build argument if given, else the default
    /// expanded with the stage's variables, else the global argument of that name, else none.
    pub fn declare(&mut self, decl: &ArgDecl, lex: &Lex) -> Result<Option<String>, ShellError> {
        let value = match (self.plan.build_args.get(&decl.name), &decl.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(default)) => Some(lex.process_word(default, self)?),
            (None, None) => self
                .plan
                .meta_args
                .iter()
                .rev()
                .find(|(k, _)| *k == decl.name)
                .and_then(|(_, v)| v.clone()),
        };
        self.args.retain(|(k, _)| *k != decl.name);
        self.args.push((decl.name.clone(), value.clone()));
        Ok(value)
    }

    /// Applies an instruction that changes the variables (`ENV`, `ARG`); `instruction` must
    /// already be expanded ([`Instruction::expand`]).
    pub fn apply(&mut self, instruction: &Instruction, lex: &Lex) -> Result<(), DockerfileError> {
        match &instruction.command {
            Command::Env(kvs) => {
                for kv in kvs {
                    self.set_env(&kv.key, &kv.value);
                }
            }
            Command::Arg(decls) => {
                for decl in decls {
                    self.declare(decl, lex)
                        .map_err(|source| DockerfileError::Expansion {
                            line: instruction.start_line,
                            source,
                        })?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn proxy_arg(&self, name: &str) -> Option<&str> {
        if !PROXY_ARGS.contains(&name) {
            return None;
        }
        self.plan.build_args.get(name).map(String::as_str)
    }

    /// The arguments a `RUN` sees as environment variables, `KEY=value`, sorted: declared
    /// arguments with a value and the proxy build arguments, unless `ENV` set the same name.
    pub fn run_args(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let shadowed = |k: &str| self.env.iter().any(|(e, _)| e == k);
        for (k, v) in &self.args {
            if let Some(v) = v
                && !shadowed(k)
            {
                out.push(format!("{k}={v}"));
            }
        }
        for name in PROXY_ARGS {
            let declared = self.args.iter().any(|(k, _)| k == name);
            if let Some(v) = self.proxy_arg(name)
                && !declared
                && !shadowed(name)
            {
                out.push(format!("{name}={v}"));
            }
        }
        out.sort();
        out
    }

    /// The arguments recorded in a `RUN`'s history line (`|N K=v … /bin/sh -c …`): those of
    /// [`StageEnv::run_args`] without the proxy arguments the Dockerfile did not declare.
    pub fn history_args(&self) -> Vec<String> {
        self.run_args()
            .into_iter()
            .filter(|kv| {
                let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
                !PROXY_ARGS.contains(&key) || self.args.iter().any(|(k, _)| k == key)
            })
            .collect()
    }

    /// The environment of a `RUN`: the stage's environment then [`StageEnv::run_args`].
    pub fn run_env(&self) -> Vec<String> {
        let mut out: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.extend(self.run_args());
        out
    }
}

/// The variables an instruction is expanded with: `ENV` wins over `ARG`, proxy build
/// arguments are visible without a declaration.
impl Env for StageEnv<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v);
        }
        if let Some((_, v)) = self.args.iter().rev().find(|(k, _)| k == name) {
            return v.as_deref();
        }
        self.proxy_arg(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }

    fn opts(args: &[(&str, &str)], target: Option<&str>) -> BuildOptions {
        BuildOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: target.map(str::to_string),
            target_platform: Platform::parse("linux/arm64").unwrap(),
            build_platform: amd64(),
        }
    }

    fn plan(
        text: &str,
        args: &[(&str, &str)],
        target: Option<&str>,
    ) -> Result<BuildPlan, DockerfileError> {
        Dockerfile::parse(text)?.plan(&opts(args, target))
    }

    #[test]
    fn only_the_stages_the_target_needs_in_dependency_order() {
        let text = "\
FROM busybox AS base
RUN true
FROM base AS unused
RUN false
FROM alpine AS tools
FROM scratch AS assets
COPY --from=tools /bin/sh /sh
FROM base
COPY --from=assets /sh /sh
RUN --mount=type=bind,from=golang:1.22,target=/go true
COPY --from=nginx:latest /etc/nginx /etc/nginx
";
        let p = plan(text, &[], None).unwrap();
        assert_eq!(p.target, 4);
        let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
        assert_eq!(order, vec![0, 2, 3, 4], "stage 1 is not needed");
        assert_eq!(p.stage(0).unwrap().base, Base::Image("busybox".into()));
        assert_eq!(p.stage(3).unwrap().base, Base::Scratch);
        assert_eq!(p.stage(3).unwrap().depends_on, vec![2]);
        let last = p.stage(4).unwrap();
        assert_eq!(last.base, Base::Stage(0));
        assert_eq!(last.depends_on, vec![0, 3]);
        assert_eq!(last.images, vec!["golang:1.22", "nginx:latest"]);
        assert_eq!(p.waves(), vec![vec![0, 2], vec![3], vec![4]]);

        let p = plan(text, &[], Some("UNUSED")).unwrap();
        assert_eq!(
            p.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(
            plan(text, &[], Some("nope")).unwrap_err().to_string(),
            "target stage \"nope\" could not be found"
        );
    }

    #[test]
    fn independent_stages_share_a_wave() {
        let text = "FROM busybox AS a\nFROM busybox AS b\nFROM busybox AS c\nFROM busybox AS d\n\
                    FROM scratch\nCOPY --from=a / /a\nCOPY --from=b / /b\nCOPY --from=2 / /c\nCOPY --from=d / /d\n";
        let p = plan(text, &[], None).unwrap();
        assert_eq!(p.waves(), vec![vec![0, 1, 2, 3], vec![4]]);
    }

    #[test]
    fn stage_references_are_checked() {
        let cycle =
            "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n";
        assert_eq!(
            plan(cycle, &[], None).unwrap_err().to_string(),
            "circular dependency detected on stage: a"
        );
        let own = "FROM scratch\nCOPY --from=0 /x /x\n";
        assert_eq!(
            plan(own, &[], None).unwrap_err().to_string(),
            "circular dependency detected on stage: stage-0"
        );
        let index = "FROM scratch\nCOPY --from=3 /x /x\n";
        assert_eq!(
            plan(index, &[], None).unwrap_err().to_string(),
            "dockerfile line 2: invalid stage index 3"
        );
        let var = "ARG X=a\nFROM scratch\nCOPY --from=$X /x /x\n";
        assert_eq!(
            plan(var, &[], None).unwrap_err().to_string(),
            "dockerfile line 3: invalid from flag value $X: invalid reference format"
        );
        // A stage is based only on earlier stages: a later one of the name is an image.
        let later = "FROM b AS a\nFROM busybox AS b\n";
        let p = plan(later, &[], Some("a")).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("b".into()));
    }

    #[test]
    fn global_args_reach_only_from_lines() {
        let text = "\
ARG TAG=3.19
ARG IMAGE=alpine:${TAG}
ARG UNSET
FROM ${IMAGE} AS one
FROM ${BASE:-busybox}:${UNSET:-latest}
FROM --platform=$BUILDPLATFORM golang AS build
";
        let p = plan(text, &[], Some("one")).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("alpine:3.19".into()));
        let p = plan(text, &[("TAG", "3.20")], Some("one")).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("alpine:3.20".into()));
        let p = plan(text, &[("IMAGE", "debian")], Some("one")).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("debian".into()));
        let p = plan(text, &[], Some("stage-1")).unwrap_err();
        assert!(matches!(p, DockerfileError::TargetNotFound { .. }));
        let p = plan(text, &[], None).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("golang".into()));
        assert_eq!(p.stages[0].platform, Some(amd64()));
        // ARG UNSET is declared without a value: set and empty for `:-`.
        let p = Dockerfile::parse(text).unwrap();
        let planned = p.plan(&opts(&[], None)).unwrap();
        assert!(
            planned
                .meta_args
                .iter()
                .any(|(k, v)| k == "UNSET" && v.is_none())
        );

        let blank = "ARG B\nFROM $B\n";
        assert_eq!(
            plan(blank, &[], None).unwrap_err().to_string(),
            "dockerfile line 2: base name ($B) should not be blank"
        );
        let bad = "FROM ${X:?needed}\n";
        assert_eq!(
            plan(bad, &[], None).unwrap_err().to_string(),
            "dockerfile line 1: failed to process \"${X:?needed}\": X: needed"
        );
        let platform = "FROM --platform=linux/zz+1 busybox\n";
        assert!(
            plan(platform, &[], None)
                .unwrap_err()
                .to_string()
                .starts_with("dockerfile line 1: failed to parse platform linux/zz+1")
        );
    }

    fn walk(text: &str, args: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        // Expands and applies every instruction of the last stage; returns what `RUN echo`
        // lines would see for the names they mention.
        let df = Dockerfile::parse(text).unwrap();
        let p = df.plan(&opts(args, None)).unwrap();
        let lex = df.lex();
        let mut env = p.stage_env(&["PATH=/usr/bin".to_string()]);
        let mut seen = Vec::new();
        for inst in &df.stages[p.target].instructions {
            let inst = inst.expand(&lex, &env).unwrap();
            env.apply(&inst, &lex).unwrap();
            if let Command::Run(r) = &inst.command {
                let crate::ShellOrExec::Shell(cmd) = &r.command else {
                    panic!()
                };
                for name in cmd.split_whitespace().skip(1) {
                    seen.push((name.to_string(), env.get(name).map(str::to_string)));
                }
            }
        }
        seen
    }

    #[test]
    fn arg_scoping_as_docker() {
        let text = "\
ARG GLOBAL=g
ARG VERSION=1
FROM busybox
RUN echo GLOBAL VERSION
ARG VERSION
ARG LOCAL=l-${VERSION}
ENV FROM_ENV=${LOCAL}
RUN echo GLOBAL VERSION LOCAL FROM_ENV TARGETARCH
ARG TARGETARCH
ARG BUILDPLATFORM
RUN echo TARGETARCH BUILDPLATFORM
";
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            walk(text, &[]),
            vec![
                ("GLOBAL".into(), None),
                ("VERSION".into(), None),
                ("GLOBAL".into(), None),
                ("VERSION".into(), s("1")),
                ("LOCAL".into(), s("l-1")),
                ("FROM_ENV".into(), s("l-1")),
                ("TARGETARCH".into(), None),
                ("TARGETARCH".into(), s("arm64")),
                ("BUILDPLATFORM".into(), s("linux/amd64")),
            ]
        );
        // Build arguments win over defaults, global or local, and are not expanded.
        let got = walk(
            text,
            &[("VERSION", "2"), ("LOCAL", "$x"), ("TARGETARCH", "riscv64")],
        );
        assert_eq!(got[3], ("VERSION".into(), s("2")));
        assert_eq!(got[4], ("LOCAL".into(), s("$x")));
        assert_eq!(got[7], ("TARGETARCH".into(), s("riscv64")));
    }

    #[test]
    fn env_wins_over_arg_and_proxies_stay_out_of_history() {
        let text = "\
FROM busybox
ARG A=from-arg
ARG B=b
ARG http_proxy
ENV A=from-env
RUN true
";
        let df = Dockerfile::parse(text).unwrap();
        let p = df
            .plan(&opts(
                &[("HTTPS_PROXY", "http://p:3128"), ("http_proxy", "http://q")],
                None,
            ))
            .unwrap();
        let lex = df.lex();
        let mut env = p.stage_env(&[]);
        for inst in &df.stages[0].instructions {
            let inst = inst.expand(&lex, &env).unwrap();
            env.apply(&inst, &lex).unwrap();
        }
        assert_eq!(env.get("A"), Some("from-env"));
        assert_eq!(
            env.get("HTTPS_PROXY"),
            Some("http://p:3128"),
            "usable undeclared"
        );
        assert_eq!(
            env.run_args(),
            vec!["B=b", "HTTPS_PROXY=http://p:3128", "http_proxy=http://q"]
        );
        assert_eq!(env.history_args(), vec!["B=b", "http_proxy=http://q"]);
        assert_eq!(
            env.run_env(),
            vec![
                "A=from-env",
                "B=b",
                "HTTPS_PROXY=http://p:3128",
                "http_proxy=http://q"
            ]
        );
        let mut args = BTreeMap::new();
        args.insert("B".to_string(), "x".to_string());
        args.insert("NOPE".to_string(), "x".to_string());
        args.insert("no_proxy".to_string(), "x".to_string());
        assert_eq!(df.unused_build_args(&args), vec!["NOPE"]);
    }

    #[test]
    fn structure_errors() {
        assert_eq!(
            Dockerfile::parse("ARG A\n").unwrap_err(),
            DockerfileError::NoStages
        );
        assert_eq!(
            Dockerfile::parse("RUN x\nFROM a\n")
                .unwrap_err()
                .to_string(),
            "dockerfile parse error on line 1: no build stage in current context"
        );
        assert_eq!(
            Dockerfile::parse("FROM a\n\n\nFOO bar\n")
                .unwrap_err()
                .to_string(),
            "dockerfile parse error on line 4: unknown instruction: FOO (did you mean FROM?)"
        );
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("Linux/aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm/6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(Platform::parse("linux").unwrap().os, "linux");
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("plan10/amd64").is_err());
        assert_eq!(Platform::host().os, "linux");
    }
}
