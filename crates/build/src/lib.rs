//! The Dockerfile language as Docker documents it, for berth's builder.
//!
//! Three layers, each usable alone:
//!
//! - [`parser`]: text to instructions ([`parser::Node`]): parser directives (`# syntax=`,
//!   `# escape=`), comments, line continuations (also across comment and empty lines),
//!   heredocs (`RUN <<EOF`, `<<-EOF`, `<<"EOF"`, several per line), flags, JSON (exec) or shell
//!   form, exactly as BuildKit's parser splits them (its test files are this crate's tests).
//! - [`instruction`]: what each instruction means ([`Command`]): flags checked (`--from`,
//!   `--chown`, `--chmod`, `--link`, `--mount=…`, `--network`, `--interval`, …), arguments
//!   counted, Docker's error messages, and [`Command::expand`] for the words Docker expands.
//! - [`stage`]: the file as build stages ([`Dockerfile`]) and what one build needs
//!   ([`Dockerfile::plan`]): the global `ARG`s resolved with the build arguments, each stage's
//!   base (image, earlier stage or `scratch`), the stages the target depends on and nothing
//!   else, in waves that can build concurrently; [`StageEnv`] keeps a stage's `ENV` and `ARG`
//!   state while the engine walks its instructions (`ARG` scoping, proxy arguments, the
//!   automatic platform arguments, what `RUN` sees and what its history line records).
//!
//! Beside them: [`shell`] (Docker's `ShellLex`: quotes, escapes, `${var:-word}` and the other
//! modifiers) and [`dockerignore`] (`.dockerignore` files and moby's pattern matcher, shared by
//! the CLI that sends a context and the daemon that receives it).
//!
//! The language is pure (no I/O: the caller hands over the Dockerfile's text); [`engine`] runs
//! it: the context, the steps (containers for `RUN`, layers written directly for `COPY`/`ADD`),
//! the cache, concurrency between stages, the legacy builder's progress stream.
//!
//! ```
//! use berth_build::{Base, BuildOptions, Command, Dockerfile};
//!
//! let df = Dockerfile::parse(
//!     "ARG VERSION=3.20\n\
//!      FROM alpine:${VERSION} AS build\n\
//!      RUN --mount=type=cache,target=/root/.cache make\n\
//!      FROM scratch\n\
//!      COPY --from=build /out /\n",
//! )?;
//! let mut opts = BuildOptions::default();
//! opts.build_args.insert("VERSION".into(), "3.21".into());
//! let plan = df.plan(&opts)?;
//! assert_eq!(plan.stages[0].base, Base::Image("alpine:3.21".into()));
//! assert_eq!(plan.stages[1].depends_on, vec![0]);
//!
//! // The engine walks a stage: expand each instruction with the stage's variables, run it,
//! // then let it change the variables (ENV, ARG).
//! let lex = df.lex();
//! let mut env = plan.stage_env(&["PATH=/usr/bin".to_string()]);
//! for inst in &df.stages[0].instructions {
//!     let inst = inst.expand(&lex, &env)?;
//!     if let Command::Run(run) = &inst.command {
//!         assert_eq!(run.mounts[0].target.as_deref(), Some("/root/.cache"));
//!     }
//!     env.apply(&inst, &lex)?;
//! }
//! # Ok::<(), berth_build::DockerfileError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dockerignore;
#[cfg(feature = "engine")]
pub mod engine;
mod error;
mod flags;
pub mod instruction;
pub mod mount;
pub mod parser;
pub mod shell;
pub mod stage;
mod text;

pub use dockerignore::{PatternError, PatternMatcher};
pub use error::DockerfileError;
pub use instruction::{
    Add, ArgDecl, Command, Copy, ExpandError, HealthCheck, Healthcheck, InlineFile, Instruction,
    KeyValue, Onbuild, Run, RunNetwork, RunProgram, RunSecurity, ShellOrExec, parse_trigger,
};
pub use mount::{CacheSharing, MountType, RunMount};
pub use parser::Heredoc;
pub use shell::{Env, Lex, ShellError};
pub use stage::{
    Base, BuildOptions, BuildPlan, Dockerfile, PlannedStage, Platform, Source, Stage, StageEnv,
};

#[cfg(test)]
mod vectors;
