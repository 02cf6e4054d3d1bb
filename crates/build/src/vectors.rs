//! BuildKit's test vectors (`testdata/`, Apache-2.0, see `testdata/LICENSE`): every parser
//! test file, every negative case, every line of `envVarTest` and `wordsTest`.
use std::fs;
use std::path::{Path, PathBuf};

use crate::parser;
use crate::shell::Lex;
use crate::stage::Dockerfile;

fn testdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    assert!(
        dir.join("parser/testfiles").is_dir() && dir.join("shell/envVarTest").is_file(),
        "the test vectors are missing from {}",
        dir.display()
    );
    dir
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn parser_testfiles_parse_to_their_result() {
    let dirs = case_dirs(&testdata().join("parser/testfiles"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let text = fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        let want = fs::read_to_string(dir.join("result")).expect("result");
        match parser::parse(&text) {
            Ok(ast) => {
                let got = ast.dump() + "\n";
                if got != want {
                    failures.push(format!(
                        "{}:\n--- want\n{want}--- got\n{got}",
                        dir.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    println!(
        "parser testfiles: {} of {} pass",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert!(dirs.len() >= 30, "too few cases: {}", dirs.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parser_negative_cases_are_refused() {
    let dirs = case_dirs(&testdata().join("parser/testfiles-negative"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let text = fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        if let Ok(ast) = parser::parse(&text) {
            failures.push(format!("{} parsed: {}", dir.display(), ast.dump()));
        }
        if Dockerfile::parse(&text).is_ok() {
            failures.push(format!("{}: Dockerfile::parse accepted it", dir.display()));
        }
    }
    println!(
        "parser negative cases: {} of {} refused",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert!(dirs.len() >= 4, "too few cases: {}", dirs.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn env_var_test_expands_every_line() {
    let text = fs::read_to_string(testdata().join("shell/envVarTest")).expect("envVarTest");
    let env: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lex = Lex::new('\\');
    let (mut run, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "line {}: {line:?}", n + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        match platform {
            "W" => {
                skipped += 1;
                continue;
            }
            "A" | "U" => {}
            other => panic!("line {}: bad platform {other:?}", n + 1),
        }
        run += 1;
        let got = lex.process_word(source, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => expected != "error" && word == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {source:?} gave {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    println!(
        "envVarTest: {} of {run} lines pass ({skipped} Windows-only lines skipped)",
        run - failures.len()
    );
    assert!(run >= 150, "too few lines: {run}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_test_splits_every_line() {
    let text = fs::read_to_string(testdata().join("shell/wordsTest")).expect("wordsTest");
    let lex = Lex::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut run = 0;
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start_matches(' ');
            let (k, v) = assignment.split_once('=').unwrap_or((assignment, ""));
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "line {}: {line:?}", n + 1);
        let source = parts[0].trim();
        let expected: Vec<&str> = parts[1].trim_start_matches(' ').split(',').collect();
        run += 1;
        let got = lex
            .process_words(source, &env)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!(
                "line {}: {source:?} gave {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    println!("wordsTest: {} of {run} lines pass", run - failures.len());
    assert!(run >= 20, "too few lines: {run}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The parser test files are about syntax; as instructions, the ones that are not Dockerfiles
/// a build accepts are refused with Docker's messages, and the others plan and expand.
#[test]
fn parser_testfiles_as_instructions() {
    let refused = [
        (
            "flags",
            "dockerfile parse error on line 3: unknown flag: user",
        ),
        (
            "health",
            "dockerfile parse error on line 4: HEALTHCHECK requires at least one argument",
        ),
        (
            "json",
            "dockerfile parse error on line 1: no build stage in current context",
        ),
    ];
    // Quotes Docker's parser keeps but its expansion cannot close.
    let unexpandable = [
        (
            "env",
            "dockerfile line 12: failed to process \"'a\\'b'\": unexpected end of statement while looking for matching single-quote",
        ),
        (
            "escapes",
            "dockerfile line 6: failed to process \"\\conf\\\\\"\": unexpected end of statement while looking for matching double-quote",
        ),
    ];
    let mut checked = 0;
    for dir in case_dirs(&testdata().join("parser/testfiles")) {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        let parsed = Dockerfile::parse(&text);
        if let Some((_, want)) = refused.iter().find(|(n, _)| *n == name) {
            assert_eq!(parsed.unwrap_err().to_string(), *want, "{name}");
            checked += 1;
            continue;
        }
        if name.starts_with("jeztah-") {
            // A lone CMD: no FROM.
            assert!(parsed.is_err(), "{name}");
            checked += 1;
            continue;
        }
        let df = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        let plan = df
            .plan(&crate::BuildOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let lex = df.lex();
        let env = plan.stage_env(&[]);
        let errors: Vec<String> = df
            .stages
            .iter()
            .flat_map(|s| s.instructions.iter())
            .filter_map(|i| i.expand(&lex, &env).err().map(|e| e.to_string()))
            .collect();
        match unexpandable.iter().find(|(n, _)| *n == name) {
            Some((_, want)) => assert_eq!(errors, vec![want.to_string()], "{name}"),
            None => assert!(errors.is_empty(), "{name}: {errors:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 30);
}
