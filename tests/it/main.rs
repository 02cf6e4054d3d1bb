//! berth's integration tests: real containers, as root, driven through the `berth` CLI and the
//! real `docker` CLI against a daemon of the test's own. A custom harness (one daemon for the
//! whole run, torn down and leak-checked at the end). Skipped unless `BERTH_TEST_ROOT=1`.
#![allow(clippy::unwrap_used)]

mod archive;
mod containers;
mod docker_cli;
mod hardening;
mod harness;
mod images;
mod lifecycle;
mod network;
mod security;
mod volumes;

use std::panic::AssertUnwindSafe;

use harness::TestEnv;

/// A named test.
pub type Test = (&'static str, fn(&TestEnv));

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::var("BERTH_TEST_ROOT").as_deref() != Ok("1") {
        println!("integration: skipped (set BERTH_TEST_ROOT=1 and run as root)");
        println!("0 passed, 0 failed");
        return;
    }
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "BERTH_TEST_ROOT=1 needs root"
    );
    let tests: Vec<Test> = [
        security::TESTS,
        containers::TESTS,
        lifecycle::TESTS,
        docker_cli::TESTS,
        images::TESTS,
        archive::TESTS,
        network::TESTS,
        volumes::TESTS,
        hardening::TESTS,
    ]
    .concat();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    let env = TestEnv::start();
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, f) in selected {
        let t = std::time::Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&env)));
        match r {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({} ms)", t.elapsed().as_millis());
            }
            Err(_) => {
                failed.push(*name);
                println!("test {name} ... FAILED");
            }
        }
    }
    let leaks = env.teardown();
    if !leaks.is_empty() {
        println!("test teardown_leaves_nothing ... FAILED");
        for l in &leaks {
            println!("  leaked {l}");
        }
        failed.push("teardown_leaves_nothing");
    } else {
        passed += 1;
        println!("test teardown_leaves_nothing ... ok");
    }
    if !failed.is_empty() {
        println!("\nfailures: {}", failed.join(", "));
        println!("daemon log: {}", env.root.join("daemon.log").display());
    }
    println!("\n{} passed, {} failed", passed, failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
