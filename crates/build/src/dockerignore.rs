//! `.dockerignore`: which files of the build context are not sent, with Docker's pattern
//! rules (moby's `patternmatcher` and `ignorefile`).
//!
//! A pattern is Go's `filepath.Match` syntax (`*`, `?`, `[a-z]`, `\` escapes) plus `**`
//! (any number of directories); `!` makes an exception; a later pattern wins over an earlier
//! one; a pattern matching a directory matches everything below it. The CLI that sends a
//! context and the daemon that receives one use the same [`PatternMatcher`].
use std::path::{Path, PathBuf};

use berth_errdefs::{Classify, ErrorKind};
use regex::Regex;

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not valid `filepath.Match` syntax (Go's `filepath.ErrBadPattern`).
    #[error("syntax error in pattern")]
    BadPattern,
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
}

impl Classify for PatternError {
    fn kind(&self) -> ErrorKind {
        match self {
            PatternError::BadPattern | PatternError::IllegalExclusion => ErrorKind::InvalidArgument,
        }
    }
}

/// The lines of a `.dockerignore` file as patterns: comments (`#` at the start of a line) and
/// blank lines dropped, blanks trimmed, each path cleaned (`./a/../b` is `b`) and made relative
/// to the context (`/foo` is `foo`), `!` kept in front.
pub fn parse_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push(cleaned);
    }
    out
}

/// The ignore files that apply to a build, most specific first: `<Dockerfile>.dockerignore`
/// next to the Dockerfile (`dockerfile` relative to `context`, or absolute), then
/// `.dockerignore` at the context's root. The first that exists is the one used.
pub fn ignore_file_candidates(context: &Path, dockerfile: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(2);
    if let Some(df) = dockerfile.filter(|d| d.as_os_str() != "-") {
        let mut specific = context.join(df).into_os_string();
        specific.push(".dockerignore");
        out.push(PathBuf::from(specific));
    }
    out.push(context.join(".dockerignore"));
    out
}

/// `patterns` plus the exceptions that keep the Dockerfile and `.dockerignore` in the
/// context when the patterns exclude them (the daemon needs them; it drops them itself), as
/// the docker CLI does. `dockerfile` is the Dockerfile's path in the context (`None` when it
/// comes from stdin).
pub fn keep_build_files(mut patterns: Vec<String>, dockerfile: Option<&str>) -> Vec<String> {
    let excluded = |patterns: &[String], path: &str| {
        PatternMatcher::new(patterns)
            .and_then(|m| m.matches(path))
            .unwrap_or(false)
    };
    if excluded(&patterns, ".dockerignore") {
        patterns.push("!.dockerignore".into());
    }
    if let Some(df) = dockerfile
        && excluded(&patterns, &go_clean(df))
    {
        patterns.push(format!("!{df}"));
    }
    patterns
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex(Regex),
    /// Valid for `filepath.Match` but not as a regular expression (`[z-a]`): an error when
    /// used, as Docker reports it.
    Bad,
}

/// One pattern of a [`PatternMatcher`].
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    /// The pattern, cleaned, without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether it is an exception (`!pattern`).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The pattern as moby compiles it: an exact name, a `dir/**` prefix, a `**/x` suffix, or
    /// a regular expression (`*` and `?` do not cross `/`, `**` does).
    fn compile(cleaned: &str) -> Kind {
        #[derive(PartialEq)]
        enum Detected {
            Exact,
            Prefix,
            Suffix,
            Regex,
        }
        let mut re = String::from("^");
        let mut detected = Detected::Exact;
        let mut chars = cleaned.chars().peekable();
        let mut i = 0;
        while let Some(ch) = chars.next() {
            match ch {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    // `**/` is `**`.
                    if chars.peek() == Some(&'/') {
                        chars.next();
                    }
                    if chars.peek().is_none() {
                        // A trailing `**` matches everything below, as in .gitignore.
                        if detected == Detected::Exact {
                            detected = Detected::Prefix;
                        } else {
                            re.push_str(".*");
                            detected = Detected::Regex;
                        }
                    } else {
                        // Any number of directories, none included.
                        re.push_str("(.*/)?");
                        detected = Detected::Regex;
                    }
                    if i == 0 {
                        detected = Detected::Suffix;
                    }
                }
                '*' => {
                    re.push_str("[^/]*");
                    detected = Detected::Regex;
                }
                '?' => {
                    re.push_str("[^/]");
                    detected = Detected::Regex;
                }
                '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                    re.push('\\');
                    re.push(ch);
                }
                '\\' => match chars.next() {
                    Some(next) => {
                        re.push('\\');
                        re.push(next);
                        detected = Detected::Regex;
                    }
                    None => re.push('\\'),
                },
                '[' | ']' => {
                    re.push(ch);
                    detected = Detected::Regex;
                }
                _ => re.push(ch),
            }
            i += 1;
        }
        match detected {
            Detected::Exact => Kind::Exact,
            Detected::Prefix => Kind::Prefix,
            Detected::Suffix => Kind::Suffix,
            Detected::Regex => {
                re.push('$');
                match Regex::new(&re) {
                    Ok(r) => Kind::Regex(r),
                    Err(_) => Kind::Bad,
                }
            }
        }
    }

    fn matches(&self, path: &str) -> Result<bool, PatternError> {
        match &self.kind {
            Kind::Exact => Ok(path == self.cleaned),
            Kind::Prefix => Ok(path.starts_with(&self.cleaned[..self.cleaned.len() - 2])),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                if path.ends_with(suffix) {
                    return Ok(true);
                }
                // `**/foo` matches `foo`.
                Ok(suffix.strip_prefix('/').is_some_and(|rest| path == rest))
            }
            Kind::Regex(re) => Ok(re.is_match(path)),
            Kind::Bad => Err(PatternError::BadPattern),
        }
    }
}

/// What a directory matched, for matching the paths below it without looking at it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A list of patterns, checked in order.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    prefix_only_exceptions: bool,
}

impl PatternMatcher {
    /// Compiles `patterns` (as [`parse_ignore_file`] returns them; blank ones are skipped).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternMatcher, PatternError> {
        let mut out = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        let mut prefix_only_exceptions = true;
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(PatternError::IllegalExclusion);
                }
                p.remove(0);
                exclusions = true;
                prefix_only_exceptions &= !has_wildcards(&p);
            }
            if !go_match_syntax_ok(&p) {
                return Err(PatternError::BadPattern);
            }
            let kind = Pattern::compile(&p);
            out.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(PatternMatcher {
            patterns: out,
            exclusions,
            prefix_only_exceptions,
        })
    }

    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is an exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` (slash-separated, relative to the context) is excluded: the last
    /// pattern that matches it or one of its parent directories decides.
    pub fn matches(&self, path: &str) -> Result<bool, PatternError> {
        let parents = parent_dirs(path);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut m = pattern.matches(path)?;
            if !m {
                m = parents
                    .iter()
                    .any(|parent| pattern.matches(parent).unwrap_or(false));
            }
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether `path` itself (not a parent) is excluded.
    pub fn matches_exact(&self, path: &str) -> Result<bool, PatternError> {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(path)? {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// [`PatternMatcher::matches`] for a tree walk: `parent` is what the directory holding
    /// `path` matched (the default value for a path at the root). Returns the result and
    /// what `path` matched, for its own children.
    pub fn matches_with_parent(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        // Information from another matcher is no information.
        let known: &[bool] = if parent.parent_matched.len() == self.patterns.len() {
            &parent.parent_matched
        } else {
            &[]
        };
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let parents = if known.is_empty() {
            parent_dirs(path)
        } else {
            Vec::new()
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = known.get(i).copied().unwrap_or(false);
            if !m {
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches(path)?;
                if !m {
                    m = parents
                        .iter()
                        .any(|parent| pattern.matches(parent).unwrap_or(false));
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }

    /// For a directory that is excluded: whether a walk must still go into it because an
    /// exception may match something below it (always, when an exception has wildcards).
    pub fn may_have_exceptions_below(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        if !self.prefix_only_exceptions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.cleaned).starts_with(&dir_slash))
    }
}

/// The parent directories of `path`, outermost first (`a/b/c` → `a`, `a/b`), as Go's
/// `filepath.Dir` then split.
fn parent_dirs(path: &str) -> Vec<String> {
    let dir = match path.rfind('/') {
        Some(i) => go_clean(&path[..=i]),
        None => ".".to_string(),
    };
    if dir == "." {
        return Vec::new();
    }
    let parts: Vec<&str> = dir.split('/').collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

fn has_wildcards(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go's `path.Clean`: `//` and `.` elements dropped, `..` applied, no trailing `/`, `.` for
/// nothing.
pub(crate) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Whether Go's `filepath.Match` accepts `pattern` (it checks the whole pattern): a `\` must
/// escape something; a `[…]` class must be closed, hold at least one range, and its ranges
/// must not start with `-` or `]` or end early.
fn go_match_syntax_ok(pattern: &str) -> bool {
    let c: Vec<char> = pattern.chars().collect();
    // One class element (`a`, `\]`); the index after it, which must not be the end.
    let esc = |mut i: usize| -> Option<usize> {
        if i >= c.len() || c[i] == '-' || c[i] == ']' {
            return None;
        }
        if c[i] == '\\' {
            i += 1;
            if i >= c.len() {
                return None;
            }
        }
        i += 1;
        (i < c.len()).then_some(i)
    };
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                if i + 1 >= c.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if c.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if c.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    let Some(next) = esc(i) else { return false };
                    i = next;
                    if c[i] == '-' {
                        let Some(next) = esc(i + 1) else { return false };
                        i = next;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby's `Matches(file, patterns)` for one path: a cleaned path, `.` never excluded.
    fn matches(file: &str, patterns: &[&str]) -> Result<bool, PatternError> {
        let pm = PatternMatcher::new(patterns)?;
        let file = go_clean(file);
        if file == "." {
            return Ok(false);
        }
        pm.matches(&file)
    }

    #[test]
    fn simple_cases() {
        assert!(matches("fileutils.go", &["*"]).unwrap());
        assert!(matches("fileutils.go", &["*.go"]).unwrap());
        assert!(matches("fileutils.go", &["!fileutils.go", "*.go"]).unwrap());
        assert!(!matches("docs/README.md", &["docs", "!docs/README.md"]).unwrap());
        assert!(!matches("docs/README.md", &["docs/", "!docs/README.md"]).unwrap());
        assert!(!matches("docs/README.md", &["docs/*", "!docs/README.md"]).unwrap());
        assert!(!matches("fileutils.go", &["*.go", "!fileutils.go"]).unwrap());
        assert!(!matches(".", &["*.go"]).unwrap());
        assert_eq!(
            matches("fileutils.go", &["!"]).unwrap_err(),
            PatternError::IllegalExclusion
        );
        assert!(!matches("/any/path/there", &[]).unwrap());
        assert_eq!(
            matches("/any/path/there", &["["]).unwrap_err(),
            PatternError::BadPattern
        );
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Want {
        Fail,
        Exact,
        Inexact,
    }
    use Want::{Exact, Fail, Inexact};

    const TESTS: &[(&str, &str, Want)] = &[
        ("**", "file", Exact),
        ("**", "file/", Exact),
        ("**/", "file", Exact),
        ("**/", "file/", Exact),
        ("**", "/", Exact),
        ("**/", "/", Exact),
        ("**", "dir/file", Exact),
        ("**/", "dir/file", Exact),
        ("**", "dir/file/", Exact),
        ("**/", "dir/file/", Exact),
        ("**/**", "dir/file", Exact),
        ("**/**", "dir/file/", Exact),
        ("dir/**", "dir/file", Exact),
        ("dir/**", "dir/file/", Exact),
        ("dir/**", "dir/dir2/file", Exact),
        ("dir/**", "dir/dir2/file/", Exact),
        ("**/dir", "dir", Exact),
        ("**/dir", "dir/file", Inexact),
        ("**/dir2/*", "dir/dir2/file", Exact),
        ("**/dir2/*", "dir/dir2/file/", Inexact),
        ("**/dir2/**", "dir/dir2/dir3/file", Exact),
        ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
        ("**file", "file", Exact),
        ("**file", "dir/file", Exact),
        ("**/file", "dir/file", Exact),
        ("**file", "dir/dir/file", Exact),
        ("**/file", "dir/dir/file", Exact),
        ("**/file*", "dir/dir/file", Exact),
        ("**/file*", "dir/dir/file.txt", Exact),
        ("**/file*txt", "dir/dir/file.txt", Exact),
        ("**/file*.txt", "dir/dir/file.txt", Exact),
        ("**/file*.txt*", "dir/dir/file.txt", Exact),
        ("**/**/*.txt", "dir/dir/file.txt", Exact),
        ("**/**/*.txt2", "dir/dir/file.txt", Fail),
        ("**/*.txt", "file.txt", Exact),
        ("**/**/*.txt", "file.txt", Exact),
        ("a**/*.txt", "a/file.txt", Exact),
        ("a**/*.txt", "a/dir/file.txt", Exact),
        ("a**/*.txt", "a/dir/dir/file.txt", Exact),
        ("a/*.txt", "a/dir/file.txt", Fail),
        ("a/*.txt", "a/file.txt", Exact),
        ("a/*.txt**", "a/file.txt", Exact),
        ("a[b-d]e", "ae", Fail),
        ("a[b-d]e", "ace", Exact),
        ("a[b-d]e", "aae", Fail),
        ("a[^b-d]e", "aze", Exact),
        (".*", ".foo", Exact),
        (".*", "foo", Fail),
        ("abc.def", "abcdef", Fail),
        ("abc.def", "abc.def", Exact),
        ("abc.def", "abcZdef", Fail),
        ("abc?def", "abcZdef", Exact),
        ("abc?def", "abcdef", Fail),
        ("**/foo/bar", "foo/bar", Exact),
        ("**/foo/bar", "dir/foo/bar", Exact),
        ("**/foo/bar", "dir/dir2/foo/bar", Exact),
        ("abc/**", "abc", Fail),
        ("abc/**", "abc/def", Exact),
        ("abc/**", "abc/def/ghi", Exact),
        ("**/.foo", ".foo", Exact),
        ("**/.foo", "bar.foo", Fail),
        ("a(b)c/def", "a(b)c/def", Exact),
        ("a(b)c/def", "a(b)c/xyz", Fail),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Exact,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Exact,
        ),
        ("a\\\\", "a\\", Exact),
        ("a\\*b", "a*b", Exact),
    ];

    const MULTI: &[(&[&str], &str, Want)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", Fail),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            Exact,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Fail,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Fail,
        ),
    ];

    /// Walks the parents of `text` one by one, as a tree walk would.
    fn walked(pm: &PatternMatcher, text: &str) -> bool {
        let mut info = MatchInfo::default();
        for parent in parent_dirs(text) {
            info = pm.matches_with_parent(&parent, &info).unwrap().1;
        }
        pm.matches_with_parent(text, &info).unwrap().0
    }

    #[test]
    fn patternmatcher_vectors() {
        for &(pattern, text, want) in TESTS {
            let pm = PatternMatcher::new(&[pattern]).unwrap();
            let what = format!("pattern={pattern:?} text={text:?}");
            assert_eq!(
                pm.matches_exact(text).unwrap(),
                want == Exact,
                "exact {what}"
            );
            assert_eq!(pm.matches(text).unwrap(), want != Fail, "or-parent {what}");
            assert_eq!(walked(&pm, text), want != Fail, "walked {what}");
            assert_eq!(
                pm.matches_with_parent(text, &MatchInfo::default())
                    .unwrap()
                    .0,
                want != Fail,
                "no-context {what}"
            );
        }
        for &(patterns, text, want) in MULTI {
            let pm = PatternMatcher::new(patterns).unwrap();
            let what = format!("patterns={patterns:?} text={text:?}");
            assert_eq!(pm.matches(text).unwrap(), want != Fail, "or-parent {what}");
            assert_eq!(walked(&pm, text), want != Fail, "walked {what}");
            assert_eq!(
                pm.matches_with_parent(text, &MatchInfo::default())
                    .unwrap()
                    .0,
                want != Fail,
                "no-context {what}"
            );
        }
    }

    #[test]
    fn go_filepath_match_vectors() {
        let bad = Err(PatternError::BadPattern);
        let cases: &[(&str, &str, Result<bool, PatternError>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(true)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", bad.clone()),
            ("[-]", "-", bad.clone()),
            ("[x-]", "x", bad.clone()),
            ("[x-]", "-", bad.clone()),
            ("[x-]", "z", bad.clone()),
            ("[-x]", "x", bad.clone()),
            ("[-x]", "-", bad.clone()),
            ("[-x]", "a", bad.clone()),
            ("\\", "a", bad.clone()),
            ("[a-b-c]", "a", bad.clone()),
            ("[", "a", bad.clone()),
            ("[^", "a", bad.clone()),
            ("[^bc", "a", bad.clone()),
            ("a[", "a", bad.clone()),
            ("a[", "ab", bad.clone()),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, s, want) in cases {
            assert_eq!(&matches(s, &[pattern]), want, "Match({pattern:?}, {s:?})");
        }
    }

    #[test]
    fn pattern_kinds() {
        let kind = |p: &str| match Pattern::compile(&go_clean(p)) {
            Kind::Exact => "exact".to_string(),
            Kind::Prefix => "prefix".to_string(),
            Kind::Suffix => "suffix".to_string(),
            Kind::Regex(r) => r.as_str().to_string(),
            Kind::Bad => "bad".to_string(),
        };
        let cases = [
            ("*", "^[^/]*$"),
            ("file*", "^file[^/]*$"),
            ("*file", "^[^/]*file$"),
            ("a*/b", "^a[^/]*/b$"),
            ("**", "suffix"),
            ("**/**", "^(.*/)?.*$"),
            ("dir/**", "prefix"),
            ("**/dir", "suffix"),
            ("**/dir2/*", "^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", "^(.*/)?dir2/.*$"),
            ("**file", "suffix"),
            ("**/file*txt", "^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", "^(.*/)?(.*/)?[^/]*\\.txt$"),
            ("a[b-d]e", "^a[b-d]e$"),
            (".*", "^\\.[^/]*$"),
            ("abc.def", "exact"),
            ("abc?def", "^abc[^/]def$"),
            ("**/foo/bar", "suffix"),
            ("a(b)c/def", "exact"),
            ("a.|)$(}+{bc", "exact"),
        ];
        for (pattern, want) in cases {
            assert_eq!(kind(pattern), want, "{pattern}");
        }
    }

    #[test]
    fn a_regex_go_accepts_but_cannot_compile_fails_when_used() {
        let pm = PatternMatcher::new(&["[Local-Only]/"]).unwrap();
        assert_eq!(pm.matches("x").unwrap_err(), PatternError::BadPattern);
        assert_eq!(pm.matches("x").unwrap_err(), PatternError::BadPattern);
    }

    #[test]
    fn patterns_are_cleaned_and_trimmed() {
        let pm = PatternMatcher::new(&["docs", "config", ""]).unwrap();
        assert_eq!(pm.patterns().len(), 2);
        assert!(!pm.has_exclusions());
        for patterns in [
            ["docs", "!docs/README.md"],
            ["docs", "  !docs/README.md"],
            ["docs", "!docs/README.md  "],
        ] {
            assert!(PatternMatcher::new(&patterns).unwrap().has_exclusions());
        }
        let pm = PatternMatcher::new(&["./a/../b/"]).unwrap();
        assert_eq!(pm.patterns()[0].as_str(), "b");
        assert!(pm.matches("b/c").unwrap());
    }

    #[test]
    fn ignore_file_lines() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            parse_ignore_file(content),
            vec![
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert_eq!(
            parse_ignore_file("\u{feff}./x/\r\n  # not a comment\n"),
            vec!["x", "# not a comment"]
        );
        assert!(parse_ignore_file("").is_empty());
    }

    #[test]
    fn build_files_are_kept() {
        let patterns = vec!["*".to_string()];
        assert_eq!(
            keep_build_files(patterns.clone(), Some("Dockerfile")),
            vec!["*", "!.dockerignore", "!Dockerfile"]
        );
        assert_eq!(
            keep_build_files(patterns, None),
            vec!["*", "!.dockerignore"]
        );
        let patterns = vec!["node_modules".to_string()];
        assert_eq!(
            keep_build_files(patterns, Some("build/Dockerfile")),
            vec!["node_modules"]
        );
    }

    #[test]
    fn dockerfile_specific_ignore_file_comes_first() {
        let ctx = Path::new("/ctx");
        assert_eq!(
            ignore_file_candidates(ctx, Some(Path::new("build/Dockerfile"))),
            vec![
                PathBuf::from("/ctx/build/Dockerfile.dockerignore"),
                PathBuf::from("/ctx/.dockerignore")
            ]
        );
        assert_eq!(
            ignore_file_candidates(ctx, Some(Path::new("/elsewhere/app.Dockerfile"))),
            vec![
                PathBuf::from("/elsewhere/app.Dockerfile.dockerignore"),
                PathBuf::from("/ctx/.dockerignore")
            ]
        );
        assert_eq!(
            ignore_file_candidates(ctx, Some(Path::new("-"))),
            vec![PathBuf::from("/ctx/.dockerignore")]
        );
    }

    #[test]
    fn excluded_directories_are_walked_only_when_an_exception_may_match_below() {
        let pm = PatternMatcher::new(&["vendor", "node_modules", "!vendor/keep/me.txt"]).unwrap();
        assert!(pm.matches("vendor").unwrap());
        assert!(pm.may_have_exceptions_below("vendor"));
        assert!(pm.may_have_exceptions_below("vendor/keep"));
        assert!(!pm.may_have_exceptions_below("node_modules"));
        assert!(!pm.matches("vendor/keep/me.txt").unwrap());
        assert!(pm.matches("vendor/keep/other.txt").unwrap());
        let pm = PatternMatcher::new(&["*", "!**/*.go"]).unwrap();
        assert!(pm.may_have_exceptions_below("anything"));
        assert!(!pm.matches("a/b/c.go").unwrap());
        let pm = PatternMatcher::new(&["vendor"]).unwrap();
        assert!(!pm.may_have_exceptions_below("vendor"));
    }

    #[test]
    fn cleans_as_go() {
        for (input, want) in [
            ("", "."),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/./b/../c", "a/c"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/..", "."),
            ("!./foo", "!./foo"),
        ] {
            assert_eq!(go_clean(input), want, "{input}");
        }
    }
}
