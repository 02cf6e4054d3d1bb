//! What each instruction means: a typed [`Command`] per [`Node`], its flags checked, and which
//! of its words are expanded with the stage's variables.
use std::time::Duration;

use crate::error::DockerfileError;
use crate::flags::Flags;
use crate::mount::RunMount;
use crate::parser::{self, Heredoc, Node, parse_heredoc};
use crate::shell::{Env, Lex, ShellError};
use crate::text::{go_quote, parse_go_duration, suggest};

/// The shell a shell-form command runs with unless `SHELL` changed it.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Where BuildKit puts the script of a `RUN <<EOF` heredoc that starts with `#!`.
pub const HEREDOC_SCRIPT_DIR: &str = "/dev/pipes";

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A command in shell form (run by the stage's `SHELL`) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// `RUN echo hi`: the text given to the shell.
    Shell(String),
    /// `RUN ["echo", "hi"]`: the program and its arguments.
    Exec(Vec<String>),
}

impl ShellOrExec {
    fn from_node(args: &[String], json: bool) -> ShellOrExec {
        if json {
            ShellOrExec::Exec(args.to_vec())
        } else {
            ShellOrExec::Shell(args.join(" "))
        }
    }

    /// The argv it stands for: the shell form prefixed with `shell`.
    pub fn to_argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            ShellOrExec::Shell(cmd) => {
                let mut argv = shell.to_vec();
                argv.push(cmd.clone());
                argv
            }
            ShellOrExec::Exec(argv) => argv.clone(),
        }
    }
}

/// `name=value`, as `ENV` and `LABEL` give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
}

/// One name of an `ARG` instruction, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default value as written (expanded when the `ARG` is reached).
    pub default: Option<String>,
}

/// A file written by a heredoc source of `COPY`/`ADD` (`COPY <<EOF /dst`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The file's name: the heredoc delimiter.
    pub path: String,
    /// Its content (leading tabs removed for `<<-`).
    pub data: String,
    /// Whether variables in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunNetwork {
    /// The build's network (`docker build --network`).
    #[default]
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunSecurity {
    /// The default confinement.
    #[default]
    Sandbox,
    /// Privileged (needs the `security.insecure` entitlement).
    Insecure,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command.
    pub command: ShellOrExec,
    /// The heredocs the command reads.
    pub heredocs: Vec<Heredoc>,
    /// `--mount=…`, in order.
    pub mounts: Vec<RunMount>,
    /// `--network=`.
    pub network: RunNetwork,
    /// `--security=`.
    pub security: RunSecurity,
}

/// What a `RUN` executes once heredocs are taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunProgram {
    /// Execute this argv.
    Argv(Vec<String>),
    /// Write `content` to `path` (mode 0755, e.g. on a read-only mount), then execute `argv`
    /// (a `RUN <<EOF` heredoc whose content starts with `#!`).
    Script {
        /// The file to create (under [`HEREDOC_SCRIPT_DIR`]).
        path: String,
        /// Its content.
        content: String,
        /// The command that runs it.
        argv: Vec<String>,
    },
}

impl Run {
    /// The program to execute with the stage's `shell`, as BuildKit runs heredocs: a lone
    /// `<<EOF` runs its content with the shell (or as a script when it starts with `#!`);
    /// heredocs inside a longer command are given to the shell after the command.
    pub fn program(&self, shell: &[String]) -> RunProgram {
        let ShellOrExec::Shell(cmd) = &self.command else {
            return RunProgram::Argv(self.command.to_argv(shell));
        };
        let Some(first) = self.heredocs.first() else {
            return RunProgram::Argv(self.command.to_argv(shell));
        };
        if let Ok(Some(_)) = parse_heredoc(cmd) {
            let content = first.text();
            if content.starts_with("#!") {
                let path = format!("{HEREDOC_SCRIPT_DIR}/{}", first.name);
                let mut argv = shell.to_vec();
                argv.push(path.clone());
                return RunProgram::Script {
                    path,
                    content,
                    argv,
                };
            }
            return RunProgram::Argv(ShellOrExec::Shell(content).to_argv(shell));
        }
        let mut full = cmd.clone();
        for doc in &self.heredocs {
            full.push('\n');
            full.push_str(&doc.content);
            full.push_str(&doc.name);
        }
        RunProgram::Argv(ShellOrExec::Shell(full).to_argv(shell))
    }
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// `--from=`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// Source paths or patterns.
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineFile>,
    /// The destination.
    pub dest: String,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum=` of a remote source.
    pub checksum: Option<String>,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// Sources: paths, patterns, URLs.
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineFile>,
    /// The destination.
    pub dest: String,
}

/// `HEALTHCHECK CMD …` with its options; an option not given is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The check.
    pub test: ShellOrExec,
    /// `--interval=`.
    pub interval: Option<Duration>,
    /// `--timeout=`.
    pub timeout: Option<Duration>,
    /// `--start-period=`.
    pub start_period: Option<Duration>,
    /// `--start-interval=`.
    pub start_interval: Option<Duration>,
    /// `--retries=`.
    pub retries: Option<u32>,
}

impl HealthCheck {
    /// The `Healthcheck.Test` of an image config (`["CMD-SHELL", cmd]` or `["CMD", …]`).
    pub fn test_vec(&self) -> Vec<String> {
        match &self.test {
            ShellOrExec::Shell(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
            ShellOrExec::Exec(argv) => {
                let mut test = vec!["CMD".to_string()];
                test.extend(argv.iter().cloned());
                test
            }
        }
    }
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [options] CMD …`.
    Check(HealthCheck),
}

/// `ONBUILD`: a trigger stored in the image and run by builds based on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger's instruction keyword, upper case.
    pub trigger: String,
    /// The trigger as stored in the image config (parse it with [`parse_trigger`]).
    pub expression: String,
}

/// An instruction of a build stage (everything but `FROM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ADD`.
    Add(Add),
    /// `ARG name[=default] …`.
    Arg(Vec<ArgDecl>),
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `COPY`.
    Copy(Copy),
    /// `ENTRYPOINT`.
    Entrypoint(ShellOrExec),
    /// `ENV`.
    Env(Vec<KeyValue>),
    /// `EXPOSE port[/proto] …` (sorted, as Docker sorts them).
    Expose(Vec<String>),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `LABEL`.
    Label(Vec<KeyValue>),
    /// `MAINTAINER` (deprecated; sets the image's author).
    Maintainer(String),
    /// `ONBUILD`.
    Onbuild(Onbuild),
    /// `RUN`.
    Run(Run),
    /// `SHELL ["…", …]`.
    Shell(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `USER`.
    User(String),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `WORKDIR`.
    Workdir(String),
}

impl Command {
    /// The instruction keyword, upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add(_) => "ADD",
            Command::Arg(_) => "ARG",
            Command::Cmd(_) => "CMD",
            Command::Copy(_) => "COPY",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Env(_) => "ENV",
            Command::Expose(_) => "EXPOSE",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Label(_) => "LABEL",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Onbuild(_) => "ONBUILD",
            Command::Run(_) => "RUN",
            Command::Shell(_) => "SHELL",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::User(_) => "USER",
            Command::Volume(_) => "VOLUME",
            Command::Workdir(_) => "WORKDIR",
        }
    }

    /// The command with the words Docker expands replaced ("Environment replacement"):
    /// `ADD`/`COPY` sources, destination, `--chown`, `--chmod`, `--exclude` (and `--checksum`)
    /// and expandable heredoc contents; `ENV` and `LABEL` names and values; `EXPOSE`,
    /// `STOPSIGNAL`, `USER`, `VOLUME`, `WORKDIR`; `RUN --mount` values. Quotes are removed from
    /// those words even when they hold no variable. `ARG` defaults are expanded by
    /// [`crate::StageEnv::declare`] (only when no build argument overrides them); `FROM` by
    /// [`crate::Dockerfile::plan`]; the others are not expanded.
    pub fn expand<E: Env + ?Sized>(&self, lex: &Lex, env: &E) -> Result<Command, ExpandError> {
        let word = |w: &str| lex.process_word(w, env).map_err(ExpandError::Shell);
        let opt = |w: &Option<String>| -> Result<Option<String>, ExpandError> {
            w.as_deref().map(word).transpose()
        };
        let list = |ws: &[String]| -> Result<Vec<String>, ExpandError> {
            ws.iter().map(|w| word(w)).collect()
        };
        let pairs = |kvs: &[KeyValue]| -> Result<Vec<KeyValue>, ExpandError> {
            kvs.iter()
                .map(|kv| {
                    Ok(KeyValue {
                        key: word(&kv.key)?,
                        value: word(&kv.value)?,
                    })
                })
                .collect()
        };
        let inline = |files: &[InlineFile]| -> Result<Vec<InlineFile>, ExpandError> {
            let raw = Lex::new('\\').skip_process_quotes(true);
            files
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    if f.expand {
                        f.data = raw.process_word(&f.data, env).map_err(ExpandError::Shell)?;
                    }
                    Ok(f)
                })
                .collect()
        };
        Ok(match self {
            Command::Add(a) => Command::Add(Add {
                chown: opt(&a.chown)?,
                chmod: opt(&a.chmod)?,
                checksum: opt(&a.checksum)?,
                exclude: list(&a.exclude)?,
                sources: list(&a.sources)?,
                inline: inline(&a.inline)?,
                dest: word(&a.dest)?,
                ..a.clone()
            }),
            Command::Copy(c) => Command::Copy(Copy {
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                exclude: list(&c.exclude)?,
                sources: list(&c.sources)?,
                inline: inline(&c.inline)?,
                dest: word(&c.dest)?,
                ..c.clone()
            }),
            Command::Env(kvs) => Command::Env(pairs(kvs)?),
            Command::Label(kvs) => Command::Label(pairs(kvs)?),
            Command::Expose(ports) => Command::Expose(list(ports)?),
            Command::StopSignal(s) => Command::StopSignal(word(s)?),
            Command::User(u) => Command::User(word(u)?),
            Command::Volume(v) => Command::Volume(list(v)?),
            Command::Workdir(w) => Command::Workdir(word(w)?),
            Command::Run(r) => Command::Run(Run {
                mounts: r
                    .mounts
                    .iter()
                    .map(|m| m.expand(lex, env).map_err(ExpandError::Invalid))
                    .collect::<Result<_, _>>()?,
                ..r.clone()
            }),
            Command::Arg(_)
            | Command::Cmd(_)
            | Command::Entrypoint(_)
            | Command::Healthcheck(_)
            | Command::Maintainer(_)
            | Command::Onbuild(_)
            | Command::Shell(_) => self.clone(),
        })
    }
}

/// Why [`Command::expand`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// A word could not be expanded.
    Shell(ShellError),
    /// A value is invalid once expanded (a `--mount` option).
    Invalid(String),
}

/// `FROM [--platform=…] base [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base as written: an image reference, an earlier stage's name or `scratch`.
    pub base: String,
    /// The stage name (`AS name`), lower case.
    pub name: Option<String>,
    /// `--platform=` as written.
    pub platform: Option<String>,
}

/// One instruction of a stage: what it does, its text and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The command.
    pub command: Command,
    /// The instruction's text, continuation lines joined and trimmed (for `Step N/M : …`).
    pub original: String,
    /// Its first line (1-based).
    pub start_line: usize,
    /// Its last line.
    pub end_line: usize,
}

impl Instruction {
    /// The instruction with its words expanded (see [`Command::expand`]); an error names the
    /// instruction's line.
    pub fn expand<E: Env + ?Sized>(
        &self,
        lex: &Lex,
        env: &E,
    ) -> Result<Instruction, DockerfileError> {
        let command = self.command.expand(lex, env).map_err(|e| match e {
            ExpandError::Shell(source) => DockerfileError::Expansion {
                line: self.start_line,
                source,
            },
            ExpandError::Invalid(message) => DockerfileError::syntax(self.start_line, message),
        })?;
        Ok(Instruction {
            command,
            ..self.clone()
        })
    }
}

/// A node as a `FROM` or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    From(From),
    Command(Command),
}

/// Parses one `ONBUILD` trigger expression (as stored in an image) into the instruction a
/// build based on that image runs first.
pub fn parse_trigger(expression: &str) -> Result<Instruction, DockerfileError> {
    let ast = parser::parse(expression)?;
    let node = ast
        .nodes
        .into_iter()
        .next()
        .ok_or(DockerfileError::NoInstructions)?;
    let keyword = node.keyword.to_ascii_uppercase();
    match keyword.as_str() {
        "ONBUILD" => {
            return Err(DockerfileError::syntax(
                node.start_line,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ));
        }
        "FROM" | "MAINTAINER" => {
            return Err(DockerfileError::syntax(
                node.start_line,
                format!("{keyword} isn't allowed as an ONBUILD trigger"),
            ));
        }
        _ => {}
    }
    match parse_node(&node).map_err(|m| DockerfileError::syntax(node.start_line, m))? {
        Parsed::Command(command) => Ok(instruction(node, command)),
        Parsed::From(_) => unreachable!("FROM is refused above"),
    }
}

pub(crate) fn instruction(node: Node, command: Command) -> Instruction {
    let mut original = node.original;
    if original.trim().len() != original.len() {
        original = original.trim().to_string();
    }
    Instruction {
        command,
        original,
        start_line: node.start_line,
        end_line: node.end_line,
    }
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn no_destination(cmd: &str) -> String {
    format!(
        "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

/// The meaning of one node, or Docker's message for why it has none.
pub(crate) fn parse_node(node: &Node) -> Result<Parsed, String> {
    let args = &node.args;
    let command = match parser::keyword_of(&node.keyword) {
        "from" => return parse_from(node).map(Parsed::From),
        "env" => Command::Env(parse_kvps(node, "ENV")?),
        "label" => Command::Label(parse_kvps(node, "LABEL")?),
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            Flags::new().parse(&node.flags)?;
            Command::Maintainer(args[0].clone())
        }
        "add" => Command::Add(parse_add(node)?),
        "copy" => Command::Copy(parse_copy(node)?),
        "onbuild" => Command::Onbuild(parse_onbuild(node)?),
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            Flags::new().parse(&node.flags)?;
            Command::Workdir(args[0].clone())
        }
        "run" => Command::Run(parse_run(node)?),
        "cmd" => {
            Flags::new().parse(&node.flags)?;
            Command::Cmd(ShellOrExec::from_node(args, node.json))
        }
        "entrypoint" => {
            Flags::new().parse(&node.flags)?;
            Command::Entrypoint(ShellOrExec::from_node(args, node.json))
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(node)?),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            Flags::new().parse(&node.flags)?;
            let mut ports = args.clone();
            ports.sort();
            Command::Expose(ports)
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            Flags::new().parse(&node.flags)?;
            Command::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            Flags::new().parse(&node.flags)?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.push(v.to_string());
            }
            Command::Volume(volumes)
        }
        "stopsignal" => {
            // Docker does not look at STOPSIGNAL's flags.
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Command::StopSignal(args[0].clone())
        }
        "arg" => Command::Arg(parse_arg(node)?),
        "shell" => {
            Flags::new().parse(&node.flags)?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Command::Shell(args.clone())
        }
        _ => {
            return Err(suggest(
                format!("unknown instruction: {}", node.keyword),
                &node.keyword,
                &INSTRUCTIONS,
                false,
            ));
        }
    };
    Ok(Parsed::Command(command))
}

fn parse_kvps(node: &Node, cmd: &str) -> Result<Vec<KeyValue>, String> {
    Flags::new().parse(&node.flags)?;
    if node.args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !node.args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::with_capacity(node.args.len() / 3);
    for triple in node.args.chunks(3) {
        if triple[0].is_empty() {
            return Err(format!("{cmd} names can not be blank"));
        }
        out.push(KeyValue {
            key: triple[0].clone(),
            value: triple[1].clone(),
        });
    }
    Ok(out)
}

fn parse_from(node: &Node) -> Result<From, String> {
    let args = &node.args;
    let name = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_lowercase();
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    go_quote(&args[2])
                ));
            }
            Some(name)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let mut flags = Flags::new().string("platform");
    flags.parse(&node.flags)?;
    Ok(From {
        base: args[0].clone(),
        name,
        platform: flags.value("platform"),
    })
}

/// Sources, destination and heredoc sources of `COPY`/`ADD`.
fn sources_and_dest(
    node: &Node,
    cmd: &str,
) -> Result<(Vec<String>, Vec<InlineFile>, String), String> {
    let (dest, srcs) = node.args.split_last().ok_or_else(|| no_destination(cmd))?;
    if parse_heredoc(dest).ok().flatten().is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for src in srcs {
        match parse_heredoc(src).ok().flatten() {
            Some(doc) => {
                let data = node
                    .heredocs
                    .iter()
                    .find(|h| h.name == doc.name)
                    .map(|h| Heredoc {
                        chomp: doc.chomp,
                        ..h.clone()
                    })
                    .map(|h| h.text())
                    .unwrap_or_default();
                inline.push(InlineFile {
                    path: doc.name,
                    data,
                    expand: doc.expand,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok((sources, inline, dest.clone()))
}

fn parse_add(node: &Node) -> Result<Add, String> {
    if node.args.len() < 2 {
        return Err(no_destination("ADD"));
    }
    let mut flags = Flags::new()
        .string("chown")
        .string("chmod")
        .bool("link")
        .bool("keep-git-dir")
        .string("checksum")
        .strings("exclude");
    flags.parse(&node.flags)?;
    let (sources, inline, dest) = sources_and_dest(node, "ADD")?;
    Ok(Add {
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.is_true("link"),
        keep_git_dir: flags.is_true("keep-git-dir"),
        checksum: flags.value("checksum"),
        exclude: flags.values("exclude"),
        sources,
        inline,
        dest,
    })
}

fn parse_copy(node: &Node) -> Result<Copy, String> {
    if node.args.len() < 2 {
        return Err(no_destination("COPY"));
    }
    let mut flags = Flags::new()
        .string("chown")
        .string("from")
        .string("chmod")
        .bool("link")
        .bool("parents")
        .strings("exclude");
    flags.parse(&node.flags)?;
    let (sources, inline, dest) = sources_and_dest(node, "COPY")?;
    Ok(Copy {
        from: flags.value("from"),
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.is_true("link"),
        parents: flags.is_true("parents"),
        exclude: flags.values("exclude"),
        sources,
        inline,
        dest,
    })
}

fn parse_onbuild(node: &Node) -> Result<Onbuild, String> {
    let Some(child) = &node.child else {
        return Err(at_least_one("ONBUILD"));
    };
    Flags::new().parse(&node.flags)?;
    let trigger = child.keyword.trim().to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    let is_re_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let original = node.original.trim_start_matches(is_re_space);
    let mut expression = match original.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => {
            original[7..].trim_start_matches(is_re_space).to_string()
        }
        _ => original.to_string(),
    };
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(Onbuild {
        trigger,
        expression,
    })
}

fn parse_run(node: &Node) -> Result<Run, String> {
    let mut flags = Flags::new()
        .strings("mount")
        .string("network")
        .string("security");
    flags.parse(&node.flags)?;
    let mounts = flags
        .values("mount")
        .iter()
        .map(|m| RunMount::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    let network = match flags.raw_value("network").as_deref() {
        None | Some("default") => RunNetwork::Default,
        Some("none") => RunNetwork::None,
        Some("host") => RunNetwork::Host,
        Some(other) => return Err(format!("invalid network mode {}", go_quote(other))),
    };
    let security = match flags.raw_value("security").as_deref() {
        None | Some("sandbox") => RunSecurity::Sandbox,
        Some("insecure") => RunSecurity::Insecure,
        Some(other) => return Err(format!("security {} is not valid", go_quote(other))),
    };
    Ok(Run {
        command: ShellOrExec::from_node(&node.args, node.json),
        heredocs: node.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

/// `--interval` and friends: unset or 0 is "not set"; otherwise at least 1ms.
fn parse_interval(flags: &Flags, name: &str) -> Result<Option<Duration>, String> {
    let Some(value) = flags.value(name) else {
        return Ok(None);
    };
    let nanos = parse_go_duration(&value)?;
    if nanos == 0 {
        return Ok(Some(Duration::ZERO));
    }
    if nanos < 1_000_000 {
        return Err(format!(
            "Interval {} cannot be less than 1ms",
            go_quote(name)
        ));
    }
    Ok(Some(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    )))
}

fn parse_healthcheck(node: &Node) -> Result<Healthcheck, String> {
    let Some(typ) = node.args.first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    let args = &node.args[1..];
    if typ == "NONE" {
        // Docker does not look at the flags of HEALTHCHECK NONE.
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let mut flags = Flags::new()
        .string("interval")
        .string("timeout")
        .string("start-period")
        .string("start-interval")
        .string("retries");
    flags.parse(&node.flags)?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    if args.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = ShellOrExec::from_node(args, node.json);
    let interval = parse_interval(&flags, "interval")?;
    let timeout = parse_interval(&flags, "timeout")?;
    let start_period = parse_interval(&flags, "start-period")?;
    let start_interval = parse_interval(&flags, "start-interval")?;
    let retries = match flags.value("retries") {
        None => None,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                let why = if v
                    .trim_start_matches(['-', '+'])
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    && !v.trim_start_matches(['-', '+']).is_empty()
                {
                    "value out of range"
                } else {
                    "invalid syntax"
                };
                format!("strconv.ParseInt: parsing {}: {why}", go_quote(&v))
            })?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(u32::try_from(n).map_err(|_| {
                format!(
                    "strconv.ParseInt: parsing {}: value out of range",
                    go_quote(&v)
                )
            })?)
        }
    };
    Ok(Healthcheck::Check(HealthCheck {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }))
}

fn parse_arg(node: &Node) -> Result<Vec<ArgDecl>, String> {
    if node.args.is_empty() {
        return Err(at_least_one("ARG"));
    }
    Flags::new().parse(&node.flags)?;
    let mut decls = Vec::with_capacity(node.args.len());
    for arg in &node.args {
        let decl = match arg.split_once('=') {
            Some(("", _)) => return Err("ARG names can not be blank".into()),
            Some((name, value)) => ArgDecl {
                name: name.to_string(),
                default: Some(value.to_string()),
            },
            None => ArgDecl {
                name: arg.clone(),
                default: None,
            },
        };
        decls.push(decl);
    }
    Ok(decls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;
    use crate::shell::NoEnv;

    fn command(text: &str) -> Result<Command, String> {
        let ast = parse(text).map_err(|e| e.to_string())?;
        match parse_node(&ast.nodes[0])? {
            Parsed::Command(c) => Ok(c),
            Parsed::From(f) => Err(format!("FROM {f:?}")),
        }
    }

    fn err(text: &str) -> String {
        command(text).unwrap_err()
    }

    #[test]
    fn argument_counts_are_checked() {
        for cmd in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
            assert_eq!(err(cmd), exactly_one(cmd));
        }
        for cmd in [
            "ENV",
            "LABEL",
            "ONBUILD",
            "HEALTHCHECK",
            "EXPOSE",
            "VOLUME",
            "ARG",
        ] {
            assert_eq!(err(cmd), at_least_one(cmd));
        }
        for cmd in ["ADD", "COPY"] {
            assert_eq!(err(&format!("{cmd} arg1")), no_destination(cmd));
        }
        assert_eq!(err("ENV =x"), "ENV names can not be blank");
        assert_eq!(err("LABEL =x"), "LABEL names can not be blank");
        assert_eq!(err("ARG =x"), "ARG names can not be blank");
        assert_eq!(err("COPY\t\n"), no_destination("COPY"));
    }

    #[test]
    fn docker_messages_for_bad_instructions() {
        let cases = [
            (
                "ONBUILD FROM scratch",
                "FROM isn't allowed as an ONBUILD trigger",
            ),
            (
                "ONBUILD MAINTAINER me",
                "MAINTAINER isn't allowed as an ONBUILD trigger",
            ),
            (
                "ONBUILD ONBUILD RUN touch foobar",
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ),
            ("MAINTAINER --boo joe@example.com", "unknown flag: boo"),
            ("FOO bar", "unknown instruction: FOO (did you mean FROM?)"),
            ("xyzzy bar", "unknown instruction: xyzzy"),
            ("RUNN echo", "unknown instruction: RUNN (did you mean RUN?)"),
            (
                "SHELL sh -c",
                "SHELL requires the arguments to be in JSON form",
            ),
            ("SHELL []", "SHELL requires at least one argument"),
            (
                "VOLUME [\"\"]",
                "VOLUME specified can not be an empty string",
            ),
            ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
            (
                "HEALTHCHECK CONNECT TCP 7000",
                "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)",
            ),
            ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
            (
                "HEALTHCHECK --interval=50ns CMD x",
                "Interval \"interval\" cannot be less than 1ms",
            ),
            (
                "HEALTHCHECK --timeout=x CMD x",
                "time: invalid duration \"x\"",
            ),
            (
                "HEALTHCHECK --retries=-1 CMD x",
                "--retries cannot be negative (-1)",
            ),
            (
                "HEALTHCHECK --retries=x CMD x",
                "strconv.ParseInt: parsing \"x\": invalid syntax",
            ),
            (
                "COPY <<EOF <<EOF2\nx\nEOF\ny\nEOF2\n",
                "COPY cannot accept a heredoc as a destination",
            ),
            (
                "COPY --form=x a b",
                "unknown flag: form (did you mean from?)",
            ),
            (
                "COPY --link=maybe a b",
                "expecting boolean value for flag link, not: maybe",
            ),
            ("RUN --network=bridge x", "invalid network mode \"bridge\""),
            ("RUN --security=loose x", "security \"loose\" is not valid"),
            (
                "RUN --mount=type=nfs,target=/x x",
                "unsupported mount type \"nfs\"",
            ),
            (
                "CMD [\"a\", 1]",
                "dockerfile parse error on line 1: when using JSON array syntax, arrays must be comprised of strings only",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "{text}");
        }
    }

    #[test]
    fn from_names_and_platform() {
        let ast = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build").unwrap();
        let Parsed::From(f) = parse_node(&ast.nodes[0]).unwrap() else {
            panic!("not a FROM")
        };
        assert_eq!(f.base, "golang:1.22");
        assert_eq!(f.name.as_deref(), Some("build"));
        assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
        for (text, want) in [
            (
                "FROM a AS 1x",
                "invalid name for build stage: \"1x\", name can't start with a number or contain symbols",
            ),
            (
                "FROM a AS b$c",
                "invalid name for build stage: \"b$c\", name can't start with a number or contain symbols",
            ),
            ("FROM a b", "FROM requires either one or three arguments"),
            ("FROM", "FROM requires either one or three arguments"),
            (
                "FROM --platfom=x a",
                "unknown flag: platfom (did you mean platform?)",
            ),
            ("FROM --plat=x a", "unknown flag: plat"),
        ] {
            let ast = parse(text).unwrap();
            assert_eq!(parse_node(&ast.nodes[0]).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn every_instruction_has_its_model() {
        let c = command(
            "COPY --from=build --chown=1:2 --chmod=644 --link --exclude=*.md --exclude=x a b /dst/",
        )
        .unwrap();
        assert_eq!(
            c,
            Command::Copy(Copy {
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: Some("644".into()),
                link: true,
                parents: false,
                exclude: vec!["*.md".into(), "x".into()],
                sources: vec!["a".into(), "b".into()],
                inline: vec![],
                dest: "/dst/".into(),
            })
        );
        let Command::Add(a) =
            command("ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tgz /y").unwrap()
        else {
            panic!()
        };
        assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
        assert!(a.keep_git_dir);
        assert_eq!(
            command("ENV a=1 b=\"2 3\"").unwrap(),
            Command::Env(vec![
                KeyValue {
                    key: "a".into(),
                    value: "1".into()
                },
                KeyValue {
                    key: "b".into(),
                    value: "\"2 3\"".into()
                },
            ])
        );
        assert_eq!(
            command("ARG a b=2 c=").unwrap(),
            Command::Arg(vec![
                ArgDecl {
                    name: "a".into(),
                    default: None
                },
                ArgDecl {
                    name: "b".into(),
                    default: Some("2".into())
                },
                ArgDecl {
                    name: "c".into(),
                    default: Some("".into())
                },
            ])
        );
        assert_eq!(
            command("EXPOSE 80/tcp 443 22").unwrap(),
            Command::Expose(vec!["22".into(), "443".into(), "80/tcp".into()])
        );
        assert_eq!(
            command("VOLUME /a /b").unwrap(),
            Command::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            command("VOLUME [\"/a b\"]").unwrap(),
            Command::Volume(vec!["/a b".into()])
        );
        assert_eq!(
            command("USER me:grp").unwrap(),
            Command::User("me:grp".into())
        );
        assert_eq!(
            command("WORKDIR /w").unwrap(),
            Command::Workdir("/w".into())
        );
        assert_eq!(
            command("STOPSIGNAL SIGKILL").unwrap(),
            Command::StopSignal("SIGKILL".into())
        );
        assert_eq!(
            command("MAINTAINER me").unwrap(),
            Command::Maintainer("me".into())
        );
        assert_eq!(
            command("SHELL [\"bash\", \"-c\"]").unwrap(),
            Command::Shell(vec!["bash".into(), "-c".into()])
        );
        assert_eq!(
            command("CMD [\"a\"").unwrap(),
            Command::Cmd(ShellOrExec::Shell("[\"a\"".into()))
        );
        assert_eq!(
            command("ENTRYPOINT []").unwrap(),
            Command::Entrypoint(ShellOrExec::Exec(vec![]))
        );
        assert_eq!(
            command("HEALTHCHECK NONE").unwrap(),
            Command::Healthcheck(Healthcheck::None)
        );
        let Command::Healthcheck(Healthcheck::Check(h)) = command(
            "HEALTHCHECK --interval=5s --timeout=3s --start-period=0s --retries=0 CMD curl -f x",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(h.interval, Some(Duration::from_secs(5)));
        assert_eq!(h.timeout, Some(Duration::from_secs(3)));
        assert_eq!(h.start_period, Some(Duration::ZERO));
        assert_eq!(h.start_interval, None);
        assert_eq!(h.retries, Some(0));
        assert_eq!(h.test_vec(), vec!["CMD-SHELL", "curl -f x"]);
        let Command::Healthcheck(Healthcheck::Check(h)) =
            command("HEALTHCHECK CMD [\"true\"]").unwrap()
        else {
            panic!()
        };
        assert_eq!(h.test_vec(), vec!["CMD", "true"]);
        assert_eq!(
            command("onbuild run echo hi").unwrap(),
            Command::Onbuild(Onbuild {
                trigger: "RUN".into(),
                expression: "run echo hi".into()
            })
        );
        let Command::Onbuild(o) = command("ONBUILD COPY <<EOF /x\nhello\nEOF\n").unwrap() else {
            panic!()
        };
        assert_eq!(o.expression, "COPY <<EOF /x\nhello\nEOF");
        let trigger = parse_trigger(&o.expression).unwrap();
        let Command::Copy(c) = trigger.command else {
            panic!()
        };
        assert_eq!(c.inline[0].data, "hello\n");
        assert_eq!(
            parse_trigger("FROM x").unwrap_err().to_string(),
            "dockerfile parse error on line 1: FROM isn't allowed as an ONBUILD trigger"
        );
    }

    #[test]
    fn run_flags_and_heredocs() {
        let Command::Run(r) = command(
            "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none --security=insecure <<EOF\necho hi\nEOF\n",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.mounts.len(), 2);
        assert_eq!(r.network, RunNetwork::None);
        assert_eq!(r.security, RunSecurity::Insecure);
        let shell: Vec<String> = DEFAULT_SHELL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            r.program(&shell),
            RunProgram::Argv(vec!["/bin/sh".into(), "-c".into(), "echo hi\n".into()])
        );
        let Command::Run(r) =
            command("RUN <<-EOF\n\t#!/usr/bin/env python3\n\tprint(1)\n\tEOF\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            r.program(&shell),
            RunProgram::Script {
                path: "/dev/pipes/EOF".into(),
                content: "#!/usr/bin/env python3\nprint(1)\n".into(),
                argv: vec!["/bin/sh".into(), "-c".into(), "/dev/pipes/EOF".into()],
            }
        );
        let Command::Run(r) = command("RUN cat <<A > /a && cat <<B > /b\n1\nA\n2\nB\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            r.program(&shell),
            RunProgram::Argv(vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat <<A > /a && cat <<B > /b\n1\nA\n2\nB".into()
            ])
        );
        let Command::Run(r) = command("RUN [\"echo\", \"hi\"]").unwrap() else {
            panic!()
        };
        assert_eq!(
            r.program(&shell),
            RunProgram::Argv(vec!["echo".into(), "hi".into()])
        );
    }

    #[test]
    fn copy_heredocs_become_inline_files() {
        let Command::Copy(c) =
            command("COPY <<-one <<\"two\" src /dst/\n\tfirst $X\none\nsecond $X\ntwo\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(c.sources, vec!["src"]);
        assert_eq!(
            c.inline,
            vec![
                InlineFile {
                    path: "one".into(),
                    data: "first $X\n".into(),
                    expand: true
                },
                InlineFile {
                    path: "two".into(),
                    data: "second $X\n".into(),
                    expand: false
                },
            ]
        );
        let env = vec![("X".to_string(), "x".to_string())];
        let Command::Copy(e) = Command::Copy(c).expand(&Lex::new('\\'), &env).unwrap() else {
            panic!()
        };
        assert_eq!(e.inline[0].data, "first x\n");
        assert_eq!(e.inline[1].data, "second $X\n");
    }

    #[test]
    fn expansion_touches_the_words_docker_expands() {
        let env = vec![
            ("A".to_string(), "a".to_string()),
            ("U".to_string(), "1000".to_string()),
        ];
        let lex = Lex::new('\\');
        let exp = |text: &str| command(text).unwrap().expand(&lex, &env).unwrap();
        assert_eq!(
            exp("ENV k_$A=\"$A b\" other='$A'"),
            Command::Env(vec![
                KeyValue {
                    key: "k_a".into(),
                    value: "a b".into()
                },
                KeyValue {
                    key: "other".into(),
                    value: "$A".into()
                },
            ])
        );
        assert_eq!(
            exp("LABEL maintainer James \"j@e.com\""),
            Command::Label(vec![KeyValue {
                key: "maintainer".into(),
                value: "James j@e.com".into()
            }])
        );
        let Command::Copy(c) = exp("COPY --chown=$U:$U --from=$A ${A}.txt /dst/$A") else {
            panic!()
        };
        assert_eq!(c.chown.as_deref(), Some("1000:1000"));
        assert_eq!(c.from.as_deref(), Some("$A"), "--from is not expanded");
        assert_eq!(c.sources, vec!["a.txt"]);
        assert_eq!(c.dest, "/dst/a");
        assert_eq!(exp("WORKDIR /$A/b"), Command::Workdir("/a/b".into()));
        assert_eq!(exp("USER $U"), Command::User("1000".into()));
        assert_eq!(exp("EXPOSE $U"), Command::Expose(vec!["1000".into()]));
        assert_eq!(exp("VOLUME [\"/$A\"]"), Command::Volume(vec!["/a".into()]));
        assert_eq!(exp("STOPSIGNAL SIG$A"), Command::StopSignal("SIGa".into()));
        assert_eq!(exp("RUN echo $A"), command("RUN echo $A").unwrap());
        assert_eq!(exp("CMD echo $A"), command("CMD echo $A").unwrap());
        assert_eq!(exp("ARG x=$A"), command("ARG x=$A").unwrap());
        let Command::Run(r) = exp("RUN --mount=type=cache,target=/$A,uid=$U x") else {
            panic!()
        };
        assert_eq!(r.mounts[0].target.as_deref(), Some("/a"));
        assert_eq!(r.mounts[0].uid, Some(1000));
        let e = command("ENV x=\"${nope:?must be set}\"")
            .unwrap()
            .expand(&lex, &NoEnv)
            .unwrap_err();
        assert_eq!(
            e,
            ExpandError::Shell(ShellError {
                word: "\"${nope:?must be set}\"".into(),
                message: "nope: must be set".into()
            })
        );
    }
}
