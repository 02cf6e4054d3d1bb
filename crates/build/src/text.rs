//! Small text conventions of Go that Docker's messages and formats are made of: `%q` quoting,
//! `time.ParseDuration`, "did you mean" suggestions.
use std::fmt::Write;

/// `s` quoted as Go's `strconv.Quote` (and `%q`) quotes it.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Close to Go's `unicode.IsPrint`: graphic characters and the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters (category Cf) and private use are not printable for Go.
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF)
}

/// Go's `regexp` class `[\t\v\f\r ]`, the white space Docker's parser splits instructions at.
pub(crate) fn is_split_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// The first `n` parts of `s` split at runs of [`is_split_space`] (the last part keeps the
/// rest), as Go's `regexp.Split(s, n)`; `n = 0` means all parts.
pub(crate) fn split_space(s: &str, n: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        if n != 0 && parts.len() + 1 == n {
            parts.push(rest);
            return parts;
        }
        match rest.find(is_split_space) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = rest[i..].trim_start_matches(is_split_space);
            }
            None => {
                parts.push(rest);
                return parts;
            }
        }
    }
}

/// Levenshtein distance (insert, delete, substitute each cost 1), over characters.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `message` with " (did you mean X?)" when one of `options` is within two edits of `value`
/// (as BuildKit's `suggest.WrapError`); no suggestion when `value` is itself an option.
pub(crate) fn suggest(
    message: String,
    value: &str,
    options: &[&str],
    case_sensitive: bool,
) -> String {
    let wanted = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<(usize, &str)> = None;
    for opt in options {
        let opt_cmp = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if opt_cmp == wanted {
            return message;
        }
        let d = levenshtein(&wanted, &opt_cmp);
        if d < 3 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, opt));
        }
    }
    match best {
        None => message,
        Some((_, opt)) => {
            let shown = if case_sensitive {
                opt.to_string()
            } else if value == value.to_lowercase() {
                opt.to_lowercase()
            } else if value == value.to_uppercase() {
                opt.to_uppercase()
            } else {
                opt.to_string()
            };
            format!("{message} (did you mean {shown}?)")
        }
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]` then one or more `<decimal><unit>` (`ns`,
/// `us`, `µs`, `ms`, `s`, `m`, `h`), or `0`.
pub(crate) fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let mut rest = s;
    let negative = if let Some(r) = rest.strip_prefix('-') {
        rest = r;
        true
    } else {
        rest = rest.strip_prefix('+').unwrap_or(rest);
        false
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                (&f[..end], &f[end..])
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ));
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int.checked_mul(nanos_per).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let digits = frac_part.len().min(30) as u32;
            let frac: u128 = frac_part[..digits as usize]
                .parse()
                .map_err(|_| invalid())?;
            value += frac * nanos_per / 10u128.pow(digits);
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
        rest = after;
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{0}\t\n♥"), r#""\x00\t\n♥""#);
        assert_eq!(go_quote("\u{a0}\u{200b}"), r#""\u00a0\u200b""#);
    }

    #[test]
    fn durations_as_go() {
        assert_eq!(parse_go_duration("5s").unwrap(), 5_000_000_000);
        assert_eq!(parse_go_duration("1h2m3.5s").unwrap(), 3_723_500_000_000);
        assert_eq!(parse_go_duration("1.5ms").unwrap(), 1_500_000);
        assert_eq!(parse_go_duration("0").unwrap(), 0);
        assert_eq!(parse_go_duration("250µs").unwrap(), 250_000);
        assert_eq!(parse_go_duration("-1s").unwrap(), -1_000_000_000);
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("5x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
    }

    #[test]
    fn suggestions_as_buildkit() {
        let opts = ["RUN", "FROM", "COPY"];
        assert_eq!(
            suggest("unknown instruction: RUNN".into(), "RUNN", &opts, false),
            "unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            suggest("x".into(), "frm", &opts, false),
            "x (did you mean from?)"
        );
        assert_eq!(suggest("x".into(), "zzzzzz", &opts, false), "x");
        assert_eq!(suggest("x".into(), "copy", &opts, false), "x");
    }

    #[test]
    fn splits_as_go_regexp() {
        assert_eq!(split_space("a \t b c", 2), vec!["a", "b c"]);
        assert_eq!(split_space("a  b c", 0), vec!["a", "b", "c"]);
        assert_eq!(split_space("a", 2), vec!["a"]);
    }
}
