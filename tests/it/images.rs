//! Integration tests: commit, history, df, prune, rmi, import/export.

use crate::Test;

pub const TESTS: &[Test] = &[];
