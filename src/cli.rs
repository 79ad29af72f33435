//! The command line, as one clap definition shared by the binary and the man
//! page generator (tests/manpage.rs keeps man/lockdump.1 in step with it).

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lockdump",
    version,
    about = "Why is this process stuck? Dump every thread's stack and find deadlocks.",
    long_about = "Attaches to a running process with ptrace, snapshots every thread, unwinds and symbolizes \
each stack (and the Python stack of CPython threads), finds what every blocked thread waits on and who \
holds it, and reports every circular wait. The target is stopped only while registers and stacks are \
copied, then resumed; nothing in it is ever written.",
    after_help = "EXIT STATUS:\n  0  inspected, no deadlock found\n  1  inspected, at least one deadlock found\n  \
2  could not inspect (bad PID, permissions, the process exited, ...)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Process to inspect; repeat to inspect several processes as one wait-for graph
    /// (for locks shared between processes).
    #[arg(short = 'p', long = "pid", value_name = "PID", required = true)]
    pub pids: Vec<i32>,

    /// Print JSON (schema: docs/json-schema.md) instead of the text report.
    #[arg(long, global = true)]
    pub json: bool,

    /// For Python threads, also show native frames (interleaved with the Python frames).
    #[arg(long, global = true, conflicts_with = "no_python")]
    pub native: bool,

    /// Do not look for Python interpreters: show native stacks only.
    #[arg(long, global = true)]
    pub no_python: bool,

    /// Never stop the target: use the registers the kernel exposes in
    /// /proc/TID/syscall (SP and PC of threads blocked in a syscall).
    /// Stacks may be partial; lock analysis still works.
    #[arg(long)]
    pub no_stop: bool,

    /// Bytes of each thread's stack copied while it is stopped.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024)]
    pub stack_bytes: usize,

    /// Give up if a thread does not stop within this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub stop_timeout: u64,

    /// At most this many frames per thread.
    #[arg(long, value_name = "N", default_value_t = crate::unwind::MAX_FRAMES)]
    pub max_frames: usize,

    /// Do not read or write the cache of decompressed debug sections
    /// ($XDG_CACHE_HOME/lockdump, else ~/.cache/lockdump). Same as
    /// LOCKDUMP_NO_CACHE=1.
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// When to color the text report.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a built-in child process that deadlocks, diagnose it, and kill it.
    Demo,
    /// The demo's deadlocking child process (internal).
    #[command(name = "__demo-child", hide = true)]
    DemoChild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when stdout is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}
