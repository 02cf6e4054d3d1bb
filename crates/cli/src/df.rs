//! `system df`: disk usage of images, containers, local volumes and build cache, as docker
//! shows it (the summary table, `-v` per-object tables, `--format`).
use clap::Args;
use serde_json::{Value, json};

use crate::format;
use crate::http::Client;
use crate::{CliError, CmdResult};

/// `system df`.
#[derive(Debug, Args, Clone)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Format output using a Go template (`table`, `json`, or a template).
    #[arg(long)]
    format: Option<String>,
}

/// go-units `HumanSize` (4 significant digits), as docker's df summary prints sizes.
fn human4(bytes: f64) -> String {
    berth_api::convention::human_size(bytes, 4)
}

fn size(v: &Value) -> f64 {
    v.as_f64().filter(|s| *s > 0.0).unwrap_or(0.0)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn reclaimable(amount: f64, total: f64) -> String {
    if total > 0.0 {
        format!("{} ({}%)", human4(amount), (amount * 100.0 / total).trunc())
    } else {
        human4(amount)
    }
}

/// The four summary rows, as docker's formatter names their fields.
fn summary(du: &Value) -> Vec<Value> {
    let images = list(&du["Images"]);
    let layers = size(&du["LayersSize"]);
    let used: f64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .map(|i| size(&i["Size"]) - size(&i["SharedSize"]))
        .sum();
    let containers = list(&du["Containers"]);
    let containers_size: f64 = containers.iter().map(|c| size(&c["SizeRw"])).sum();
    let containers_reclaimable: f64 = containers
        .iter()
        .filter(|c| c["State"] != "running" && c["State"] != "paused")
        .map(|c| size(&c["SizeRw"]))
        .sum();
    let volumes = list(&du["Volumes"]);
    let volume_size = |v: &Value| size(&v["UsageData"]["Size"]);
    let volumes_size: f64 = volumes.iter().map(volume_size).sum();
    let volumes_active = volumes
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let volumes_reclaimable: f64 = volumes
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(volume_size)
        .sum();
    let cache = list(&du["BuildCache"]);
    let cache_size: f64 = cache.iter().map(|b| size(&b["Size"])).sum();
    vec![
        json!({
            "Type": "Images",
            "TotalCount": images.len().to_string(),
            "Active": images.iter().filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0).count().to_string(),
            "Size": human4(layers),
            "Reclaimable": reclaimable((layers - used).max(0.0), layers),
        }),
        json!({
            "Type": "Containers",
            "TotalCount": containers.len().to_string(),
            "Active": containers.iter().filter(|c| c["State"] == "running" || c["State"] == "paused").count().to_string(),
            "Size": human4(containers_size),
            "Reclaimable": reclaimable(containers_reclaimable, containers_size),
        }),
        json!({
            "Type": "Local Volumes",
            "TotalCount": volumes.len().to_string(),
            "Active": volumes_active.to_string(),
            "Size": human4(volumes_size),
            "Reclaimable": reclaimable(volumes_reclaimable, volumes_size),
        }),
        json!({
            "Type": "Build Cache",
            "TotalCount": cache.len().to_string(),
            "Active": "0",
            "Size": human4(cache_size),
            "Reclaimable": human4(cache_size),
        }),
    ]
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Runs `system df`.
pub fn run(c: &Client, a: DfArgs) -> CmdResult {
    let du: Value = c.get("/system/df", &[])?;
    let rows = summary(&du);
    if a.verbose && a.format.is_none() {
        verbose(&du);
        return Ok(0);
    }
    let fmt = format::parse_format(a.format.as_deref(), &|n| match n {
        "TotalCount" => "TOTAL".into(),
        other => other.to_uppercase(),
    })?;
    format::print_items(&fmt, &rows, &|| {
        let mut table = vec![
            ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        ];
        for row in &rows {
            table.push(
                ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
                    .iter()
                    .map(|k| text(&row[*k]))
                    .collect(),
            );
        }
        table
    })
    .map_err(|e: CliError| e)?;
    Ok(0)
}

fn verbose(du: &Value) {
    println!("Images space usage:\n");
    format::print_table(&image_rows(du));
    println!("\nContainers space usage:\n");
    format::print_table(&container_rows(du));
    println!("\nLocal Volumes space usage:\n");
    let mut table = vec![
        ["VOLUME NAME", "LINKS", "SIZE"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    ];
    for volume in list(&du["Volumes"]) {
        table.push(vec![
            text(&volume["Name"]),
            volume["UsageData"]["RefCount"]
                .as_i64()
                .unwrap_or(0)
                .to_string(),
            human4(size(&volume["UsageData"]["Size"])),
        ]);
    }
    format::print_table(&table);
    let cache: f64 = list(&du["BuildCache"])
        .iter()
        .map(|b| size(&b["Size"]))
        .sum();
    println!("\nBuild cache usage: {}", human4(cache));
}

/// The images table of `system df -v`, header first.
fn image_rows(du: &Value) -> Vec<Vec<String>> {
    let mut table = vec![
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>(),
    ];
    for image in list(&du["Images"]) {
        let tags: Vec<String> = list(&image["RepoTags"]).iter().map(text).collect();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_owned()]
        } else {
            tags
        };
        let total = size(&image["Size"]);
        let shared = size(&image["SharedSize"]);
        for tag in tags {
            let (repo, tag) = tag
                .rsplit_once(':')
                .map(|(r, t)| (r.to_owned(), t.to_owned()))
                .unwrap_or((tag.clone(), "<none>".into()));
            table.push(vec![
                repo,
                tag,
                format::short_id(image["Id"].as_str().unwrap_or_default(), false),
                format::ago(image["Created"].as_i64().unwrap_or(0)),
                format::human_size(total),
                human4(shared),
                human4(total - shared),
                image["Containers"].as_i64().unwrap_or(0).to_string(),
            ]);
        }
    }
    table
}

/// The containers table of `system df -v`, header first.
fn container_rows(du: &Value) -> Vec<Vec<String>> {
    let mut table = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>(),
    ];
    for ctr in list(&du["Containers"]) {
        let command = text(&ctr["Command"]);
        let command = if command.chars().count() > 20 {
            format!("\"{}…\"", command.chars().take(19).collect::<String>())
        } else {
            format!("\"{command}\"")
        };
        let name = list(&ctr["Names"])
            .first()
            .map(text)
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let local_volumes = list(&ctr["Mounts"])
            .iter()
            .filter(|m| m["Type"] == "volume")
            .count();
        table.push(vec![
            format::short_id(ctr["Id"].as_str().unwrap_or_default(), false),
            text(&ctr["Image"]),
            command,
            local_volumes.to_string(),
            human4(size(&ctr["SizeRw"])),
            format::ago(ctr["Created"].as_i64().unwrap_or(0)),
            text(&ctr["Status"]),
            name,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_df_prints_them() {
        assert_eq!(human4(0.0), "0B");
        assert_eq!(human4(1_982_256.0), "1.982MB");
        assert_eq!(human4(1_983_000.0), "1.983MB");
        assert_eq!(human4(52_428_800.0), "52.43MB");
        assert_eq!(human4(999.0), "999B");
        assert_eq!(reclaimable(1_983_000.0, 1_983_000.0), "1.983MB (100%)");
    }
}
