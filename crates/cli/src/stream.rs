//! Hijacked streams: copying stdin in and output out (demultiplexed unless TTY), detach keys,
//! terminal resizes and signal forwarding.
use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The detach keys a command uses, as docker's CLI picks them: `--detach-keys`, else
/// `detachKeys` of the client config (`$DOCKER_CONFIG/config.json`, default
/// `~/.docker/config.json`), else none (the daemon's default, `ctrl-p,ctrl-q`). Bad keys are
/// refused before anything is created, in the daemon's words.
pub fn detach_keys(flag: Option<&str>) -> Result<Option<String>, crate::CliError> {
    let keys = match flag {
        Some(k) => Some(k.to_string()),
        None => config_detach_keys(),
    };
    if let Some(k) = &keys {
        berth_api::convention::detach_keys(Some(k)).map_err(|_| {
            crate::CliError::msg(berth_api::convention::invalid_detach_keys(k)).with_code(125)
        })?;
    }
    Ok(keys.filter(|k| !k.is_empty()))
}

/// `detachKeys` of docker's client config file, if set.
fn config_detach_keys() -> Option<String> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config["detachKeys"].as_str().map(str::to_string)
}

/// The bytes of keys [`detach_keys`] accepted (default `ctrl-p,ctrl-q`).
pub fn key_bytes(keys: Option<&str>) -> Vec<u8> {
    berth_api::convention::detach_keys(keys).unwrap_or_default()
}

use crate::http::{Client, Stream};

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The output ended (the process exited).
    Eof,
    /// The user typed the detach keys.
    Detached,
}

/// Runs a hijacked session: stdin → stream (when `stdin`), stream → stdout/stderr.
pub fn session(
    conn: BufReader<Stream>,
    tty: bool,
    stdin: bool,
    keys: Vec<u8>,
) -> io::Result<Ended> {
    let writer = conn.get_ref().try_clone()?;
    let detached = Arc::new(AtomicBool::new(false));
    if stdin {
        let detached = detached.clone();
        let mut writer = writer.try_clone()?;
        let closer = writer.try_clone()?;
        std::thread::spawn(move || {
            let mut input = io::stdin().lock();
            let mut buf = [0u8; 8192];
            let mut matched = 0usize;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut out = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if tty && !keys.is_empty() && b == keys[matched] {
                        matched += 1;
                        if matched == keys.len() {
                            let _ = writer.write_all(&out);
                            detached.store(true, Ordering::SeqCst);
                            closer.shutdown();
                            return;
                        }
                        continue;
                    }
                    out.extend_from_slice(&keys[..matched]);
                    matched = 0;
                    out.push(b);
                }
                if writer.write_all(&out).is_err() {
                    return;
                }
            }
            let _ = writer.shutdown_write();
        });
    } else {
        writer.shutdown_write()?;
    }
    let mut conn = conn;
    let out = io::stdout();
    let err = io::stderr();
    if tty {
        let mut buf = [0u8; 32 * 1024];
        loop {
            let n = match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut o = out.lock();
            o.write_all(&buf[..n])?;
            o.flush()?;
        }
    } else {
        let mut header = [0u8; 8];
        let mut buf = Vec::new();
        loop {
            if conn.read_exact(&mut header).is_err() {
                break;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            buf.resize(len, 0);
            if conn.read_exact(&mut buf).is_err() {
                break;
            }
            match header[0] {
                2 => {
                    let mut e = err.lock();
                    e.write_all(&buf)?;
                    e.flush()?;
                }
                0 | 1 => {
                    let mut o = out.lock();
                    o.write_all(&buf)?;
                    o.flush()?;
                }
                3 => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("Unrecognized input header: {other}"),
                    ));
                }
            }
        }
    }
    Ok(if detached.load(Ordering::SeqCst) {
        Ended::Detached
    } else {
        Ended::Eof
    })
}

/// Sends the terminal size now and on every SIGWINCH to `path` (`/containers/{id}/resize`).
pub fn follow_resizes(client: &Client, path: String) {
    let send = {
        let client = client.clone();
        move || {
            if let Some((h, w)) = crate::tty::size() {
                let _ = client.post_empty(&path, &[("h", h.to_string()), ("w", w.to_string())]);
            }
        }
    };
    send();
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH]) {
        std::thread::spawn(move || {
            for _ in signals.forever() {
                send();
            }
        });
    }
}

/// Forwards the usual signals to the container as `POST /containers/{id}/kill?signal=…`.
pub fn proxy_signals(client: &Client, id: &str) {
    use signal_hook::consts::*;
    let sigs = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM];
    let Ok(mut signals) = signal_hook::iterator::Signals::new(sigs) else {
        return;
    };
    let client = client.clone();
    let path = format!("/containers/{id}/kill");
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let _ = client.post_empty(&path, &[("signal", sig.to_string())]);
        }
    });
}
