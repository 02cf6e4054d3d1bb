//! The one `berth` binary: the docker-compatible CLI, and, by its first argument, the daemon
//! (`berth daemon`), a container monitor (`berth monitor <run_dir>`, started by the daemon) or
//! the OCI runtime with runc's command-line contract (`berth oci …`).
mod observability;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("monitor") => match args.get(2) {
            Some(dir) => berth_monitor::run(Path::new(dir)),
            None => {
                eprintln!("usage: berth monitor RUN_DIR");
                2
            }
        },
        Some("oci") => berth_runtime::oci_main(&args[2..]),
        Some("daemon") => daemon(&args[2..]),
        _ => berth_cli::main(args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn daemon(args: &[String]) -> i32 {
    let config = match berth_daemon::parse_args(args) {
        Ok(c) => c,
        // clap renders its own usage; `--help` is not a failure.
        Err(berth_daemon::DaemonError::Flags { source }) => {
            let _ = source.print();
            return if source.use_stderr() { 2 } else { 0 };
        }
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 2;
        }
    };
    observability::init(config.log_level.as_deref().unwrap_or("info"));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth daemon: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(berth_daemon::run(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            1
        }
    }
}
