//! The errors of the Dockerfile language, each naming the line it is about.
use berth_errdefs::{Classify, ErrorKind};

use crate::shell::ShellError;

/// Why a Dockerfile (or a `.dockerignore`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    /// The text is not a valid Dockerfile: an unknown or malformed instruction, a bad flag, an
    /// unterminated heredoc, a bad parser directive.
    #[error("dockerfile parse error on line {line}: {message}")]
    Syntax {
        /// The first line of the instruction (1-based).
        line: usize,
        /// What is wrong, worded as Docker words it.
        message: String,
    },
    /// Nothing but comments and blank lines.
    #[error("file with no instructions")]
    NoInstructions,
    /// Only `ARG`s, no `FROM`.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// A variable expansion failed (`${x:?}`, an unterminated quote in `ENV`, …).
    #[error("dockerfile line {line}: {source}")]
    Expansion {
        /// The first line of the instruction.
        line: usize,
        /// The failed word.
        #[source]
        source: ShellError,
    },
    /// A stage cannot be resolved: a blank base name, a bad `--from`, a bad platform.
    #[error("dockerfile line {line}: {message}")]
    Stage {
        /// The line of the instruction.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `--target` names no stage.
    #[error("target stage \"{target}\" could not be found")]
    TargetNotFound {
        /// The target asked for.
        target: String,
    },
    /// Stages that depend on each other.
    #[error("circular dependency detected on stage: {stage}")]
    CircularDependency {
        /// The stage's name (`stage-N` when it has none).
        stage: String,
    },
    /// A `.dockerignore` pattern that is not a valid pattern.
    #[error("{0}")]
    Pattern(#[from] crate::dockerignore::PatternError),
}

impl DockerfileError {
    pub(crate) fn syntax(line: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError::Syntax {
            line,
            message: message.into(),
        }
    }

    /// The Dockerfile line the error is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::Expansion { line, .. } | Self::Stage { line, .. } => {
                Some(*line)
            }
            Self::NoInstructions
            | Self::NoStages
            | Self::TargetNotFound { .. }
            | Self::CircularDependency { .. }
            | Self::Pattern(_) => None,
        }
    }
}

impl Classify for DockerfileError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Syntax { .. }
            | Self::NoInstructions
            | Self::NoStages
            | Self::Expansion { .. }
            | Self::Stage { .. }
            | Self::TargetNotFound { .. }
            | Self::CircularDependency { .. }
            | Self::Pattern(_) => ErrorKind::InvalidArgument,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_bad_request() {
        let errors = [
            DockerfileError::syntax(3, "unknown instruction: FOO"),
            DockerfileError::NoInstructions,
            DockerfileError::NoStages,
            DockerfileError::TargetNotFound { target: "x".into() },
            DockerfileError::CircularDependency { stage: "a".into() },
        ];
        for e in errors {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
        assert_eq!(
            DockerfileError::syntax(3, "unknown instruction: FOO").to_string(),
            "dockerfile parse error on line 3: unknown instruction: FOO"
        );
        assert_eq!(DockerfileError::syntax(3, "x").line(), Some(3));
    }
}
