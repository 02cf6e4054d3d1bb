//! berth's integration tests: real containers, as root, driven through the `berth` CLI and the
//! real `docker` CLI against a daemon of the test's own. A custom harness (one daemon for the
//! whole run, torn down and leak-checked at the end). Runs when root tests are asked for
//! (`BERTH_TEST_ROOT=1`, see `berth_testing`); a test that cannot run here calls [`skip`] and
//! is reported as skipped, with its reason, never as passed.
#![allow(clippy::unwrap_used)]

/// Runs the real docker CLI against the test daemon (`TestEnv::docker`), or skips the test
/// where the CLI is not installed. Defined before the modules so that each of them sees it.
macro_rules! docker {
    ($env:expr, $($arg:expr),+) => {
        match $env.docker(&[$($arg),+]) {
            Some(r) => r,
            None => crate::skip("the docker CLI is not installed"),
        }
    };
}

mod archive;
mod build;
mod build_interop;
mod chaos;
mod clients;
mod compat;
mod containers;
mod distribution;
mod docker_cli;
mod faults;
mod hardening;
mod harness;
mod images;
mod ipv6;
mod lifecycle;
mod logging;
mod network;
mod oci;
mod pull;
mod registry;
mod security;
mod service;
mod shape;
mod terminal;
mod userns;
mod volumes;

use std::panic::AssertUnwindSafe;

use harness::TestEnv;

/// A named test.
pub type Test = (&'static str, fn(&TestEnv));

/// Why a test did not run (the payload of [`skip`]).
struct Skipped(String);

/// Ends the calling test as skipped, with `reason` (something this machine lacks): it is
/// counted and shown as skipped, not as passed.
pub fn skip(reason: &str) -> ! {
    std::panic::panic_any(Skipped(reason.to_owned()))
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !berth_testing::root_tests_enabled() {
        println!("integration: not run (root tests: set BERTH_TEST_ROOT=1 and run as root)");
        println!("0 passed, 0 failed, 1 skipped");
        return;
    }
    // Nothing a test does may leave the machine: every daemon a test starts (they inherit
    // this) sends `docker.io` names to a dead loopback port instead of Docker Hub.
    if std::env::var_os("BERTH_REGISTRY_HUB").is_none() {
        // SAFETY: single-threaded here, before any test or daemon starts.
        unsafe { std::env::set_var("BERTH_REGISTRY_HUB", "http://127.0.0.1:9") };
    }
    // A skip unwinds like a panic; it is not one, so the hook stays quiet about it.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Skipped>().is_none() {
            hook(info);
        }
    }));
    let tests: Vec<Test> = [
        security::TESTS,
        containers::TESTS,
        lifecycle::TESTS,
        docker_cli::TESTS,
        images::TESTS,
        archive::TESTS,
        network::TESTS,
        volumes::TESTS,
        registry::TESTS,
        pull::TESTS,
        distribution::TESTS,
        build::TESTS,
        build_interop::TESTS,
        hardening::TESTS,
        terminal::TESTS,
        logging::TESTS,
        ipv6::TESTS,
        chaos::TESTS,
        faults::TESTS,
        oci::TESTS,
        compat::TESTS,
        userns::TESTS,
        service::TESTS,
        shape::TESTS,
        clients::TESTS,
    ]
    .concat();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    let env = TestEnv::start();
    let (mut passed, mut failed, mut skipped) = (0, Vec::new(), 0);
    for (name, f) in selected {
        let t = std::time::Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&env)));
        match r {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({} ms)", t.elapsed().as_millis());
            }
            Err(payload) => match payload.downcast_ref::<Skipped>() {
                Some(Skipped(reason)) => {
                    skipped += 1;
                    println!("test {name} ... skipped: {reason}");
                }
                None => {
                    failed.push(*name);
                    println!("test {name} ... FAILED");
                }
            },
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
    println!(
        "\n{} passed, {} failed, {skipped} skipped",
        passed,
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
