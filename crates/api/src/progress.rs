//! Docker's JSON message stream (moby's `pkg/jsonmessage`): the JSON-lines body of pull, push,
//! load, import, build and bootstrap answers.
//!
//! Each line is one [`JsonMessage`]. A message with an `id` and a `progressDetail` updates that
//! id's progress line on a terminal; a `stream` message is raw text; an `errorDetail` ends the
//! operation (the HTTP status was already 200 when it was sent). The daemon writes lines with
//! [`JsonMessage::to_line`]; the CLI renders them (`berth-cli`'s progress renderer).
use serde::{Deserialize, Serialize};

/// One line of a progress stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonMessage {
    /// Raw text to print as is (build output, `Loaded image: …\n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A status line (`Loading layer`, `Pull complete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Bytes done and total of the `id`'s work.
    #[serde(
        rename = "progressDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
    /// The progress bar, pre-rendered by the daemon (old clients print it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What the line is about (a short layer id); lines with an id are updated in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where the work comes from (events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The error that ended the operation.
    #[serde(
        rename = "errorDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<ErrorDetail>,
    /// The same error's message (deprecated field, still sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Structured results (`{"ID": "sha256:…"}`, push digests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// Progress of one id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressDetail {
    /// Units done (bytes unless `units` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    /// Units in all (absent or 0 when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// An error in the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A code, rarely set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The message shown to the user.
    #[serde(default)]
    pub message: String,
}

impl JsonMessage {
    /// A `{"stream": …}` message.
    pub fn stream(text: impl Into<String>) -> Self {
        JsonMessage {
            stream: Some(text.into()),
            ..Default::default()
        }
    }

    /// A `{"status": …}` message, optionally about an id.
    pub fn status(status: impl Into<String>, id: Option<&str>) -> Self {
        JsonMessage {
            status: Some(status.into()),
            id: id.map(String::from),
            ..Default::default()
        }
    }

    /// A progress update of `id`: `current` of `total` bytes (`total` 0 when unknown).
    pub fn progress(status: impl Into<String>, id: &str, current: u64, total: u64) -> Self {
        let current = i64::try_from(current).unwrap_or(i64::MAX);
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        JsonMessage {
            status: Some(status.into()),
            id: Some(id.to_string()),
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total: (total > 0).then_some(total),
            }),
            progress: Some(progress_bar(current, total, true)),
            ..Default::default()
        }
    }

    /// An error message: ends the stream.
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        JsonMessage {
            error_detail: Some(ErrorDetail {
                code: None,
                message: message.clone(),
            }),
            error: Some(message),
            ..Default::default()
        }
    }

    /// An `{"aux": …}` message.
    pub fn aux(value: serde_json::Value) -> Self {
        JsonMessage {
            aux: Some(value),
            ..Default::default()
        }
    }

    /// The error this message carries, if any (`errorDetail.message`, else `error`).
    pub fn error_message(&self) -> Option<&str> {
        self.error_detail
            .as_ref()
            .map(|e| e.message.as_str())
            .or(self.error.as_deref())
    }

    /// The message as one line of the stream, `\r\n`-terminated as moby writes it.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing a struct of strings, integers and a JSON value cannot fail.
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.extend_from_slice(b"\r\n");
        v
    }
}

/// Renders a progress like moby's `JSONProgress.String`: `[=====>      ]  1.235MB/3.4MB`, with
/// the bar only when `bar` (a wide terminal) and the numbers in decimal units.
pub fn progress_bar(current: i64, total: i64, bar: bool) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{:>8}", human_size(current as f64));
    }
    let percent = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let mut out = String::new();
    if bar {
        out.push('[');
        out.push_str(&"=".repeat(percent));
        out.push('>');
        out.push_str(&" ".repeat(50 - percent));
        out.push_str("] ");
    }
    if current > total {
        out.push_str(&format!("{:>8}", human_size(current as f64)));
    } else {
        out.push_str(&format!(
            "{:>8}/{}",
            human_size(current as f64),
            human_size(total as f64)
        ));
    }
    out
}

/// go-units `HumanSize`: decimal units, 4 significant digits (`1.235MB`, `512B`).
pub fn human_size(bytes: f64) -> String {
    crate::convention::human_size(bytes, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_moby_field_names() {
        let line = JsonMessage::progress("Loading layer", "abc", 50, 100).to_line();
        let s = String::from_utf8(line).unwrap();
        assert!(s.ends_with("}\r\n"));
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
        assert_eq!(v["status"], "Loading layer");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["progressDetail"]["current"], 50);
        assert_eq!(v["progressDetail"]["total"], 100);
        assert!(v.get("stream").is_none());
        let e = JsonMessage::error("boom");
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["errorDetail"]["message"], "boom");
        assert_eq!(v["error"], "boom");
        assert_eq!(e.error_message(), Some("boom"));
    }

    #[test]
    fn parses_what_moby_sends() {
        let m: JsonMessage = serde_json::from_str(
            r#"{"status":"Downloading","progressDetail":{"current":10,"total":20},"progress":"[=>]","id":"bbb"}"#,
        )
        .unwrap();
        assert_eq!(m.progress_detail.unwrap().current, Some(10));
        let m: JsonMessage = serde_json::from_str(r#"{"progressDetail":{}}"#).unwrap();
        assert_eq!(m.progress_detail, Some(ProgressDetail::default()));
    }

    #[test]
    fn bar_matches_moby() {
        assert_eq!(progress_bar(0, 0, true), "");
        assert_eq!(progress_bar(1500, 0, true), "   1.5kB");
        let s = progress_bar(50, 100, true);
        assert!(s.starts_with(&format!("[{}>{}] ", "=".repeat(25), " ".repeat(25))));
        assert!(s.ends_with("    50B/100B"), "{s}");
        assert_eq!(progress_bar(50, 100, false), "     50B/100B");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(human_size(206_000_000.0), "206MB");
    }
}
