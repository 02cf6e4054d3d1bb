//! Shell completions (`berth completion bash|zsh|fish`, docker's command) and man pages, both
//! generated from the command line's own clap definitions, so they never drift from it. The
//! binary passes the whole command (the CLI plus `berth daemon`); the package ships the result.
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout (a closed stdout is not an error).
pub fn print_completion(command: &mut clap::Command, shell: Shell) {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, command, "berth", &mut script);
    let _ = std::io::stdout().write_all(&script);
}

/// Parses `bash`, `zsh` or `fish` (and the other shells clap_complete knows).
pub fn parse_shell(name: &str) -> Result<Shell, String> {
    name.parse::<Shell>()
        .map_err(|_| format!("unsupported shell {name:?}: use bash, zsh or fish"))
}

/// Writes `berth.1` and one page per visible subcommand (`berth-run.1`,
/// `berth-image-bootstrap.1`, …) into `dir`; `berth daemon` is in section 8. Returns the
/// files written.
pub fn write_man_pages(command: &clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut stack = vec![("berth".to_owned(), command.clone())];
    while let Some((name, command)) = stack.pop() {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        let section = if name == "berth-daemon" { "8" } else { "1" };
        let page = command.clone().bin_name(name.replace('-', " "));
        let path = dir.join(format!("{name}.{section}"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.clone())
            .section(section)
            .render(&mut out)?;
        std::fs::write(&path, out)?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_the_subcommands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = crate::command().subcommand(clap::Command::new("daemon").about("d"));
        let pages = write_man_pages(&command, dir.path()).expect("render");
        let names: Vec<String> = pages
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        for expected in [
            "berth.1",
            "berth-run.1",
            "berth-image-bootstrap.1",
            "berth-daemon.8",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        let run = std::fs::read_to_string(dir.path().join("berth-run.1")).expect("read");
        assert!(
            run.contains(".TH berth-run 1"),
            "{}",
            &run[..200.min(run.len())]
        );
        assert!(run.contains("\\-\\-rm"), "the flags are documented");
    }

    #[test]
    fn shells() {
        assert_eq!(parse_shell("bash"), Ok(Shell::Bash));
        assert_eq!(parse_shell("fish"), Ok(Shell::Fish));
        assert!(parse_shell("cmd.exe").is_err());
    }
}
