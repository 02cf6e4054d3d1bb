//! Integration tests: bridge networking, published ports, user networks and DNS.

use crate::Test;

pub const TESTS: &[Test] = &[];
