//! Integration tests: volumes, bind and tmpfs mounts, cp and the archive endpoints.

use crate::Test;

pub const TESTS: &[Test] = &[];
