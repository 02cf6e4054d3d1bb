//! `berth registry serve` and `berth registry gc`: a registry of the OCI distribution spec
//! 1.1 over a directory, with v1 search, htpasswd + token auth and TLS.
//!
//! [`storage`] owns the directory (its layout is drawn there); [`http`] is the thin HTTP
//! layer over it; [`auth`] decides who may do what; [`listen`] accepts connections (plain
//! or TLS) and serves them with hyper. The binary parses the command line with
//! [`parse_args`] and runs [`serve`] or [`collect_garbage`].

pub mod auth;
pub mod error;
pub mod http;
pub mod listen;
pub mod storage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use error::{RegistryError, StartError};
pub use storage::{GcOptions, GcReport, Store};

/// Upload sessions untouched this long are removed (distribution's default: a week).
pub const UPLOAD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// `berth registry …`
#[derive(Debug, Parser)]
#[command(
    name = "berth registry",
    about = "Run or maintain a container image registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `berth registry` was asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a registry (OCI distribution spec 1.1, plus v1 search).
    Serve(ServeConfig),
    /// Remove blobs no manifest references.
    Gc(GcConfig),
}

/// `berth registry serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on (`0.0.0.0:5000` to serve other hosts; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// Directory holding the registry's content.
    #[arg(long)]
    pub root: PathBuf,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Apache htpasswd file (bcrypt entries, `htpasswd -B`): require credentials.
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// With --htpasswd: let clients without credentials pull.
    #[arg(long, requires = "htpasswd")]
    pub anonymous_pull: bool,
    /// Refuse every write (uploads, manifest puts, deletes).
    #[arg(long)]
    pub read_only: bool,
    /// The service name in auth challenges and tokens.
    #[arg(long, default_value = "berth-registry", value_parser = parse_service)]
    pub service: String,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 300)]
    pub token_ttl: u64,
    /// Log level (`error`, `warn`, `info`, `debug`).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// `berth registry gc` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct GcConfig {
    /// Directory holding the registry's content.
    #[arg(long)]
    pub root: PathBuf,
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove manifests that no tag reaches (distribution's `garbage-collect -m`).
    #[arg(long, short = 'm')]
    pub delete_untagged: bool,
    /// Keep blobs and manifests written this recently (a push in progress): `90s`, `10m`,
    /// `1h`, `0s`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub grace: Duration,
}

fn parse_service(value: &str) -> Result<String, String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        Ok(value.to_owned())
    } else {
        Err("a service name is visible ASCII without quotes".to_owned())
    }
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {value:?} (e.g. 30s, 10m, 1h)"))?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86400,
        _ => return Err(format!("invalid duration unit in {value:?} (s, m, h, d)")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Parses the arguments after `berth registry`. Errors (and `--help`) are clap's: print
/// them and exit with their code.
pub fn parse_args(args: &[String]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("berth registry".to_owned()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).map(|cli| cli.command)
}

/// Serves until SIGTERM or SIGINT. `ready` is called with the address once it is bound.
pub async fn serve(
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr, bool),
) -> Result<(), StartError> {
    let store = Arc::new(
        storage::Store::open(&config.root).map_err(|source| StartError::Store { source })?,
    );
    let auth = match &config.htpasswd {
        Some(path) => {
            let key = store
                .token_key()
                .map_err(|source| StartError::Store { source })?;
            Some(auth::Auth::load(
                path,
                key,
                auth::AuthOptions {
                    anonymous_pull: config.anonymous_pull,
                    service: config.service.clone(),
                    token_ttl: Duration::from_secs(config.token_ttl.max(1)),
                },
            )?)
        }
        None => None,
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(listen::tls_acceptor(cert, key)?),
        _ => None,
    };
    let state = Arc::new(http::AppState::new(
        store.clone(),
        auth,
        config.read_only,
        tls.is_some(),
    ));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.addr.to_string(),
        source,
    })?;
    tracing::info!(addr = %local, tls = tls.is_some(), root = %config.root.display(), "registry serving");
    ready(local, tls.is_some());
    let purge_state = state.clone();
    let purger = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let state = purge_state.clone();
            let purged = tokio::task::spawn_blocking(move || {
                let purged = state.store.purge_uploads(UPLOAD_MAX_AGE);
                let store = state.store.clone();
                state.uploads.retain(|id| store.upload_exists(id));
                purged
            })
            .await;
            match purged {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(sessions = n, "removed stale upload sessions"),
                Ok(Err(error)) => tracing::warn!(%error, "removing stale upload sessions"),
                Err(_) => tracing::warn!("the upload purge task died"),
            }
        }
    });
    let result = listen::serve_until_signal(listener, tls, http::router(state)).await;
    purger.abort();
    result
}

/// Runs `registry gc` over the store at `config.root`.
pub fn collect_garbage(config: &GcConfig) -> Result<GcReport, StartError> {
    let store = storage::Store::open_existing(&config.root)
        .map_err(|source| StartError::Store { source })?;
    store
        .collect_garbage(&GcOptions {
            dry_run: config.dry_run,
            delete_untagged: config.delete_untagged,
            grace: config.grace,
        })
        .map_err(|source| StartError::Store { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_commands() {
        let Command::Serve(serve) = parse_args(&args(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--root",
            "/r",
            "--htpasswd",
            "/h",
            "--anonymous-pull",
            "--read-only",
        ]))
        .expect("serve") else {
            panic!("not serve");
        };
        assert_eq!(serve.addr.port(), 0);
        assert!(serve.read_only && serve.anonymous_pull);
        assert_eq!(serve.service, "berth-registry");
        assert!(parse_args(&args(&["serve", "--root", "/r", "--tls-cert", "/c"])).is_err());
        assert!(parse_args(&args(&["serve", "--root", "/r", "--anonymous-pull"])).is_err());
        assert!(parse_args(&args(&["serve", "--root", "/r", "--service", "a\"b"])).is_err());
        let Command::Gc(gc) =
            parse_args(&args(&["gc", "--root", "/r", "-m", "--grace", "10m"])).expect("gc")
        else {
            panic!("not gc");
        };
        assert!(gc.delete_untagged && !gc.dry_run);
        assert_eq!(gc.grace, Duration::from_secs(600));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
