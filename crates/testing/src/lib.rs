//! Test support shared by berth's crates; a dev-dependency only, never linked into `berth`.
//!
//! # Root tests
//!
//! A test that needs root (it makes namespaces, mounts, cgroups, bridges or nft tables) is
//! marked `#[ignore = "needs root: …"]`, so a plain `cargo test` reports it as ignored rather
//! than passing without having run, and calls [`require_root`] first:
//!
//! ```text
//! #[test]
//! #[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
//! fn makes_a_bridge() {
//!     berth_testing::require_root();
//!     // …
//! }
//! ```
//!
//! `scripts/test.sh` runs them all, as root: `BERTH_TEST_ROOT=1 cargo test --workspace --
//! --include-ignored`. One of them run by hand is
//! `BERTH_TEST_ROOT=1 cargo test -p CRATE -- --include-ignored NAME`. Run without
//! `BERTH_TEST_ROOT=1`, or without root, a root test fails and says why: it never passes
//! without having run.
#![forbid(unsafe_code)]

/// The variable that allows root tests to run (`1`): they change the host (bridges, nft
/// tables, cgroups, mounts), so running them is asked for explicitly, even as root.
pub const ROOT_TESTS_ENV: &str = "BERTH_TEST_ROOT";

/// Whether root tests were asked for ([`ROOT_TESTS_ENV`]`=1`). Panics when they were, but
/// this process is not root: asked-for tests that cannot run fail loudly. For a custom
/// harness that reports its own skips; `#[test]`s call [`require_root`].
pub fn root_tests_enabled() -> bool {
    if std::env::var(ROOT_TESTS_ENV).as_deref() != Ok("1") {
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "{ROOT_TESTS_ENV}=1 but this process is not root: root tests cannot run"
    );
    true
}

/// The gate of a root `#[test]` (which is also `#[ignore]`d, see the crate doc): returns when
/// [`ROOT_TESTS_ENV`]`=1` and this process is root, else fails the test with the reason.
pub fn require_root() {
    assert!(
        root_tests_enabled(),
        "a root test was run without {ROOT_TESTS_ENV}=1: run it as root with \
         {ROOT_TESTS_ENV}=1 (scripts/test.sh does), or leave it ignored"
    );
}
