//! Docker conventions the CLI and the daemon both render: go-units' human durations
//! ("Up 5 minutes", "3 hours ago") and sizes (`1.98MB`), and detach key sequences
//! (`ctrl-p,ctrl-q`).

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant digits
/// (`human_size(1_982_256.0, 3)` is `1.98MB`; docker's plain `HumanSize` is precision 4).
pub fn human_size(bytes: f64, precision: i32) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant(v, precision), UNITS[i])
}

/// Go's `%.<n>g` for the magnitudes sizes have: `n` significant digits, trailing zeros dropped.
pub fn significant(v: f64, n: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (n - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// go-units `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    }
}

/// A detach key sequence as bytes, parsed as Docker's `term.ToBytes`: comma-separated keys,
/// each one character (itself) or `ctrl-X` with X one of `@`, `a`-`z`, `[`, `\\`, `]`, `^`,
/// `_`; `ctrl-p,ctrl-q` → `[0x10, 0x11]`. Empty or absent means Docker's default
/// `ctrl-p,ctrl-q`. The error is Docker's (`unknown character: 'X'`).
pub fn detach_keys(spec: Option<&str>) -> Result<Vec<u8>, String> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    let mut out = Vec::new();
    for key in spec.split(',') {
        let unknown = || format!("unknown character: '{key}'");
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        let Some(c) = key.strip_prefix("ctrl-").filter(|c| c.len() == 1) else {
            return Err(unknown());
        };
        match c.as_bytes()[0] {
            b @ b'a'..=b'z' => out.push(b - b'a' + 1),
            b'@' => out.push(0),
            b'[' => out.push(27),
            b'\\' => out.push(28),
            b']' => out.push(29),
            b'^' => out.push(30),
            b'_' => out.push(31),
            _ => return Err(unknown()),
        }
    }
    Ok(out)
}

/// The daemon's refusal of bad detach keys on attach, in Docker's words.
pub fn invalid_detach_keys(spec: &str) -> String {
    format!("Invalid detach keys ({spec}) provided")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(300), "5 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn detach_keys_parse() {
        assert_eq!(detach_keys(None), Ok(vec![0x10, 0x11]));
        assert_eq!(detach_keys(Some("")), Ok(vec![0x10, 0x11]));
        assert_eq!(detach_keys(Some("ctrl-a,x")), Ok(vec![1, b'x']));
        assert_eq!(detach_keys(Some("ctrl-\\,ctrl-@")), Ok(vec![28, 0]));
        for bad in ["ctrl-", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "ctrl-A", " x"] {
            assert!(detach_keys(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            detach_keys(Some("ctrl-p,foo")),
            Err("unknown character: 'foo'".to_string())
        );
    }
}
