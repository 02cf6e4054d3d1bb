//! The local terminal: size, raw mode (restored on drop), and SIGWINCH.
use std::os::fd::AsFd;

use rustix::termios::{self, Termios};

/// (rows, cols) of the terminal on stdout, if it is one.
pub fn size() -> Option<(u16, u16)> {
    let out = std::io::stdout();
    let ws = termios::tcgetwinsize(out.as_fd()).ok()?;
    (ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    termios::isatty(std::io::stdin().as_fd())
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    termios::isatty(std::io::stdout().as_fd())
}

/// Puts stdin's terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Enters raw mode (None when stdin is not a terminal).
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(
            std::io::stdin().as_fd(),
            termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
