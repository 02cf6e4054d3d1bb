//! `--format` templates over inspect-like data, as the CLI renders them: compiling and
//! rendering never panic. The input is the template, a NUL byte, then JSON data (a fixed
//! document when absent or invalid).
#![no_main]

use libfuzzer_sys::fuzz_target;

const DATA: &str = r#"{"Id":"4f1c2d","Name":"/web","State":{"Status":"running","Pid":42,"ExitCode":0},
"Config":{"Env":["A=1","B=2"],"Labels":{"a":"b"},"Cmd":["sh","-c","x"]},"Mounts":[],
"NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}},"Size":1.5}"#;

fuzz_target!(|input: &[u8]| {
    let (template, data) = match input.iter().position(|b| *b == 0) {
        Some(nul) => (&input[..nul], &input[nul + 1..]),
        None => (input, &b""[..]),
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let data: serde_json::Value = serde_json::from_slice(data)
        .unwrap_or_else(|_| serde_json::from_str(DATA).expect("fixed data"));
    if let Ok(compiled) = berth_cli::compile_format(template) {
        let _ = berth_cli::render_format(&compiled, &data);
    }
});
