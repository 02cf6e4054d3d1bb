//! The y/N question of the destructive commands (`prune` without `-f`).
use std::io::{BufRead, Write};

/// Asks y/N on stdin.
pub fn confirm(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}
