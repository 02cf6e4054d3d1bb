//! Word splitting and variable expansion as Docker's shell lexer (`ShellLex`) does it.
//!
//! This is not a shell: it knows quotes (`'…'`, `"…"`), the escape token (`\` or the one the
//! `# escape=` directive set), `$name`, `${name}` and the modifiers `${name:-word}`,
//! `${name-word}`, `${name:+word}`, `${name+word}`, `${name:?message}`, `${name?message}`,
//! `${name#pattern}`, `${name##pattern}`, `${name%pattern}`, `${name%%pattern}`,
//! `${name/pattern/replacement}` and `${name//pattern/replacement}`, with Docker's quirks (a
//! positional or special parameter such as `$1` or `$@` is never set; `${#name}` is not
//! supported). Which words of which instruction are expanded is decided by
//! [`crate::Command::expand`].
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use berth_errdefs::{Classify, ErrorKind};
use regex::Regex;

/// Variables a word is expanded with.
pub trait Env {
    /// The value of `name`, or `None` when it is not set (an empty value is set).
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// A list of pairs; a later pair with the same name wins, as in an environment list.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// No variable is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// A word that could not be expanded (unterminated quote, bad substitution, `${x:?}` …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process \"{word}\": {message}")]
pub struct ShellError {
    /// The word as written.
    pub word: String,
    /// What is wrong with it, worded as Docker words it.
    pub message: String,
}

impl Classify for ShellError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// The lexer: one per escape token, cheap to make and to copy.
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Lex {
    /// A lexer for the escape token `escape` (`\` unless the Dockerfile's `# escape=` said `` ` ``).
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Keeps the quote characters in the result (they are still honoured).
    pub fn raw_quotes(mut self, on: bool) -> Lex {
        self.raw_quotes = on;
        self
    }

    /// Keeps the escape characters in the result (they still escape).
    pub fn raw_escapes(mut self, on: bool) -> Lex {
        self.raw_escapes = on;
        self
    }

    /// Treats quotes as ordinary characters (how heredoc contents are expanded).
    pub fn skip_process_quotes(mut self, on: bool) -> Lex {
        self.skip_process_quotes = on;
        self
    }

    /// Leaves a reference to an unset variable as written instead of making it empty.
    pub fn skip_unset_env(mut self, on: bool) -> Lex {
        self.skip_unset_env = on;
        self
    }

    /// The escape token.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// `word` with its quotes and escapes processed and its variables replaced, as one string
    /// (white space kept).
    pub fn process_word<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<String, ShellError> {
        self.process(word, env, false).map(|(result, _)| result)
    }

    /// `word` processed as [`Lex::process_word`] does, then split into words at unquoted white
    /// space (white space coming from a variable's value splits too).
    pub fn process_words<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<Vec<String>, ShellError> {
        self.process(word, env, true).map(|(_, words)| words)
    }

    fn process<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
        want_words: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut sw = ShellWord {
            lex: self,
            src: word,
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
        };
        sw.process_stop_on(None, self.raw_escapes, want_words)
            .map_err(|message| ShellError {
                word: word.to_string(),
                message,
            })
    }
}

/// Words being built: a word ends at white space outside quotes. Off when only the whole
/// result is wanted.
struct Words {
    on: bool,
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn new(on: bool) -> Words {
        Words {
            on,
            word: String::new(),
            words: Vec::new(),
            in_word: false,
        }
    }

    fn add_char(&mut self, ch: char) {
        if !self.on {
            return;
        }
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        if !self.on {
            return;
        }
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        if !self.on {
            return;
        }
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        if !self.on {
            return;
        }
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct ShellWord<'a, E: ?Sized> {
    lex: &'a Lex,
    src: &'a str,
    pos: usize,
    env: &'a E,
    raw_escapes: bool,
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

impl<'a, E: Env + ?Sized> ShellWord<'a, E> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    /// Processes up to `stop` (consumed) or the end of the input (`stop` = `None`).
    /// `want_words`: split into words too (only the top level's words are used).
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        want_words: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.process_stop_on_inner(stop, want_words);
        self.raw_escapes = saved;
        out
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
        want_words: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::with_capacity(self.src.len() - self.pos);
        let mut words = Words::new(want_words);
        let quotes = !self.lex.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' if quotes => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if quotes => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape token at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        // Everything up to the next ' is literal; a ' cannot be escaped inside.
        let mut result = String::new();
        let quote = self.next();
        if self.lex.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        // Literal except `$` and the escape token, which escapes only `"`, `$` and itself.
        let mut result = String::new();
        let quote = self.next();
        if self.lex.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape token at the end: the missing quote is reported next.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<&'a str> {
        let env: &'a E = self.env;
        env.get(name)
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next(); // the `$`
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value.to_string(),
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // the `{`
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err(MISSING_BRACE.into());
        };
        match ch {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value.to_string(),
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.process_modifier(&name, ch),
            '/' => self.process_replace(&name),
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }

    fn process_modifier(&mut self, name: &str, first: char) -> Result<String, String> {
        let mut modifier = String::from(first);
        let (null_is_unset, op) = if first == ':' {
            let op = self.next();
            modifier.push(op.unwrap_or(char::REPLACEMENT_CHARACTER));
            (true, op)
        } else {
            (false, Some(first))
        };
        let raw = matches!(op, Some('#' | '%'));
        let word = match self.process_stop_on(Some('}'), raw, false) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let value = self.lookup(name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset_or_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            Some('-') => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default().to_string()
            }),
            Some('+') => Ok(if unset_or_null { String::new() } else { word }),
            Some('?') => match value {
                None => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                )),
                Some(v) if null_is_unset && v.is_empty() => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    }
                )),
                Some(v) => Ok(v.to_string()),
            },
            Some(c @ ('%' | '#')) => {
                // `#`/`%` remove the shortest match, `##`/`%%` the longest.
                let (greedy, pattern) = match word.strip_prefix(c) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or_default();
                if c == '%' {
                    trim_suffix(pattern, value, greedy)
                } else {
                    trim_prefix(pattern, value, greedy)
                }
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true, false) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => {
                return Err("syntax error: missing '/' in ${}".into());
            }
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true, false) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err(MISSING_BRACE.into()),
            Err(e) => return Err(e),
        };
        let Some(value) = self.lookup(name) else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let re = shell_pattern_regex(&pattern, true, false)
            .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        if all {
            return Ok(re.replace_all(value, replacement.as_str()).into_owned());
        }
        Ok(match re.find(value) {
            Some(m) => format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..]),
            None => value.to_string(),
        })
    }

    /// A variable name: letters, digits and `_`; or all the digits of a positional parameter;
    /// or one special parameter character.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| is_digit(c)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                name.push(ch);
                return name;
            }
            if !ch.is_alphabetic() && !is_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

fn is_digit(ch: char) -> bool {
    ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric())
}

/// A shell pattern (`*`, `?`, `\` escaping `*`, `?` or `\`) as a regular expression; `*` matches
/// the shortest string unless `greedy`.
fn shell_pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut chars = pattern.chars().peekable();
    while let Some(tok) = chars.next() {
        match tok {
            '*' => {
                out.push_str(star);
                continue;
            }
            '?' => {
                out.push('.');
                continue;
            }
            '\\' => {
                // `\}` and `\/` were escapes of the `${…}` syntax, not of the pattern.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => {
                        return Err(format!(
                            "invalid escape '\\{}'",
                            other.unwrap_or(char::REPLACEMENT_CHARACTER)
                        ));
                    }
                }
                continue;
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => out.push('\\'),
            _ => {}
        }
        out.push(tok);
    }
    Regex::new(&out).map_err(|e| e.to_string())
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = shell_pattern_regex(pattern, greedy, true)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Suffix removal as a prefix removal on the reversed value and pattern (a regular expression
/// finds the leftmost match, not the rightmost).
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// `pattern` reversed, an escape staying in front of the character it escapes (`a\*c` → `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let at = last - i;
        if chars[i] == '\\' && i != last {
            out[at - 1] = '\\';
            out[at] = chars[i + 1];
            i += 2;
        } else {
            out[at] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn word(input: &str, vars: &[(&str, &str)]) -> Result<String, ShellError> {
        Lex::new('\\').process_word(input, &env(vars))
    }

    #[test]
    fn prefix_and_suffix_removal() {
        let vars = [("x", "foo/bar/baz.tar.gz"), ("e", "")];
        let cases = [
            ("${x#*/}", "bar/baz.tar.gz"),
            ("${x##*/}", "baz.tar.gz"),
            ("${x%.*}", "foo/bar/baz.tar"),
            ("${x%%.*}", "foo/bar/baz"),
            ("${x#nomatch}", "foo/bar/baz.tar.gz"),
            ("${x%/*}", "foo/bar"),
            ("${x%%/*}", "foo"),
            ("${x#f?o}", "/bar/baz.tar.gz"),
            ("${unset#*}", ""),
            ("${e%x}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(word(input, &vars).unwrap(), want, "{input}");
        }
        // An escaped `*` is literal.
        assert_eq!(word(r"${y#a\*}", &[("y", "a*bc")]).unwrap(), "bc");
        assert_eq!(word(r"${y%\*c}", &[("y", "ab*c")]).unwrap(), "ab");
    }

    #[test]
    fn replacement() {
        let vars = [("x", "a-b-c")];
        assert_eq!(word("${x/-/+}", &vars).unwrap(), "a+b-c");
        assert_eq!(word("${x//-/+}", &vars).unwrap(), "a+b+c");
        assert_eq!(word("${x/*-/}", &vars).unwrap(), "c");
        assert_eq!(word("${x//q/z}", &vars).unwrap(), "a-b-c");
        assert_eq!(word("${nope/a/b}", &vars).unwrap(), "");
        assert!(word("${x/a", &vars).is_err());
        assert!(word("${x/a/b", &vars).is_err());
        assert!(word(r"${x#\a}", &vars).is_err());
    }

    #[test]
    fn error_messages_read_as_docker() {
        let e = word("${x:?}", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${x:?}\": x: is not allowed to be unset"
        );
        let e = word("${x:?needed}", &[("x", "")]).unwrap_err();
        assert_eq!(e.message, "x: needed");
        let e = word("${x:?}", &[("x", "")]).unwrap_err();
        assert_eq!(e.message, "x: is not allowed to be empty");
        assert_eq!(word("${x?}", &[("x", "")]).unwrap(), "");
        assert_eq!(
            word("${}", &[]).unwrap_err().message,
            "syntax error: bad substitution"
        );
        assert_eq!(word("${a", &[]).unwrap_err().message, MISSING_BRACE);
        assert_eq!(
            word("${a:=b}", &[]).unwrap_err().message,
            "unsupported modifier (:=) in substitution"
        );
        assert_eq!(
            word("'abc", &[]).unwrap_err().message,
            "unexpected end of statement while looking for matching single-quote"
        );
    }

    #[test]
    fn backtick_escape_token() {
        let lex = Lex::new('`');
        let vars = env(&[("A", "1")]);
        assert_eq!(lex.process_word("`$A$A", &vars).unwrap(), "$A1");
        assert_eq!(lex.process_word(r"C:\dir\$A", &vars).unwrap(), r"C:\dir\1");
        assert_eq!(lex.process_word("\"a`\"b\"", &vars).unwrap(), "a\"b");
    }

    #[test]
    fn raw_modes_keep_what_they_say() {
        let lex = Lex::new('\\').raw_quotes(true).raw_escapes(true);
        assert_eq!(
            lex.process_words(r#"RUN 'a b' "c\"d" e\ f"#, &NoEnv)
                .unwrap(),
            vec!["RUN", "'a b'", r#""c\"d""#, r"e\ f"]
        );
        let lex = Lex::new('\\').skip_unset_env(true);
        assert_eq!(
            lex.process_word("$a ${b} ${c:-d} ${e/f/g}", &NoEnv)
                .unwrap(),
            "$a ${b} ${c:-d} ${e/f/g}"
        );
        let lex = Lex::new('\\').skip_process_quotes(true);
        assert_eq!(
            lex.process_word("'$A' \"$A\"", &env(&[("A", "x")]))
                .unwrap(),
            "'x' \"x\""
        );
    }

    #[test]
    fn later_pairs_win_and_maps_work() {
        let vars = env(&[("A", "1"), ("A", "2")]);
        assert_eq!(Lex::new('\\').process_word("$A", &vars).unwrap(), "2");
        let mut map = HashMap::new();
        map.insert("B".to_string(), "3".to_string());
        assert_eq!(Lex::new('\\').process_word("${B}", &map).unwrap(), "3");
        let tree: BTreeMap<String, String> = [("C".to_string(), "4".to_string())].into();
        assert_eq!(Lex::new('\\').process_word("${C:+y}", &tree).unwrap(), "y");
    }
}
