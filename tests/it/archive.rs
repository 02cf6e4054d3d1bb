//! Integration tests: save and load (docker-archive and OCI layout), interop with dockerd.

use crate::Test;

pub const TESTS: &[Test] = &[];
