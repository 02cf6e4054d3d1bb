//! The runtime's integration tests, one binary (STYLE rule 11): real containers from a
//! busybox rootfs ([`containers`]) and `berth oci`, runc's command-line contract ([`oci`]).
//! All are root tests, `#[ignore]`d unless asked for (see `berth_testing`):
//! `BERTH_TEST_ROOT=1 cargo test -p berth-runtime --test it -- --include-ignored`.

mod containers;
mod oci;

use std::sync::Mutex;

/// Serializes the tests: the runtime clones this process, which must not have other threads
/// busy in malloc meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());
