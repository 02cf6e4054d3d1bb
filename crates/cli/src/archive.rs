//! `save` and `load`: image archives to and from files or pipes.
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::http::{Body, Client};
use crate::progress::{self, Renderer};
use crate::{CliError, CmdResult};

/// `save`.
#[derive(Debug, Args, Clone)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Images (names, name:tag or ids).
    #[arg(required = true)]
    images: Vec<String>,
}

/// `load`.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short = 'i', long)]
    input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// `berth save`: `GET /images/get`, the body copied to the file or stdout.
pub fn save(c: &Client, a: SaveArgs) -> CmdResult {
    if a.output.is_none() && crate::tty::stdout_is_tty() {
        return Err(CliError::msg(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    let query: Vec<(&str, String)> = a.images.iter().map(|i| ("names", i.clone())).collect();
    let mut resp = c
        .send("GET", "/images/get", &query, Body::Empty, false)?
        .check()?;
    match &a.output {
        None => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            copy(&mut resp, &mut out).map_err(|e| CliError::msg(format!("save: {e}")))?;
            out.flush()
                .map_err(|e| CliError::msg(format!("save: {e}")))?;
        }
        Some(path) => write_file(path, &mut resp)?,
    }
    Ok(0)
}

/// Writes `body` to a temp file beside `path`, renamed over it once complete
/// ([`berth_fs::write_atomic_with`]): an interrupted save never leaves a truncated archive
/// under the name asked for. Like docker's CLI, no fsync.
fn write_file(path: &Path, body: &mut dyn Read) -> Result<(), CliError> {
    berth_fs::write_atomic_with(path, berth_fs::Durability::Volatile, |file| {
        copy(body, file).map(drop)
    })
    .map_err(|e| {
        CliError::msg(format!(
            "failed to save image: {}: {}",
            path.display(),
            e.source
        ))
    })
}

/// Copies in 1 MiB reads (the response reader hands large reads straight to the socket).
fn copy(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buffer[..n])?;
        total += n as u64;
    }
}

/// `berth load`: the archive as the body of `POST /images/load`, the answer rendered.
pub fn load(c: &Client, a: LoadArgs) -> CmdResult {
    let mut input: Box<dyn Read> = match &a.input {
        Some(path) => Box::new(
            File::open(path).map_err(|e| CliError::msg(format!("open {}: {e}", path.display())))?,
        ),
        None => {
            if crate::tty::stdin_is_tty() {
                return Err(CliError::msg(
                    "requested load from stdin, but stdin is empty",
                ));
            }
            Box::new(io::stdin().lock())
        }
    };
    // Like docker: without a terminal, only the result lines.
    let quiet = a.quiet || !crate::tty::stdout_is_tty();
    let resp = c
        .send(
            "POST",
            "/images/load",
            &[("quiet", if quiet { "1" } else { "0" }.to_string())],
            Body::Stream(&mut input, "application/x-tar"),
            false,
        )?
        .check()?;
    let mut renderer = Renderer::stdout();
    progress::display(resp, &mut renderer)?;
    Ok(0)
}
