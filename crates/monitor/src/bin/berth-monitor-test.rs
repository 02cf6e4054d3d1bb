//! Runs the monitor on a run dir, as `berth monitor <run_dir>` does; for this crate's tests.
#![forbid(unsafe_code)]

fn main() {
    let Some(run_dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-monitor-test <run_dir>");
        std::process::exit(2);
    };
    std::process::exit(berth_monitor::run(std::path::Path::new(&run_dir)));
}
