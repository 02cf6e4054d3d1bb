//! The one place that installs a tracing subscriber (libraries only emit events).
//!
//! Colours only on a terminal. Under systemd (`JOURNAL_STREAM` set: stderr is journald's
//! stream) lines carry no timestamps (journald stamps them) but a `<N>` syslog priority
//! prefix (`sd-daemon(3)`), so `journalctl -p warning` selects by level.
use std::io::IsTerminal;
use std::sync::Arc;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Logs to stderr at `level` (`debug`, `info`, `warn`, `error`), or as `BERTH_LOG` says.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// As [`init`], for the daemon: journald's format under systemd, and a function that changes
/// the level later (a `SIGHUP` reload of `debug`). `BERTH_LOG`, when set, always wins.
pub fn init_daemon(level: &str) -> Arc<dyn Fn(&str) + Send + Sync> {
    let fixed = std::env::var("BERTH_LOG").is_ok();
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    let set: Box<dyn Fn(EnvFilter) + Send + Sync> = if journal {
        let builder = builder
            .event_format(Journal(tracing_subscriber::fmt::format().without_time()))
            .with_filter_reloading();
        let handle = builder.reload_handle();
        let _ = builder.try_init();
        Box::new(move |filter| {
            let _ = handle.reload(filter);
        })
    } else {
        let builder = builder.with_filter_reloading();
        let handle = builder.reload_handle();
        let _ = builder.try_init();
        Box::new(move |filter| {
            let _ = handle.reload(filter);
        })
    };
    Arc::new(move |level: &str| {
        if !fixed {
            set(EnvFilter::new(level));
        }
    })
}

/// The default format behind an `sd-daemon(3)` priority prefix.
struct Journal(Format<tracing_subscriber::fmt::format::Full, ()>);

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
