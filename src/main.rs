//! The one `berth` binary: the docker-compatible CLI, and, by its first argument, the daemon
//! (`berth daemon`), a container monitor (`berth monitor <run_dir>`, started by the daemon),
//! the OCI runtime with runc's command-line contract (`berth oci …`) or the image registry
//! (`berth registry serve|gc`).
mod observability;

use std::path::Path;
use std::process::ExitCode;

/// The version this build reports: `BERTH_BUILD_VERSION` at build time (a release's, or the
/// upgrade test's second build), else the crate's.
const BUILD_VERSION: Option<&str> = option_env!("BERTH_BUILD_VERSION");

fn main() -> ExitCode {
    if let Some(version) = BUILD_VERSION.filter(|v| !v.is_empty()) {
        berth_api::set_build_version(version);
    }
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
        // Here rather than in the CLI: it works on the host, with the daemon's configuration.
        Some("system") if args.get(2).map(String::as_str) == Some("reset") => reset(&args[3..]),
        Some("registry") => registry(&args[2..]),
        // Here rather than in the CLI: the whole command, `berth daemon` included.
        Some("completion") if args.len() == 3 => completion(&args[2]),
        Some("__man") if args.len() == 3 => man_pages(Path::new(&args[2])),
        // Hidden; the package's postinst: hello-world into the data root, no daemon needed.
        Some("__bootstrap-hello-world") => bootstrap_hello_world(&args[2..]),
        _ => berth_cli::main(args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The whole command line: the CLI's commands, `berth system reset` and `berth daemon`.
fn whole_command() -> clap::Command {
    berth_cli::command()
        .mut_subcommand("system", |system| {
            system.subcommand(berth_daemon::reset_command().bin_name("berth system reset"))
        })
        .subcommand(
            berth_daemon::command()
                .name("daemon")
                .about("Run the berth daemon (serves the Docker Engine API)"),
        )
}

/// `berth system reset [-f] [--keep-data] [daemon flags]`: see `berth_daemon::reset`.
fn reset(args: &[String]) -> i32 {
    let (config, force, options) = match berth_daemon::parse_reset_args(args) {
        Ok(parsed) => parsed,
        Err(berth_daemon::DaemonError::Flags { source }) => {
            let _ = source.print();
            return if source.use_stderr() { 2 } else { 0 };
        }
        Err(e) => {
            eprintln!("berth system reset: {e}");
            return 2;
        }
    };
    if !force {
        let keeps = if options.keep_data {
            "keep images, volumes and containers' records"
        } else {
            "remove all images, volumes, networks, build cache and containers"
        };
        print!(
            "WARNING! This will stop all containers, remove berth's host state (nft table, \
             bridges, cgroups, mounts) and {keeps} under {} and {}.\n\
             Are you sure you want to continue? [y/N] ",
            config.data_root.display(),
            config.exec_root.display()
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return 1;
        }
    }
    match berth_daemon::reset::reset(&config, options, &mut std::io::stdout()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth system reset: {e}");
            1
        }
    }
}

/// `berth completion bash|zsh|fish`.
fn completion(shell: &str) -> i32 {
    match berth_cli::docs::parse_shell(shell) {
        Ok(shell) => {
            berth_cli::docs::print_completion(&mut whole_command(), shell);
            0
        }
        Err(e) => {
            eprintln!("berth completion: {e}");
            1
        }
    }
}

/// `berth __man DIR` (hidden; the package build uses it): man pages for every command.
fn man_pages(dir: &Path) -> i32 {
    match berth_cli::docs::write_man_pages(&whole_command(), dir) {
        Ok(pages) => {
            for page in pages {
                println!("{}", page.display());
            }
            0
        }
        Err(e) => {
            eprintln!("berth __man: {e}");
            1
        }
    }
}

/// `berth __bootstrap-hello-world [daemon flags]`: see `berth_daemon::hello::bootstrap_offline`.
fn bootstrap_hello_world(args: &[String]) -> i32 {
    use berth_daemon::hello::{Offline, REFERENCE, bootstrap_offline};
    let outcome = berth_daemon::parse_args(args).and_then(|config| bootstrap_offline(&config));
    match outcome {
        Ok(Offline::Built(id)) => println!("{REFERENCE}: built {id}"),
        Ok(Offline::Present(id)) => println!("{REFERENCE}: present {id}"),
        Ok(Offline::DaemonRunning(pid)) => {
            println!("{REFERENCE}: left to the running daemon (pid {pid})");
        }
        Err(e) => {
            eprintln!("berth: bootstrapping {REFERENCE}: {e}");
            return 1;
        }
    }
    0
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
    let set_log_level = observability::init_daemon(config.effective_log_level());
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
    let hooks = berth_daemon::Hooks {
        set_log_level: Some(set_log_level),
    };
    match runtime.block_on(berth_daemon::run_with(config, hooks)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            1
        }
    }
}

fn registry(args: &[String]) -> i32 {
    use berth_distribution::server::{self, Command};
    let command = match server::parse_args(args) {
        Ok(command) => command,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match command {
        Command::Serve(config) => {
            observability::init(&config.log_level);
            // A small runtime: the heavy work (hashing, file reads and writes) runs on
            // blocking threads, so two workers carry the connections.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("berth registry: cannot start the async runtime: {e}");
                    return 1;
                }
            };
            let ready = |addr: std::net::SocketAddr, tls: bool| {
                use std::io::Write;
                let scheme = if tls { "https" } else { "http" };
                let mut out = std::io::stdout();
                let _ = writeln!(out, "berth registry: listening on {scheme}://{addr}");
                let _ = out.flush();
            };
            match runtime.block_on(server::serve(config, ready)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth registry: {e}");
                    1
                }
            }
        }
        Command::Gc(config) => {
            observability::init("warn");
            match server::collect_garbage(&config) {
                Ok(report) => {
                    let verb = if config.dry_run {
                        "eligible for deletion"
                    } else {
                        "deleted"
                    };
                    for (name, digest) in &report.manifests_removed {
                        println!("manifest {verb}: {name}@{digest}");
                    }
                    for (digest, _) in &report.blobs_removed {
                        println!("blob {verb}: {digest}");
                    }
                    println!(
                        "{} blobs marked, {} manifests and {} blobs {verb} ({} bytes), {} unreferenced blobs younger than {}s kept",
                        report.blobs_marked,
                        report.manifests_removed.len(),
                        report.blobs_removed.len(),
                        report.bytes_freed(),
                        report.blobs_young,
                        config.grace.as_secs(),
                    );
                    0
                }
                Err(e) => {
                    eprintln!("berth registry gc: {e}");
                    1
                }
            }
        }
    }
}
