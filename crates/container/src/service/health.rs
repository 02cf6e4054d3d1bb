//! Healthchecks (`HEALTHCHECK`, `--health-*`): the probe loop of a running container, each
//! probe one exec through the container's monitor, and `State.Health` as dockerd keeps it.
//!
//! A container without a healthcheck has no loop and no task: it pays nothing. A loop lives
//! as long as the run it was started for (it ends when the lifecycle channel counts an exit
//! or a removal), so a restart gets a fresh one.
use std::sync::Arc;
use std::time::Duration;

use berth_api::models::{
    ContainerConfig, Health, HealthConfig, HealthStatusEnum, HealthcheckResult,
};
use berth_monitor::protocol::{self, Request, Response};
use tokio::io::{AsyncBufRead, AsyncReadExt};

use super::entry::Entry;
use super::{ContainerService, Result, invalid};
use crate::store::{self, Record};

/// Docker's smallest non-zero duration of a healthcheck (`MinimumDuration`, 1 ms).
const MINIMUM_NANOS: i64 = 1_000_000;
/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// `State.Health.Log` keeps the last this many probes.
const MAX_LOG_ENTRIES: usize = 5;
/// A probe's output is cut at this many bytes.
const MAX_OUTPUT: usize = 4096;

/// Docker's checks of a create's `Healthcheck` (`validateHealthCheck`), in its words.
pub(crate) fn validate(h: Option<&HealthConfig>) -> Result<()> {
    let Some(h) = h else { return Ok(()) };
    let min = berth_api::time::format_go_duration(MINIMUM_NANOS);
    let short = |v: Option<i64>| v.is_some_and(|v| v != 0 && v < MINIMUM_NANOS);
    for (name, value) in [("Interval", h.interval), ("Timeout", h.timeout)] {
        if short(value) {
            return Err(invalid(format!(
                "{name} in Healthcheck cannot be less than {min}"
            )));
        }
    }
    if h.retries.is_some_and(|r| r < 0) {
        return Err(invalid("Retries in Healthcheck cannot be negative"));
    }
    for (name, value) in [
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if short(value) {
            return Err(invalid(format!(
                "{name} in Healthcheck cannot be less than {min}"
            )));
        }
    }
    Ok(())
}

/// Docker's merge of the image's healthcheck under the container's: no healthcheck given
/// takes the image's; an empty test or a zero field takes the image's value.
pub(crate) fn merge(config: &mut ContainerConfig, image: Option<HealthConfig>) {
    let Some(image) = image else { return };
    let Some(mine) = config.healthcheck.as_mut() else {
        config.healthcheck = Some(image);
        return;
    };
    if mine.test.as_ref().is_none_or(|t| t.is_empty()) {
        mine.test = image.test;
    }
    let zero = |v: Option<i64>| v.unwrap_or(0) == 0;
    if zero(mine.interval) {
        mine.interval = image.interval;
    }
    if zero(mine.timeout) {
        mine.timeout = image.timeout;
    }
    if zero(mine.start_period) {
        mine.start_period = image.start_period;
    }
    if zero(mine.start_interval) {
        mine.start_interval = image.start_interval;
    }
    if zero(mine.retries) {
        mine.retries = image.retries;
    }
}

/// A healthcheck that runs: its command and schedule.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    /// The probe's argv.
    pub(super) command: Vec<String>,
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    start_interval: Duration,
    retries: i64,
}

fn duration_or(nanos: Option<i64>, default: Duration) -> Duration {
    match nanos {
        Some(n) if n > 0 => Duration::from_nanos(n.unsigned_abs()),
        _ => default,
    }
}

impl Plan {
    /// The container's healthcheck, if it has one that runs (`NONE` and an empty test do
    /// not); `CMD-SHELL` runs in the container's `Shell` (`/bin/sh -c` by default).
    pub(super) fn of(config: &ContainerConfig) -> Option<Plan> {
        let h = config.healthcheck.as_ref()?;
        let test = h.test.as_deref()?;
        let command = match test.first().map(String::as_str)? {
            "CMD" => test[1..].to_vec(),
            "CMD-SHELL" => {
                let mut shell = config
                    .shell
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                shell.push(test[1..].join(" "));
                shell
            }
            _ => return None,
        };
        if command.is_empty() {
            return None;
        }
        Some(Plan {
            command,
            interval: duration_or(h.interval, DEFAULT_INTERVAL),
            timeout: duration_or(h.timeout, DEFAULT_TIMEOUT),
            start_period: duration_or(h.start_period, Duration::ZERO),
            start_interval: duration_or(h.start_interval, DEFAULT_START_INTERVAL),
            retries: h.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES),
        })
    }

    /// The wait before the next probe: the start interval while the start period lasts
    /// and the container is still starting, else the interval (Docker's `getInterval`).
    fn next_interval(&self, since_start: Duration, status: Option<HealthStatusEnum>) -> Duration {
        if since_start < self.start_period && status == Some(HealthStatusEnum::STARTING) {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// `State.Health` at the start of a run: starting, no failures, the old log kept.
pub(super) fn reset(health: Option<Health>) -> Health {
    let mut h = health.unwrap_or_default();
    h.status = Some(HealthStatusEnum::STARTING);
    h.failing_streak = Some(0);
    h.log.get_or_insert_with(Vec::new);
    h
}

/// Applies a probe's result (Docker's `handleProbeResult`); true when the status changed.
/// A failure while starting within the start period does not count.
pub(super) fn apply(
    health: &mut Health,
    result: HealthcheckResult,
    in_start_period: bool,
    retries: i64,
) -> bool {
    let before = health.status;
    let healthy = result.exit_code == Some(0);
    let log = health.log.get_or_insert_with(Vec::new);
    log.push(result);
    if log.len() > MAX_LOG_ENTRIES {
        let extra = log.len() - MAX_LOG_ENTRIES;
        log.drain(..extra);
    }
    if healthy {
        health.failing_streak = Some(0);
        health.status = Some(HealthStatusEnum::HEALTHY);
    } else if !(before == Some(HealthStatusEnum::STARTING) && in_start_period) {
        let streak = health.failing_streak.unwrap_or(0) + 1;
        health.failing_streak = Some(streak);
        if streak >= retries {
            health.status = Some(HealthStatusEnum::UNHEALTHY);
        }
    }
    health.status != before
}

/// `(healthy)`, `(health: starting)`, `(unhealthy)`: what `ps` adds to `Up …`.
pub(super) fn status_suffix(health: Option<&Health>) -> Option<String> {
    match health?.status? {
        HealthStatusEnum::STARTING => Some("(health: starting)".into()),
        HealthStatusEnum::HEALTHY => Some("(healthy)".into()),
        HealthStatusEnum::UNHEALTHY => Some("(unhealthy)".into()),
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    }
}

/// The health `ps --filter health=` matches: the status, `none` without a healthcheck.
pub(super) fn filter_value(r: &Record) -> &'static str {
    match r.state.health.as_ref().and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => "starting",
        Some(HealthStatusEnum::HEALTHY) => "healthy",
        Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
        _ => "none",
    }
}

/// Reads an exec's frames: stdout and stderr together up to [`MAX_OUTPUT`] bytes, until the
/// exit frame (None if the stream ends without one).
async fn collect<R: AsyncBufRead + Unpin>(reader: &mut R) -> (Vec<u8>, Option<i32>) {
    let mut output = Vec::new();
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    while reader.read_exact(&mut header).await.is_ok() {
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        if reader.read_exact(&mut buf).await.is_err() {
            break;
        }
        match header[0] {
            protocol::EXIT_FRAME => {
                let code = <[u8; 4]>::try_from(&buf[..]).ok().map(i32::from_be_bytes);
                return (output, code);
            }
            protocol::STDOUT_FRAME | protocol::STDERR_FRAME => {
                let room = MAX_OUTPUT.saturating_sub(output.len());
                output.extend_from_slice(&buf[..len.min(room)]);
            }
            _ => {}
        }
    }
    (output, None)
}

impl ContainerService {
    /// At a run's start: `State.Health` set to starting and the probe loop spawned, when the
    /// container has a healthcheck.
    pub(super) fn start_health(&self, entry: &Arc<Entry>, rec: &mut Record) {
        let Some(plan) = Plan::of(&rec.config) else {
            return;
        };
        rec.state.health = Some(reset(rec.state.health.take()));
        self.spawn_health_loop(entry, plan, &rec.state.started_at);
    }

    /// After a daemon restart, the probe loop of a container found running.
    pub(super) fn resume_health(&self, entry: &Arc<Entry>, rec: &Record) {
        if let Some(plan) = Plan::of(&rec.config) {
            self.spawn_health_loop(entry, plan, &rec.state.started_at);
        }
    }

    fn spawn_health_loop(&self, entry: &Arc<Entry>, plan: Plan, started_at: &str) {
        let Some(me) = self.me.upgrade() else { return };
        let started = chrono::DateTime::parse_from_rfc3339(started_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let entry = entry.clone();
        tokio::spawn(async move { me.health_loop(entry, plan, started).await });
    }

    /// Probes on schedule until the run ends.
    async fn health_loop(
        &self,
        entry: Arc<Entry>,
        plan: Plan,
        started: chrono::DateTime<chrono::Utc>,
    ) {
        let mut life = entry.life.subscribe();
        let exits = life.borrow().exits;
        let ended = |l: &crate::life::Life| l.exits != exits || l.removed;
        loop {
            let status = entry
                .rec
                .lock()
                .await
                .state
                .health
                .as_ref()
                .and_then(|h| h.status);
            let since = (chrono::Utc::now() - started).to_std().unwrap_or_default();
            let wait = plan.next_interval(since, status);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = life.wait_for(ended) => return,
            }
            if life.borrow().status == crate::store::Status::Paused {
                continue;
            }
            let result = tokio::select! {
                r = self.probe(&entry, &plan) => r,
                _ = life.wait_for(ended) => return,
            };
            let Some(result) = result else { return };
            let mut rec = entry.rec.lock().await;
            if ended(&life.borrow()) {
                return;
            }
            let in_start_period = result
                .start
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| (t.with_timezone(&chrono::Utc) - started).to_std().ok())
                .is_some_and(|d| d < plan.start_period);
            let health = rec.state.health.get_or_insert_with(|| reset(None));
            if apply(health, result, in_start_period, plan.retries) {
                let status = health.status.map(|s| s.to_string()).unwrap_or_default();
                self.save_or_log(&entry, &rec).await;
                self.publish(&rec, &format!("health_status: {status}"), &[]);
            }
        }
    }

    /// One probe: an exec of the healthcheck's command with the container's user, env and
    /// working directory, bounded by the timeout. None when the container has no process.
    async fn probe(&self, entry: &Entry, plan: &Plan) -> Option<HealthcheckResult> {
        let mut process = entry
            .process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        process.set_args(Some(plan.command.clone()));
        process.set_terminal(Some(false));
        let request = Request::Exec(Box::new(protocol::ExecRequest {
            process,
            attach_stdin: false,
            console_size: None,
        }));
        let socket = entry.paths.socket();
        let start = store::now_rfc3339();
        let run = async {
            match self.monitor.call(&socket, &request).await {
                Ok((Response::ExecStarted { .. }, conv)) => {
                    let mut reader = conv.reader;
                    let _stdin = conv.writer;
                    let (output, code) = collect(&mut reader).await;
                    let output = String::from_utf8_lossy(&output).into_owned();
                    match code {
                        Some(code) => (i64::from(code), output),
                        None => (-1, "the container's monitor closed the probe".into()),
                    }
                }
                Ok((Response::Error { message, .. }, _)) => {
                    (-1, format!("OCI runtime exec failed: {message}"))
                }
                Ok((other, _)) => (-1, format!("unexpected monitor response {other:?}")),
                Err(e) => (-1, e.to_string()),
            }
        };
        let (exit_code, output) = match tokio::time::timeout(plan.timeout, run).await {
            Ok(done) => done,
            Err(_) => (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    berth_api::time::format_go_duration(
                        i64::try_from(plan.timeout.as_nanos()).unwrap_or(i64::MAX)
                    )
                ),
            ),
        };
        Some(HealthcheckResult {
            start: Some(start),
            end: Some(store::now_rfc3339()),
            exit_code: Some(exit_code),
            output: Some(output),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: Some(test.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn result(code: i64) -> HealthcheckResult {
        HealthcheckResult {
            start: Some("2026-01-01T00:00:00Z".into()),
            end: Some("2026-01-01T00:00:00.01Z".into()),
            exit_code: Some(code),
            output: Some(String::new()),
        }
    }

    #[test]
    fn bad_values_are_refused_in_dockers_words() {
        let mut h = check(&["CMD", "true"]);
        assert!(validate(Some(&h)).is_ok());
        h.interval = Some(999_999);
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        h.interval = Some(0);
        h.timeout = Some(-5);
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "Timeout in Healthcheck cannot be less than 1ms"
        );
        h.timeout = None;
        h.retries = Some(-1);
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "Retries in Healthcheck cannot be negative"
        );
        h.retries = None;
        h.start_period = Some(10);
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "StartPeriod in Healthcheck cannot be less than 1ms"
        );
        h.start_period = None;
        h.start_interval = Some(1);
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "StartInterval in Healthcheck cannot be less than 1ms"
        );
    }

    #[test]
    fn the_image_fills_what_the_container_leaves_out() {
        let mut image = check(&["CMD-SHELL", "curl -f localhost"]);
        image.interval = Some(5_000_000_000);
        image.retries = Some(7);
        let mut c = ContainerConfig::default();
        merge(&mut c, Some(image.clone()));
        assert_eq!(c.healthcheck.as_ref(), Some(&image));
        let mut c = ContainerConfig {
            healthcheck: Some(HealthConfig {
                retries: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        merge(&mut c, Some(image.clone()));
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, image.test);
        assert_eq!((h.interval, h.retries), (Some(5_000_000_000), Some(2)));
        let mut none = ContainerConfig {
            healthcheck: Some(check(&["NONE"])),
            ..Default::default()
        };
        merge(&mut none, Some(image));
        assert_eq!(
            Plan::of(&none),
            None,
            "--no-healthcheck wins over the image"
        );
    }

    #[test]
    fn plans_follow_the_test_form() {
        let c = ContainerConfig {
            healthcheck: Some(check(&["CMD-SHELL", "exit 0"])),
            ..Default::default()
        };
        let p = Plan::of(&c).unwrap();
        assert_eq!(p.command, ["/bin/sh", "-c", "exit 0"]);
        assert_eq!(
            (p.interval, p.timeout, p.retries),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3)
        );
        let c = ContainerConfig {
            healthcheck: Some(check(&["CMD", "cat", "/x"])),
            shell: Some(vec!["/bin/ash".into(), "-c".into()]),
            ..Default::default()
        };
        assert_eq!(Plan::of(&c).unwrap().command, ["cat", "/x"]);
        for none in [&[][..], &["NONE"][..], &["CMD"][..]] {
            let c = ContainerConfig {
                healthcheck: Some(check(none)),
                ..Default::default()
            };
            assert_eq!(Plan::of(&c), None, "{none:?}");
        }
        assert_eq!(Plan::of(&ContainerConfig::default()), None);
    }

    #[test]
    fn start_interval_applies_only_while_starting_in_the_start_period() {
        let mut h = check(&["CMD", "true"]);
        h.start_period = Some(10_000_000_000);
        h.start_interval = Some(1_000_000_000);
        let p = Plan::of(&ContainerConfig {
            healthcheck: Some(h),
            ..Default::default()
        })
        .unwrap();
        let starting = Some(HealthStatusEnum::STARTING);
        let healthy = Some(HealthStatusEnum::HEALTHY);
        assert_eq!(
            p.next_interval(Duration::from_secs(1), starting),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.next_interval(Duration::from_secs(1), healthy),
            DEFAULT_INTERVAL
        );
        assert_eq!(
            p.next_interval(Duration::from_secs(11), starting),
            DEFAULT_INTERVAL
        );
    }

    #[test]
    fn results_move_the_status_as_dockerd_does() {
        let mut h = reset(None);
        assert_eq!(h.status, Some(HealthStatusEnum::STARTING));
        assert!(
            !apply(&mut h, result(1), true, 2),
            "failures in the start period do not count"
        );
        assert_eq!(h.failing_streak, Some(0));
        assert!(!apply(&mut h, result(1), false, 2));
        assert_eq!(h.failing_streak, Some(1));
        assert!(apply(&mut h, result(1), false, 2));
        assert_eq!(h.status, Some(HealthStatusEnum::UNHEALTHY));
        assert!(apply(&mut h, result(0), false, 2));
        assert_eq!(
            (h.status, h.failing_streak),
            (Some(HealthStatusEnum::HEALTHY), Some(0))
        );
        assert!(
            !apply(&mut h, result(1), false, 2),
            "one failure leaves it healthy"
        );
        for _ in 0..5 {
            apply(&mut h, result(0), false, 2);
        }
        assert_eq!(h.log.as_ref().unwrap().len(), MAX_LOG_ENTRIES);
        let h = reset(Some(h));
        assert_eq!(
            (h.status, h.failing_streak),
            (Some(HealthStatusEnum::STARTING), Some(0))
        );
        assert_eq!(
            h.log.unwrap().len(),
            MAX_LOG_ENTRIES,
            "a restart keeps the log"
        );
    }

    #[test]
    fn ps_shows_the_health() {
        let mut h = reset(None);
        assert_eq!(
            status_suffix(Some(&h)).as_deref(),
            Some("(health: starting)")
        );
        h.status = Some(HealthStatusEnum::HEALTHY);
        assert_eq!(status_suffix(Some(&h)).as_deref(), Some("(healthy)"));
        assert_eq!(status_suffix(None), None);
    }
}
