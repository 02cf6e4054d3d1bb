//! Docker conventions the CLI and the daemon both render: go-units' human durations
//! ("Up 5 minutes", "3 hours ago") and detach key sequences (`ctrl-p,ctrl-q`).

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

/// A detach key sequence as bytes: `ctrl-p,ctrl-q` → `[0x10, 0x11]`, single characters as
/// themselves; empty or absent means Docker's default `ctrl-p,ctrl-q`.
pub fn detach_keys(spec: Option<&str>) -> Vec<u8> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    let mut out = Vec::new();
    for k in spec.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            match c.as_bytes().first().copied() {
                Some(b @ b'a'..=b'z') => out.push(b - b'a' + 1),
                Some(b'@') => out.push(0),
                Some(b'[') => out.push(27),
                Some(b'\\') => out.push(28),
                Some(b']') => out.push(29),
                Some(b'^') => out.push(30),
                Some(b'_') => out.push(31),
                _ => {}
            }
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        }
    }
    out
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
        assert_eq!(detach_keys(None), vec![0x10, 0x11]);
        assert_eq!(detach_keys(Some("ctrl-a,x")), vec![1, b'x']);
    }
}
