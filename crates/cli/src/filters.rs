//! `--filter key=value` flags as the `filters` query value, in the map form the docker CLI
//! sends ([`berth_api::filters::Filters`]).
use berth_api::filters::Filters;

use crate::CliError;

/// `--filter a=b --filter a=c` → `{"a":{"b":true,"c":true}}`.
pub fn filters_json(flags: &[String]) -> Result<String, CliError> {
    Filters::from_flags(flags)
        .map(|filters| filters.to_json())
        .map_err(|e| CliError::msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_use_the_map_form() {
        let f = filters_json(&["status=running".into(), "label=a=b".into()]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["status"]["running"], true);
        assert_eq!(v["label"]["a=b"], true);
        assert_eq!(
            filters_json(&["bad".into()]).unwrap_err().message,
            "invalid filter 'bad'"
        );
    }
}
