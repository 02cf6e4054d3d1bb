//! The Dockerfile's syntax: physical lines to instructions (a [`Node`] each).
//!
//! This layer knows parser directives, comments, line continuations, heredocs, flags and how
//! each instruction's arguments are split (JSON or not), exactly as BuildKit's
//! `frontend/dockerfile/parser` does; it does not know what the instructions mean (that is
//! [`crate::instruction`]). [`Node::dump`] renders a node as the S-expressions of BuildKit's
//! parser test files.
use crate::error::DockerfileError;
use crate::shell::{Lex, NoEnv};
use crate::text::{go_quote, split_space};

/// The longest physical line Docker reads (Go's `bufio.MaxScanTokenSize`, newline included).
const MAX_LINE: usize = 64 * 1024;

/// A parser directive at the top of the file (`# syntax=…`, `# escape=…`, `# check=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, lower case.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Its line.
    pub line: usize,
}

/// Something worth telling the user that does not stop the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The line it is about.
    pub line: usize,
    /// The message, as Docker prints it after `[WARNING]: `.
    pub message: String,
}

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dst`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when none.
    pub fd: u32,
    /// Whether variables in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from every content line.
    pub chomp: bool,
    /// The lines between the instruction and the delimiter, line endings kept, tabs not yet
    /// removed (see [`Heredoc::text`]).
    pub content: String,
}

impl Heredoc {
    /// The content as the instruction uses it: with `<<-`, each line's leading tabs removed.
    pub fn text(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// One instruction as written: its keyword, flags and arguments split as BuildKit splits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction keyword as written (`RUN`, `run`, …).
    pub keyword: String,
    /// The `--flag[=value]` words before the arguments, quotes removed.
    pub flags: Vec<String>,
    /// The arguments: JSON strings, whitespace-separated words, or the whole rest of the line,
    /// depending on the instruction. `ENV` and `LABEL` give (name, value, separator) triples,
    /// the separator being `=` or empty for the old `ENV name value` form.
    pub args: Vec<String>,
    /// `ONBUILD`'s trigger instruction.
    pub child: Option<Box<Node>>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// The instruction's text, continuation lines joined (heredoc bodies not included).
    pub original: String,
    /// The first line of the instruction (1-based).
    pub start_line: usize,
    /// Its last line, heredoc bodies included.
    pub end_line: usize,
    /// The heredocs the instruction reads.
    pub heredocs: Vec<Heredoc>,
}

impl Node {
    /// The node as one S-expression without its outer parentheses, as BuildKit's
    /// `Node.Dump` renders it (`run "echo hi"`, `copy ["--from=a"] "x" "/y"`).
    pub fn dump(&self) -> String {
        let mut out = self.keyword.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            out.push_str(" [");
            out.push_str(&flags.join(" "));
            out.push(']');
        }
        if let Some(child) = &self.child {
            out.push_str(" (");
            out.push_str(&child.dump());
            out.push(')');
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(&go_quote(arg));
        }
        out
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match &self.child {
            Some(child) if self.keyword.eq_ignore_ascii_case("onbuild") => child,
            _ => self,
        };
        matches!(keyword_of(&node.keyword), "add" | "copy" | "run") && !node.json
    }
}

/// A parsed file: its instructions in order, the escape token and the directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    /// The instructions.
    pub nodes: Vec<Node>,
    /// The escape token (`\` or `` ` ``).
    pub escape: char,
    /// The parser directives found at the top.
    pub directives: Vec<Directive>,
    /// Warnings (empty continuation lines).
    pub warnings: Vec<Warning>,
}

impl Ast {
    /// All nodes dumped, one `(…)` per line, as BuildKit's parser test `result` files hold them
    /// (without the final newline).
    pub fn dump(&self) -> String {
        let lines: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("({})", n.dump()))
            .collect();
        lines.join("\n")
    }
}

/// The parser directive state: directives are only looked for before the first line that is
/// not one.
struct Directives {
    escape: char,
    done: bool,
    found: Vec<Directive>,
}

impl Directives {
    /// Looks at a (left-trimmed, newline-stripped) line for a directive.
    fn look(&mut self, line: &str, line_no: usize) -> Result<(), DockerfileError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = parse_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(DockerfileError::syntax(
                line_no,
                format!("only one {name} parser directive can be used"),
            ));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(DockerfileError::syntax(
                        line_no,
                        format!("invalid escape token '{other}' does not match ` or \\"),
                    ));
                }
            };
        }
        self.found.push(Directive {
            name,
            value: value.to_string(),
            line: line_no,
        });
        Ok(())
    }
}

/// `# name = value` (Go's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`).
fn parse_directive(line: &str) -> Option<(&str, &str)> {
    let is_go_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let rest = line.strip_prefix('#')?.trim_start();
    let name_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_end];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = rest[name_end..].trim_start_matches(is_go_space);
    let value = rest
        .strip_prefix('=')?
        .trim_start_matches(is_go_space)
        .trim_end_matches(is_go_space);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// The instructions' keywords, lower case.
const KEYWORDS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// `keyword` as one of [`KEYWORDS`] (case-insensitive), `""` when it is none.
pub(crate) fn keyword_of(keyword: &str) -> &'static str {
    KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(keyword))
        .copied()
        .unwrap_or("")
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Removes a trailing line-continuation escape token (and the blanks after it). Returns the
/// line and whether the instruction ends here. An escape token preceded by another one is an
/// escaped escape token, not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

fn check_length(raw: &str, line_no: usize) -> Result<(), DockerfileError> {
    if raw.len() > MAX_LINE {
        return Err(DockerfileError::syntax(
            line_no,
            format!(
                "dockerfile line greater than max allowed size of {}",
                MAX_LINE - 1
            ),
        ));
    }
    Ok(())
}

/// Parses a Dockerfile's text into instructions.
pub fn parse(text: &str) -> Result<Ast, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut directives = Directives {
        escape: '\\',
        done: false,
        found: Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut lines = text.split_inclusive('\n');
    let mut line_no = 0;

    while let Some(raw) = lines.next() {
        line_no += 1;
        check_length(raw, line_no)?;
        let token = trim_newline(raw).trim_start();
        directives.look(token, line_no)?;
        let escape = directives.escape;
        let content = if is_comment(token) { "" } else { token };
        let start_line = line_no;
        let (first, mut ended) = trim_continuation(content, escape);
        if ended && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !ended {
            let Some(raw) = lines.next() else { break };
            line_no += 1;
            check_length(raw, line_no)?;
            if is_comment(raw) {
                continue;
            }
            let content = trim_newline(raw);
            if content.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, end) = trim_continuation(content, escape);
            line.push_str(part);
            ended = end;
        }
        if empty_continuation {
            warnings.push(Warning {
                line: line_no,
                message: format!("Empty continuation line found in: {line}"),
            });
        }

        let mut node =
            node_from_line(line, escape).map_err(|m| DockerfileError::syntax(start_line, m))?;
        if node.can_contain_heredoc() && node.original.contains("<<") {
            let mut heredocs = heredocs_from_line(&node.original)
                .map_err(|m| DockerfileError::syntax(start_line, m))?;
            for heredoc in &mut heredocs {
                let mut terminated = false;
                for raw in lines.by_ref() {
                    line_no += 1;
                    check_length(raw, line_no)?;
                    let mut candidate = trim_newline(raw);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(raw);
                }
                if !terminated {
                    return Err(DockerfileError::syntax(start_line, "unterminated heredoc"));
                }
            }
            node.heredocs = heredocs;
        }
        node.start_line = start_line;
        node.end_line = line_no;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(DockerfileError::NoInstructions);
    }
    Ok(Ast {
        nodes,
        escape: directives.escape,
        directives: directives.found,
        warnings,
    })
}

/// One logical line (continuations joined) as a node: the keyword, the flags and the
/// arguments split the way the instruction splits them.
pub(crate) fn node_from_line(line: String, escape: char) -> Result<Node, String> {
    let trimmed = line.trim();
    let mut parts = split_space(trimmed, 2).into_iter();
    let keyword = parts.next().unwrap_or_default().to_string();
    let (rest, flags) = match parts.next() {
        Some(rest) => extract_flags(rest, escape),
        None => ("", Vec::new()),
    };
    let rest = rest.trim();
    let mut args = Vec::new();
    let mut json = false;
    let mut child = None;
    match keyword_of(&keyword) {
        "add" | "copy" | "volume" => (args, json) = parse_maybe_json_to_list(rest)?,
        "cmd" | "entrypoint" | "run" | "shell" => (args, json) = parse_maybe_json(rest)?,
        "arg" => args = parse_words(rest, escape),
        "env" => args = parse_name_val(rest, "ENV", escape)?,
        "label" => args = parse_name_val(rest, "LABEL", escape)?,
        "expose" | "from" => args = parse_whitespace_delimited(rest),
        "healthcheck" => (args, json) = parse_health_config(rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !rest.is_empty() {
                args = vec![rest.to_string()];
            }
        }
        "onbuild" => {
            if !rest.is_empty() {
                child = Some(Box::new(node_from_line(rest.to_string(), escape)?));
            }
        }
        // Unknown instructions are refused when their meaning is looked for.
        _ => args = vec![String::new()],
    }
    Ok(Node {
        keyword,
        flags,
        args,
        child,
        json,
        original: line,
        start_line: 0,
        end_line: 0,
        heredocs: Vec::new(),
    })
}

/// Splits off the leading `--flag` words (quotes and escapes processed), stopping at the first
/// word that does not start with `--` or after a lone `--`.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = line.char_indices().peekable();
    loop {
        let Some((pos, ch)) = chars.next() else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return ("", words);
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            let next_is_dash = chars.peek().is_some_and(|&(_, c)| c == '-');
            if ch != '-' || !next_is_dash {
                return (&line[pos..], words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[pos..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                continue;
            }
            let mut ch = ch;
            if ch == escape {
                match chars.next() {
                    Some((_, c)) => ch = c,
                    None => continue, // an escape token at the end is dropped
                }
            }
            word.push(ch);
            continue;
        }
        // Inside quotes.
        if ch == quote {
            phase = Phase::Word;
            continue;
        }
        let mut ch = ch;
        if ch == escape {
            match chars.next() {
                Some((_, c)) => ch = c,
                None => {
                    phase = Phase::Word;
                    continue;
                }
            }
        }
        word.push(ch);
    }
}

/// Words separated by white space, quotes and escapes kept (they are removed by the expansion
/// later): the arguments of `ARG`, `ENV` and `LABEL`.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    loop {
        let Some(mut ch) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return words;
        };
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if chars.peek().is_none() {
                    continue; // an escape token at the end is dropped
                }
                // Outside quotes the escape token and what it escapes are both kept.
                word.push(ch);
                ch = chars.next().unwrap_or(ch);
            }
            word.push(ch);
            continue;
        }
        // Inside quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if chars.peek().is_none() {
                phase = Phase::Word;
                continue;
            }
            word.push(ch);
            ch = chars.next().unwrap_or(ch);
        }
        word.push(ch);
    }
}

/// `ENV`/`LABEL` arguments: `name value` (old form) or `name=value …`, as (name, value,
/// separator) triples.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts = split_space(rest, 2);
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(vec![
            parts[0].to_string(),
            parts[1].to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&word)
            ));
        };
        out.push(name.to_string());
        out.push(value.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

fn parse_whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_space(rest, 0)
        .into_iter()
        .map(str::to_string)
        .collect()
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

enum JsonArgs {
    Strings(Vec<String>),
    NotJson,
    NotStrings,
}

fn parse_json(rest: &str) -> JsonArgs {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonArgs::NotJson;
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return JsonArgs::NotJson;
    };
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        match value {
            serde_json::Value::String(s) => out.push(s),
            _ => return JsonArgs::NotStrings,
        }
    }
    JsonArgs::Strings(out)
}

/// A JSON array of strings (exec form), else the whole rest as one argument (shell form).
fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        JsonArgs::Strings(args) => Ok((args, true)),
        JsonArgs::NotStrings => Err(NOT_STRING_ARRAY.into()),
        JsonArgs::NotJson => Ok((vec![rest.to_string()], false)),
    }
}

/// A JSON array of strings, else whitespace-separated words.
fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        JsonArgs::Strings(args) => Ok((args, true)),
        JsonArgs::NotStrings => Err(NOT_STRING_ARRAY.into()),
        JsonArgs::NotJson => Ok((parse_whitespace_delimited(rest), false)),
    }
}

/// `HEALTHCHECK TYPE command…`: the type, then the command as `CMD` parses it.
fn parse_health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let (typ, command) = rest.split_at(sep);
    let (cmd, json) = parse_maybe_json(command.trim_start())?;
    let mut args = Vec::with_capacity(cmd.len() + 1);
    args.push(typ.to_string());
    args.extend(cmd);
    Ok((args, json))
}

/// The heredocs an instruction line opens (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`), in order.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lex::new('\\')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset_env(true);
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// A word that opens a heredoc (`^(\d*)<<(-?)([^<]*)$`), or `None`. A delimiter with
/// unbalanced quotes is an error.
pub(crate) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let lex = Lex::new('\\').skip_unset_env(true);
    let unquoted = lex.process_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if unquoted.len() != 1 {
        return Ok(None);
    }
    let raw = lex
        .raw_quotes(true)
        .process_words(rest, &NoEnv)
        .map_err(|e| e.to_string())?;
    if raw.len() != unquoted.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    let name = unquoted.into_iter().next().unwrap_or_default();
    Ok(Some(Heredoc {
        expand: quotes(&name) == quotes(&raw[0]),
        name,
        fd,
        chomp,
        content: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(text: &str) -> Vec<Node> {
        parse(text).unwrap().nodes
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        let cases: [(&str, &[&str]); 7] = [
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            ("foo bar \"abc xyz\"", &["foo", "bar", "\"abc xyz\""]),
            ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_words(input, '\\'), want, "{input}");
        }
    }

    #[test]
    fn line_numbers_span_continuations_and_heredocs() {
        let text = "# comment\n\nFROM a\nRUN one \\\n  two\n\nRUN <<EOF\nx\nEOF\nCMD c\n";
        let n = nodes(text);
        let spans: Vec<(usize, usize)> = n.iter().map(|n| (n.start_line, n.end_line)).collect();
        assert_eq!(spans, vec![(3, 3), (4, 5), (7, 9), (10, 10)]);
        assert_eq!(n[1].original, "RUN one   two");
    }

    #[test]
    fn empty_continuation_lines_warn() {
        let text = "FROM a\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN non-indented \\\n# a comment\n   after-comment\n";
        let ast = parse(text).unwrap();
        assert_eq!(ast.warnings.len(), 1);
        assert!(
            ast.warnings[0]
                .message
                .contains("Empty continuation line found in: RUN something     following     more"),
            "{:?}",
            ast.warnings
        );
        assert_eq!(ast.nodes[3].args, vec!["non-indented    after-comment"]);
    }

    #[test]
    fn too_long_lines_are_refused() {
        let text = format!("FROM image\nLABEL test={}\n", "a".repeat(MAX_LINE));
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dockerfile parse error on line 2: dockerfile line greater than max allowed size of 65535"
        );
    }

    #[test]
    fn directives_only_at_the_top() {
        let ast = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(ast.escape, '`');
        assert_eq!(ast.directives.len(), 2);
        assert_eq!(ast.directives[0].value, "docker/dockerfile:1");
        // After a blank line, an instruction or another comment, it is a comment.
        for text in [
            "\n# escape=`\nFROM a\n",
            "# hello\n# escape=`\nFROM a\n",
            "FROM a\n# escape=`\n",
        ] {
            assert_eq!(parse(text).unwrap().escape, '\\', "{text:?}");
        }
        let err = parse("# escape=\\\n# escape=`\nFROM a\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dockerfile parse error on line 2: only one escape parser directive can be used"
        );
        let err = parse("# escape=x\nFROM a\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"
        );
        // An unknown name ends the directives.
        let ast = parse("# foo=bar\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(ast.escape, '\\');
        assert!(ast.directives.is_empty());
    }

    #[test]
    fn heredocs_are_read() {
        let text = "FROM alpine\nRUN <<EMPTY\nEMPTY\nRUN 3<<EMPTY2\nEMPTY2\nRUN \"<<NOHEREDOC\"\n\
                    RUN <<-UNINDENT\n\tbaz\n\tquux\n\tUNINDENT\nRUN <<-'NOEXPAND'\n\tdon't $NAME\nNOEXPAND\n\
                    RUN <<COMMENT\n# internal comment\necho hi # trailing\nCOMMENT\n\
                    RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\
                    COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\
                    COPY <<X <<Y /dest\nY\nX\nX\nY\nRUN [\"<<EOF\"]\nUSER <<INVALID\n";
        let n = nodes(text);
        let docs = |i: usize| -> Vec<(String, String, bool, bool, u32)> {
            n[i].heredocs
                .iter()
                .map(|h| (h.name.clone(), h.content.clone(), h.expand, h.chomp, h.fd))
                .collect()
        };
        let d = |name: &str, content: &str, expand, chomp, fd| {
            (name.to_string(), content.to_string(), expand, chomp, fd)
        };
        assert_eq!(docs(1), vec![d("EMPTY", "", true, false, 0)]);
        assert_eq!(docs(2), vec![d("EMPTY2", "", true, false, 3)]);
        assert!(docs(3).is_empty());
        assert_eq!(
            docs(4),
            vec![d("UNINDENT", "\tbaz\n\tquux\n", true, true, 0)]
        );
        assert_eq!(n[4].heredocs[0].text(), "baz\nquux\n");
        assert_eq!(
            docs(5),
            vec![d("NOEXPAND", "\tdon't $NAME\n", false, true, 0)]
        );
        assert_eq!(
            docs(6),
            vec![d(
                "COMMENT",
                "# internal comment\necho hi # trailing\n",
                true,
                false,
                0
            )]
        );
        assert_eq!(docs(7), vec![d("MOUNT", "echo hello\n", true, false, 0)]);
        assert_eq!(
            docs(8),
            vec![
                d("FILE1", "content 1\n", true, false, 0),
                d("FILE2", "content 2\n", true, false, 0)
            ]
        );
        assert_eq!(
            docs(9),
            vec![d("X", "Y\n", true, false, 0), d("Y", "X\n", true, false, 0)]
        );
        assert!(docs(10).is_empty(), "JSON form has no heredocs");
        assert!(docs(11).is_empty(), "USER has no heredocs");
        assert_eq!((n[9].start_line, n[9].end_line), (26, 30));
    }

    #[test]
    fn heredoc_words() {
        for src in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
        ] {
            assert_eq!(parse_heredoc(src).unwrap().unwrap().name, "EOF", "{src}");
        }
        for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(src).is_err(), "{src}");
        }
        for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"] {
            assert_eq!(parse_heredoc(src).unwrap(), None, "{src}");
        }
        assert!(!parse_heredoc("<<\"EOF\"").unwrap().unwrap().expand);
        assert!(parse_heredoc("<<EOF").unwrap().unwrap().expand);
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF <<EOF2"), vec!["EOF", "EOF2"]);
        assert_eq!(names("RUN 4<<EOF"), vec!["EOF"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
    }

    #[test]
    fn unterminated_heredoc_names_its_instruction() {
        let err = parse("FROM a\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dockerfile parse error on line 2: unterminated heredoc"
        );
    }

    #[test]
    fn flags_are_split_off() {
        let n = nodes(
            "COPY --from=\"a b\" --chown=1:1 -- --x /y\nRUN --mount=type=cache,target=/c  echo --no\n",
        );
        assert_eq!(n[0].flags, vec!["--from=a b", "--chown=1:1"]);
        assert_eq!(n[0].args, vec!["--x", "/y"]);
        assert_eq!(n[1].flags, vec!["--mount=type=cache,target=/c"]);
        assert_eq!(n[1].args, vec!["echo --no"]);
    }

    #[test]
    fn crlf_and_bom() {
        let n = nodes("\u{feff}FROM a\r\nRUN x \\\r\n y\r\n");
        assert_eq!(n[0].args, vec!["a"]);
        assert_eq!(n[1].args, vec!["x  y"]);
    }
}
