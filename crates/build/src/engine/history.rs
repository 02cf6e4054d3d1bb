//! The `created_by` lines of a build's history, as Docker's legacy builder writes them
//! (`/bin/sh -c #(nop)  ENV a=b`, `|1 A=b /bin/sh -c make`, `… #(nop) COPY dir:<digest> in /dst `),
//! and Go's `%q`/`%v` renderings those lines embed.
use std::time::Duration;

use crate::instruction::HealthCheck;
use crate::text::go_quote;

/// `<shell> #(nop)  <text>`: a metadata instruction (Docker joins `#(nop) ` and the text with
/// a space, hence two).
pub(crate) fn nop(shell: &[String], text: &str) -> String {
    format!("{} #(nop)  {text}", shell.join(" "))
}

/// `<shell> #(nop) <text>`: `COPY`, `ADD`, `WORKDIR` (one space).
pub(crate) fn nop1(shell: &[String], text: &str) -> String {
    format!("{} #(nop) {text}", shell.join(" "))
}

/// A `RUN`'s line: the build arguments it saw, then its argv.
pub(crate) fn run(args: &[String], argv: &[String]) -> String {
    if args.is_empty() {
        argv.join(" ")
    } else {
        format!("|{} {} {}", args.len(), args.join(" "), argv.join(" "))
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub(crate) fn go_list_plain(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration.String()`: `1h2m3s`, `1.5s`, `300ms`, `0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_fraction(nanos, div));
    }
    let total_secs = nanos / 1_000_000_000;
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = trim_fraction(nanos % 60_000_000_000, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn trim_fraction(value: u128, div: u128) -> String {
    let whole = value / div;
    let frac = value % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `%q` of an int (a rune literal): `'\x03'`, `'A'`.
fn go_rune(n: u32) -> String {
    match char::from_u32(n) {
        Some(c) if (' '..='~').contains(&c) && c != '\'' && c != '\\' => format!("'{c}'"),
        _ if n < 0x100 => format!("'\\x{n:02x}'"),
        _ => format!("'\\u{n:04x}'"),
    }
}

/// `HEALTHCHECK &{["CMD-SHELL" "x"] "30s" "3s" "0s" '\x03'}`, Go's `%q` of the config.
pub(crate) fn healthcheck(h: &HealthCheck) -> String {
    let d = |d: Option<Duration>| go_quote(&go_duration(d.unwrap_or_default()));
    format!(
        "HEALTHCHECK &{{{} {} {} {} {}}}",
        go_list(&h.test_vec()),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        go_rune(h.retries.unwrap_or(0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_dockers() {
        let sh = vec!["/bin/sh".to_string(), "-c".to_string()];
        assert_eq!(nop(&sh, "ENV a=b"), "/bin/sh -c #(nop)  ENV a=b");
        assert_eq!(nop1(&sh, "WORKDIR /app"), "/bin/sh -c #(nop) WORKDIR /app");
        assert_eq!(
            run(
                &["A=b".into()],
                &["/bin/sh".into(), "-c".into(), "make".into()]
            ),
            "|1 A=b /bin/sh -c make"
        );
        assert_eq!(go_list(&["sh".into(), "-c".into()]), r#"["sh" "-c"]"#);
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        let h = HealthCheck {
            test: crate::ShellOrExec::Shell("curl -f http://localhost/ || exit 1".into()),
            interval: Some(Duration::from_secs(300)),
            timeout: Some(Duration::from_secs(3)),
            start_period: None,
            start_interval: None,
            retries: Some(3),
        };
        assert_eq!(
            healthcheck(&h),
            r#"HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/ || exit 1"] "5m0s" "3s" "0s" '\x03'}"#
        );
    }
}
