//! `top`: the host's `ps`, kept to the rows of the container's cgroup.

use berth_api::models::ContainerTopResponse;

use super::{ContainerService, Result, blocking, invalid, io_err};
use crate::ContainerError;

/// Keeps the `ps` rows whose PID is in `pids`.
pub(super) fn parse_ps(out: &str, pids: &[i32]) -> Result<ContainerTopResponse> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| invalid("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    })
}

impl ContainerService {
    /// `GET /containers/{id}/top?ps_args=`.
    pub async fn top(
        &self,
        reference: &str,
        ps_args: Option<String>,
    ) -> Result<ContainerTopResponse> {
        let entry = self.lookup(reference)?;
        let cg = {
            let rec = entry.rec.lock().await;
            rec.state.status.require_alive(&rec.id)?;
            self.cgroup(&rec)
        };
        let pids = blocking(move || cg.pids()).await??;
        let args: Vec<String> = ps_args
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "-ef".into())
            .split_whitespace()
            .map(String::from)
            .collect();
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(io_err("run", std::path::Path::new("ps")))?;
        if !out.status.success() {
            return Err(ContainerError::Ps {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_filtered_by_pid() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 100\nroot 11 1 0 10:00 ? 00:00:00 other\n";
        let t = parse_ps(out, &[10]).unwrap();
        assert_eq!(
            t.processes.unwrap(),
            vec![vec![
                "root",
                "10",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
        assert!(parse_ps("A B\n", &[]).is_err());
    }

    #[test]
    fn ps_layouts_other_than_ef() {
        let out = "  PID COMMAND\n   10 sleep\n   12 sh -c x\n  bad\n";
        let t = parse_ps(out, &[12]).unwrap();
        assert_eq!(t.titles.unwrap(), ["PID", "COMMAND"]);
        assert_eq!(t.processes.unwrap(), vec![vec!["12", "sh -c x"]]);
        let none = parse_ps("PID CMD\n", &[1]).unwrap();
        assert!(none.processes.unwrap().is_empty());
        assert_eq!(
            parse_ps("", &[1]).unwrap_err().to_string(),
            "Couldn't find PID field in ps output"
        );
    }
}
