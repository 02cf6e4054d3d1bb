//! v2 `pids` controller: the same `pids.max` and `pids.current` files as v1.

pub(crate) use crate::v1::pids::Pids;
