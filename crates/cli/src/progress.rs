//! Renders a Docker JSON message stream (pull, push, load, import, bootstrap) the way the docker
//! CLI does (moby's `jsonmessage.DisplayJSONMessagesStream`).
//!
//! On a terminal, each id (a layer) owns a line that is redrawn in place as its progress
//! advances: a new id appends a line, an update moves the cursor up to its line, clears and
//! rewrites it, and moves back down. A message without an id starts a fresh block. When the
//! output is not a terminal, progress bars are skipped (status and stream text still print);
//! an `errorDetail` message always ends the stream with that error, which the caller prints as
//! one line on stderr.
use std::io::{self, BufRead, BufReader, Read, Write};

use berth_api::progress::{JsonMessage, progress_bar};

use crate::CliError;

/// Terminal width from which a bar is drawn beside the numbers (moby's threshold).
const BAR_MIN_WIDTH: u16 = 110;

/// Draws messages on one output.
#[derive(Debug)]
pub struct Renderer<W: Write> {
    out: W,
    tty: bool,
    width: u16,
    /// Ids with a line of their own in the current block, top first.
    lines: Vec<String>,
}

impl Renderer<io::Stdout> {
    /// A renderer on stdout, drawing in place when stdout is a terminal.
    pub fn stdout() -> Self {
        let tty = crate::tty::stdout_is_tty();
        // The width alone (a pty may report 0 rows).
        let width = rustix::termios::tcgetwinsize(std::io::stdout())
            .map(|ws| ws.ws_col)
            .unwrap_or(0);
        Renderer::new(io::stdout(), tty, width)
    }
}

impl<W: Write> Renderer<W> {
    /// A renderer on `out`; `tty` says whether to draw in place, `width` is the terminal's.
    pub fn new(out: W, tty: bool, width: u16) -> Self {
        Renderer {
            out,
            tty,
            width,
            lines: Vec::new(),
        }
    }

    /// Draws one message. An error message is returned as the error, not drawn.
    pub fn render(&mut self, m: &JsonMessage) -> Result<(), CliError> {
        if let Some(e) = m.error_message() {
            return Err(CliError::msg(e.to_string()));
        }
        self.draw(m).map_err(CliError::io)
    }

    fn draw(&mut self, m: &JsonMessage) -> io::Result<()> {
        let has_progress = m.progress_detail.is_some() || m.progress.is_some();
        let counts = m
            .progress_detail
            .is_some_and(|p| p.current.unwrap_or(0) > 0 || p.total.unwrap_or(0) > 0);
        if !self.tty {
            // A pipe gets no bars: only what reads well as a log.
            if counts {
                return Ok(());
            }
            return self.write_plain(m);
        }
        let Some(id) = m.id.as_deref().filter(|_| has_progress) else {
            self.lines.clear();
            return self.write_plain(m);
        };
        let index = match self.lines.iter().position(|l| l == id) {
            Some(i) => i,
            None => {
                self.lines.push(id.to_string());
                self.out.write_all(b"\n")?;
                self.lines.len() - 1
            }
        };
        let up = self.lines.len() - index;
        write!(self.out, "\x1b[{up}A\r\x1b[2K{id}: ")?;
        if let Some(s) = &m.status {
            self.out.write_all(s.as_bytes())?;
        }
        let bar = match m.progress_detail {
            Some(p) => progress_bar(
                p.current.unwrap_or(0),
                p.total.unwrap_or(0),
                self.width > BAR_MIN_WIDTH,
            ),
            None => m.progress.clone().unwrap_or_default(),
        };
        if !bar.is_empty() {
            write!(self.out, " {bar}")?;
        }
        write!(self.out, "\r\x1b[{up}B")?;
        self.out.flush()
    }

    fn write_plain(&mut self, m: &JsonMessage) -> io::Result<()> {
        if let Some(s) = &m.stream {
            self.out.write_all(s.as_bytes())?;
        } else if let Some(s) = &m.status {
            if let Some(id) = &m.id {
                write!(self.out, "{id}: ")?;
            }
            if let Some(from) = &m.from {
                write!(self.out, "(from {from}) ")?;
            }
            writeln!(self.out, "{s}")?;
        } else {
            return Ok(());
        }
        self.out.flush()
    }

    /// The output, back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// What a stream ended with.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The `aux` values, in order.
    pub aux: Vec<serde_json::Value>,
    /// The last `status` seen (import prints it).
    pub last_status: Option<String>,
}

/// Reads a JSON-lines progress body to its end, drawing each message. Stops at the first error
/// message and returns it.
pub fn display<R: Read, W: Write>(
    body: R,
    renderer: &mut Renderer<W>,
) -> Result<Outcome, CliError> {
    let mut outcome = Outcome::default();
    let mut reader = BufReader::new(body);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(CliError::io)? == 0 {
            return Ok(outcome);
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let m: JsonMessage = serde_json::from_str(text)
            .map_err(|e| CliError::msg(format!("bad progress message from daemon: {e}")))?;
        renderer.render(&m)?;
        if let Some(a) = m.aux {
            outcome.aux.push(a);
        }
        if let Some(s) = m.status {
            outcome.last_status = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, tty: bool) -> (String, Result<Outcome, CliError>) {
        let mut r = Renderer::new(Vec::new(), tty, 200);
        let res = display(input.as_bytes(), &mut r);
        (String::from_utf8(r.into_inner()).unwrap(), res)
    }

    const LOAD: &str = concat!(
        r#"{"status":"Loading layer","progressDetail":{"current":512,"total":1024},"id":"aaaaaaaaaaaa"}"#,
        "\r\n",
        r#"{"status":"Loading layer","progressDetail":{"current":1024,"total":1024},"id":"aaaaaaaaaaaa"}"#,
        "\r\n",
        r#"{"status":"Loading layer","progressDetail":{"current":10,"total":20},"id":"bbbbbbbbbbbb"}"#,
        "\r\n",
        r#"{"stream":"Loaded image: busybox:latest\n"}"#,
        "\r\n",
        r#"{"aux":{"ID":"sha256:abc"}}"#,
        "\n",
    );

    #[test]
    fn pipe_gets_no_bars() {
        let (out, res) = run(LOAD, false);
        assert_eq!(out, "Loaded image: busybox:latest\n");
        let o = res.unwrap();
        assert_eq!(o.aux[0]["ID"], "sha256:abc");
        assert_eq!(o.last_status.as_deref(), Some("Loading layer"));
    }

    #[test]
    fn terminal_redraws_each_id_in_place() {
        let (out, res) = run(LOAD, true);
        res.unwrap();
        // First id: a new line, up one, draw, down one.
        assert!(out.starts_with("\n\x1b[1A\r\x1b[2Kaaaaaaaaaaaa: Loading layer ["));
        // Second update of the first id redraws the same line (still one line up).
        assert_eq!(out.matches("\x1b[1A\r\x1b[2Kaaaaaaaaaaaa").count(), 2);
        // The second id gets a new line; the first is now two lines up.
        assert!(out.contains("\x1b[1A\r\x1b[2Kbbbbbbbbbbbb: Loading layer ["));
        assert!(out.contains("1.024kB/1.024kB"));
        assert!(out.ends_with("Loaded image: busybox:latest\n"));
    }

    #[test]
    fn narrow_terminal_gets_numbers_only() {
        let mut r = Renderer::new(Vec::new(), true, 80);
        r.render(&JsonMessage::progress("Loading layer", "x", 1, 2))
            .unwrap();
        let out = String::from_utf8(r.into_inner()).unwrap();
        assert!(!out.contains("[=") && !out.contains("> "), "{out:?}");
        assert!(out.contains("x: Loading layer       1B/2B"), "{out:?}");
    }

    #[test]
    fn status_lines_print_on_a_pipe() {
        let (out, _) = run(
            "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"abc\"}\n{\"status\":\"Digest: sha256:x\"}\n",
            false,
        );
        assert_eq!(out, "abc: Pulling fs layer\nDigest: sha256:x\n");
    }

    #[test]
    fn error_stops_the_stream() {
        let (out, res) = run(
            "{\"stream\":\"one\\n\"}\n{\"errorDetail\":{\"message\":\"bad layer\"},\"error\":\"bad layer\"}\n{\"stream\":\"two\\n\"}\n",
            false,
        );
        assert_eq!(out, "one\n");
        assert_eq!(res.unwrap_err().message, "bad layer");
        let (_, res) = run("not json\n", true);
        assert!(res.unwrap_err().message.starts_with("bad progress message"));
    }
}
