//! The one place that installs a tracing subscriber (libraries only emit events).
use tracing_subscriber::EnvFilter;

/// Logs to stderr at `level` (`debug`, `info`, `warn`, `error`), or as `BERTH_LOG` says.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
