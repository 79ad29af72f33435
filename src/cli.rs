//! The command line, as one clap definition shared by the binary and the man
//! page generator (tests/manpage.rs keeps man/lockdump.1 in step with it).

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lockdump",
    version,
    about = "Why is this process stuck? Dump every thread's stack and find deadlocks.",
    long_about = "Attaches to a running process with ptrace, snapshots every thread, unwinds and symbolizes \
each stack (and the Python stack of CPython threads), finds what every blocked thread waits on and who \
holds it, and reports every circular wait. The target is stopped only while registers and stacks are \
copied, then resumed; nothing in it is ever written.\n\n\
Reading the report: the headline (the verdict, threads and resources counted by kind), each deadlock \
(who waits for what, held by whom, where, and whether the owner is exact or inferred), the threads \
stuck for good (with --tree, also the circular wait through processes that explains them, such as a \
parent in waitpid for a child blocked writing to a pipe only the parent reads), a table of every waiting thread (deadlocked threads first), then every thread's \
header (TID, name, state, system call), the locks it holds (holds: ... — exact) and its stack. \
Threads with identical stacks waiting for the same thing are one entry (40 threads \"pool-*\" \
(TIDs 101–140)) unless --all-threads. Names from the target are quoted with \\\" and \\\\ escaped \
and control characters as \\xNN.",
    after_help = "EXIT STATUS:\n  0  inspected everything, no deadlock found, nothing stuck\n  \
1  inspected, at least one deadlock found, or threads stuck for good (a process\n     \
whose every thread waits, with no timeout, for what only its asleep threads\n     \
could provide; or threads behind a lock whose owner is gone): it will not\n     \
resolve by itself\n  \
2  could not inspect (bad PID, permissions, the process exited, ...)\n  \
3  inspected, no deadlock among what was examined, but part of a target was not\n     \
examined (the report and the JSON's verdict.unexamined say what and why)\n  \
4  with --watch: no deadlock, nothing stuck, but a probable livelock (threads\n     \
spinning in one loop while the lock it names never changed hands) or a\n     \
starvation (a thread waited the whole interval for a lock others kept taking)\n\n\
lockdump run: CMD's own exit code (128+N if a signal N ended it), 124 if CMD\n\
was still running at the run's timeout (its process tree was dumped), or\n\
126/127 if CMD could not be run / was not found.",
    subcommand_negates_reqs = true,
    override_usage = "lockdump [OPTIONS] --pid <PID>\n       lockdump [OPTIONS] --core <FILE>\n       lockdump [OPTIONS] <COMMAND>"
)]
pub struct Cli {
    /// Process to inspect; repeat to inspect several processes as one wait-for graph
    /// (for locks shared between processes).
    #[arg(short = 'p', long = "pid", value_name = "PID", required_unless_present = "core")]
    pub pids: Vec<i32>,

    /// Read an ELF core file (written by gcore or the kernel) instead of a
    /// live process: the same report, from the core's threads and memory,
    /// and the files it mapped (under --sysroot). Repeat for processes that
    /// share locks: their cores are one wait-for graph.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pids", "tree", "no_stop", "watch"])]
    pub core: Vec<std::path::PathBuf>,

    /// With --core: the executable the core's process ran, when it is not
    /// at the path the core names (under --sysroot); for every core given.
    #[arg(long, value_name = "PATH", requires = "core", conflicts_with = "pids")]
    pub exe: Option<std::path::PathBuf>,

    /// With --core: the directory the core's mapped files (executable,
    /// libraries) are found under, for a core from another machine or a
    /// container (default /).
    #[arg(long, value_name = "DIR", requires = "core", conflicts_with = "pids")]
    pub sysroot: Option<std::path::PathBuf>,

    /// Also inspect every process descended from each PID (children,
    /// grandchildren, ...), all as one wait-for graph with one exit code.
    #[arg(long)]
    pub tree: bool,

    /// Print JSON (schema: docs/json-schema.md) instead of the text report.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print the wait-for graph as Graphviz DOT instead of the text report
    /// (threads, locks, "waits for"/"held by" edges, cycles in red); render
    /// it with `dot -Tsvg`.
    #[arg(long, global = true, conflicts_with = "json")]
    pub dot: bool,

    /// Also write a self-contained HTML report to FILE (the verdict, the
    /// wait-for graph as inline SVG, the text report; no network
    /// resources), e.g. as a CI artifact. Standard output is unchanged.
    #[arg(long, global = true, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,

    /// For Python threads, also show native frames (interleaved with the Python frames).
    #[arg(long, global = true, conflicts_with = "no_python")]
    pub native: bool,

    /// List every thread on its own in the text report. By default threads
    /// with identical stacks waiting for the same kind of thing (an idle
    /// pool) are folded into one entry with one stack, and into one row of
    /// the summary table; threads in a deadlock, waiting for a lock someone
    /// holds, or holding locks are never folded. JSON always lists every thread.
    #[arg(long, global = true)]
    pub all_threads: bool,

    /// Do not look for Python interpreters: show native stacks only.
    #[arg(long, global = true)]
    pub no_python: bool,

    /// Never stop the target: use the registers the kernel exposes in
    /// /proc/TID/syscall (SP and PC of threads blocked in a syscall).
    /// Stacks may be partial; lock analysis still works.
    #[arg(long, global = true)]
    pub no_stop: bool,

    /// After the first snapshot, watch the process for DURATION (2s, 500ms;
    /// a plain number is seconds) without stopping it, sampling every thread
    /// every 25 ms: how long each wait stays unchanged, which threads spin
    /// and where, probable livelocks and starvation (exit 4). Each deadlock
    /// is confirmed or not: its threads stayed in their waits and never woke
    /// (`--confirm` is the same option). `lockdump run` confirms for 2 s by
    /// default; 0 turns it off.
    #[arg(
        long,
        visible_alias = "confirm",
        global = true,
        value_name = "DURATION",
        value_parser = crate::watchdog::parse_duration
    )]
    pub watch: Option<std::time::Duration>,

    /// Bytes of each thread's stack copied while it is stopped.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 32 * 1024)]
    pub stack_bytes: usize,

    /// Give up if a thread does not stop within this many seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 5)]
    pub stop_timeout: u64,

    /// At most this many frames per thread.
    #[arg(long, global = true, value_name = "N", default_value_t = crate::unwind::MAX_FRAMES)]
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

impl Cli {
    /// Parse the process's arguments; on a usage error print it and exit 2.
    pub fn parse_args() -> Cli {
        match Cli::try_parse_args(std::env::args_os()) {
            Ok(cli) => cli,
            // --help, --version: clap prints them, exit 0.
            Err(e) if !e.use_stderr() => e.exit(),
            // `lockdump run` with no command: clap shows that subcommand's
            // help on stderr and exits 2; the help is the useful answer.
            Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            Err(e) => {
                eprintln!("{}", usage_error_line(&e.to_string()));
                std::process::exit(crate::error::exit::CANNOT_INSPECT);
            }
        }
    }

    /// Parse `args` (program name first). Options marked `global` work before
    /// and after a subcommand (`lockdump --json demo`, `lockdump demo --json`);
    /// `--pid` names the target, which a subcommand brings itself, so the two
    /// conflict. (clap's `args_conflicts_with_subcommands` would enforce that
    /// but rejects global options before the subcommand too.)
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(args)?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
        if let (Some(sub), false) = (matches.subcommand_name(), cli.pids.is_empty()) {
            return Err(cmd.error(
                ErrorKind::ArgumentConflict,
                format!("the subcommand '{sub}' cannot be used with '--pid <PID>'"),
            ));
        }
        if let (Some(sub), false) = (matches.subcommand_name(), cli.core.is_empty()) {
            return Err(cmd.error(
                ErrorKind::ArgumentConflict,
                format!("the subcommand '{sub}' cannot be used with '--core <FILE>'"),
            ));
        }
        Ok(cli)
    }
}

/// A clap usage error as one line that says what to do: clap's message
/// (its indented continuation lines joined on) without the usage block,
/// which the hint replaces. A CI log shows it whole in one line, like every
/// other lockdump error.
pub fn usage_error_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !parts.is_empty() {
                break;
            }
            continue;
        }
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    let msg = parts.join(" ").trim_end_matches(':').to_string();
    let tip = rendered
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("tip: "))
        .map(|t| format!("; {t}"))
        .unwrap_or_default();
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| format!("usage: {u}; "))
        .unwrap_or_default();
    format!("lockdump: {msg}{tip} ({usage}`lockdump --help` lists every option)")
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a built-in child process that deadlocks, diagnose it, and kill it.
    ///
    /// Every option but --pid applies, before or after `demo`.
    Demo,
    /// Run CMD as a hang watchdog: dump its whole process tree if it hangs.
    ///
    /// CMD's exit status is passed through. If it is still running after the
    /// timeout, every process of its tree is dumped (to stderr, or to the
    /// report file; JSON with the global JSON option), then the tree is ended.
    ///
    /// lockdump becomes a child subreaper, so descendants that double-fork or
    /// call setsid are still part of the tree. SIGTERM, SIGHUP and SIGQUIT
    /// sent to lockdump are passed on to CMD.
    #[command(arg_required_else_help = true)]
    Run(RunArgs),
    /// Print a completion script for SHELL on stdout (see README: Install).
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The demo's deadlocking child process (internal).
    #[command(name = "__demo-child", hide = true)]
    DemoChild,
}

/// `lockdump run`'s own options (the global ones apply to its dumps).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Dump and end CMD's process tree when it runs longer than this
    /// (90s, 10m, 1h; a plain number is seconds). Without it, lockdump only
    /// dumps on --on-signal.
    #[arg(long, value_name = "DURATION", value_parser = crate::watchdog::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// After a timeout's dump: time between SIGTERM and SIGKILL to the tree.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::watchdog::parse_duration)]
    pub kill_after: std::time::Duration,

    /// After a timeout's dump, leave the tree running (exit 124 all the same).
    #[arg(long)]
    pub keep: bool,

    /// Write the dump to FILE instead of stderr (JSON with --json).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,

    /// Also dump the tree when lockdump receives this signal (SIGUSR1,
    /// SIGTERM, ...; may repeat). SIGUSR1/SIGUSR2 only dump; the termination
    /// signals are then passed on to CMD as usual.
    #[arg(long, value_name = "SIGNAL", value_parser = crate::watchdog::parse_signal)]
    pub on_signal: Vec<i32>,

    /// The command to run and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

pub use crate::report::style::ColorChoice;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("lockdump").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_work_before_and_after_the_subcommand() {
        for args in [
            &[
                "--color",
                "never",
                "--json",
                "--no-python",
                "--stack-bytes",
                "4096",
                "demo",
            ][..],
            &[
                "demo",
                "--color",
                "never",
                "--json",
                "--no-python",
                "--stack-bytes",
                "4096",
            ][..],
            &[
                "--color",
                "never",
                "demo",
                "--json",
                "--no-python",
                "--stack-bytes",
                "4096",
            ][..],
        ] {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(matches!(cli.command, Some(Command::Demo)), "{args:?}");
            assert_eq!(cli.color, ColorChoice::Never, "{args:?}");
            assert!(cli.json && cli.no_python, "{args:?}");
            assert_eq!(cli.stack_bytes, 4096, "{args:?}");
            assert!(cli.pids.is_empty());
        }
        let cli = parse(&["--color", "always", "-p", "42", "-p", "43"]).expect("pid form");
        assert_eq!(
            (cli.pids, cli.color, cli.command.is_none()),
            (vec![42, 43], ColorChoice::Always, true)
        );
    }

    #[test]
    fn pid_and_a_subcommand_conflict() {
        for args in [&["-p", "42", "demo"][..], &["--pid", "42", "--json", "demo"][..]] {
            let e = parse(args).err().unwrap_or_else(|| panic!("{args:?} was accepted"));
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{args:?}: {e}");
            assert!(
                e.to_string()
                    .contains("the subcommand 'demo' cannot be used with '--pid <PID>'"),
                "{e}"
            );
        }
        // `-p` after the subcommand is not one of its options at all.
        assert_eq!(
            parse(&["demo", "-p", "42"]).err().map(|e| e.kind()),
            Some(ErrorKind::UnknownArgument)
        );
        // Neither form: the PID is required.
        assert_eq!(
            parse(&["--json"]).err().map(|e| e.kind()),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert!(matches!(
            parse(&["demo", "--native", "--no-python"]).err().map(|e| e.kind()),
            Some(ErrorKind::ArgumentConflict)
        ));
    }

    #[test]
    fn core_takes_no_pid_and_no_live_only_option() {
        let cli = parse(&["--core", "c", "--exe", "e", "--sysroot", "/r"]).expect("core form");
        assert_eq!(cli.core, vec![std::path::PathBuf::from("c")]);
        let two = parse(&["--core", "a", "--core", "b"]).expect("two cores");
        assert_eq!(two.core.len(), 2);
        assert!(cli.pids.is_empty());
        for args in [
            &["--core", "c", "-p", "1"][..],
            &["--core", "c", "--tree"][..],
            &["--core", "c", "--no-stop"][..],
            &["--core", "c", "--watch", "1s"][..],
            &["--core", "c", "demo"][..],
        ] {
            assert_eq!(
                parse(args).err().map(|e| e.kind()),
                Some(ErrorKind::ArgumentConflict),
                "{args:?}"
            );
        }
        // --exe and --sysroot only mean something for a core.
        for args in [&["-p", "1", "--exe", "e"][..], &["-p", "1", "--sysroot", "/"][..]] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }
}
