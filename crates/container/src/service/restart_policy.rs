//! The restart policy (`--restart no|always|unless-stopped|on-failure[:N]`): whether an exit
//! is followed by a restart, and after how long. Pure decisions; `exit.rs` acts on them.
use std::time::Duration;

use berth_api::models::RestartPolicyNameEnum;

use crate::store::Record;

/// Whether the container's restart policy restarts it after the exit recorded in `rec`
/// (dockerd's `RestartManager.ShouldRestart`; a run the user stopped or killed never gets
/// here, see `Entry::exit_on_next`): `always` restarts, `unless-stopped` unless the user
/// stopped or killed it (`HasBeenManuallyStopped`, which outlives a daemon restart),
/// `on-failure` only after a non-zero exit, at most `MaximumRetryCount` times (0: no limit).
pub(super) fn should_restart(rec: &Record) -> bool {
    let Some(rp) = rec.host_config.restart_policy.as_ref() else {
        return false;
    };
    match rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY) {
        RestartPolicyNameEnum::ALWAYS => true,
        RestartPolicyNameEnum::UNLESS_STOPPED => !rec.manually_stopped,
        RestartPolicyNameEnum::ON_FAILURE => {
            let max = rp.maximum_retry_count.unwrap_or(0);
            rec.state.exit_code != 0 && (max == 0 || rec.restart_count < max)
        }
        RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO => false,
    }
}

/// How long to wait before the next restart: 100 ms, doubling with each restart so far, at
/// most 51.2 s.
pub(super) fn backoff(restart_count: i64) -> Duration {
    Duration::from_millis(100u64 << restart_count.clamp(0, 9))
}

#[cfg(test)]
mod tests {
    use berth_api::models::{HostConfig, RestartPolicy};

    use super::*;

    fn record(policy: Option<(RestartPolicyNameEnum, i64)>, exit_code: i64) -> Record {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "id": "c", "name": "n", "created": "", "path": "true", "args": [],
            "config": {}, "host_config": {}, "image_id": "sha256:x",
        }))
        .expect("a minimal record decodes");
        r.host_config = HostConfig {
            restart_policy: policy.map(|(name, max)| RestartPolicy {
                name: Some(name),
                maximum_retry_count: Some(max),
            }),
            ..Default::default()
        };
        r.state.exit_code = exit_code;
        r
    }

    #[test]
    fn no_policy_never_restarts() {
        assert!(!should_restart(&record(None, 1)));
        assert!(!should_restart(&record(
            Some((RestartPolicyNameEnum::NO, 0)),
            1
        )));
        assert!(!should_restart(&record(
            Some((RestartPolicyNameEnum::EMPTY, 0)),
            1
        )));
    }

    #[test]
    fn always_and_unless_stopped_restart_unless_stopped_by_the_user() {
        for name in [
            RestartPolicyNameEnum::ALWAYS,
            RestartPolicyNameEnum::UNLESS_STOPPED,
        ] {
            let mut r = record(Some((name, 0)), 0);
            assert!(should_restart(&r), "{name:?} after exit 0");
            r.state.exit_code = 3;
            assert!(should_restart(&r), "{name:?} after exit 3");
        }
        // A stop or kill of an earlier run: `always` still restarts (a daemon restart does,
        // in dockerd), `unless-stopped` does not.
        let mut r = record(Some((RestartPolicyNameEnum::ALWAYS, 0)), 0);
        r.manually_stopped = true;
        assert!(should_restart(&r));
        let mut r = record(Some((RestartPolicyNameEnum::UNLESS_STOPPED, 0)), 0);
        r.manually_stopped = true;
        assert!(!should_restart(&r));
    }

    #[test]
    fn on_failure_counts_retries_and_ignores_success() {
        let mut r = record(Some((RestartPolicyNameEnum::ON_FAILURE, 2)), 1);
        assert!(should_restart(&r));
        r.restart_count = 1;
        assert!(should_restart(&r));
        r.restart_count = 2;
        assert!(!should_restart(&r), "the third failure is the last");
        let ok = record(Some((RestartPolicyNameEnum::ON_FAILURE, 0)), 0);
        assert!(!should_restart(&ok), "exit 0 is not a failure");
        let mut unlimited = record(Some((RestartPolicyNameEnum::ON_FAILURE, 0)), 1);
        unlimited.restart_count = 1000;
        assert!(should_restart(&unlimited));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(9), Duration::from_millis(51_200));
        assert_eq!(backoff(50), Duration::from_millis(51_200));
        assert_eq!(backoff(-1), Duration::from_millis(100));
    }
}
