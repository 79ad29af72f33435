//! man/lockdump.1 is generated from the clap definition; this test fails when
//! the checked-in page is stale. Regenerate with:
//! `UPDATE_MAN=1 cargo test --test manpage`.
//!
//! Also: every long option `lockdump --help` lists is in the man page and in
//! the bash, zsh and fish completions (`lockdump completions SHELL`), so the
//! three cannot drift from the binary.

use clap::CommandFactory;
use std::process::Command;

fn render() -> String {
    let cmd = lockdump::cli::Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf).expect("render man page");
    String::from_utf8(buf).expect("man page is UTF-8")
}

fn checked_in() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/lockdump.1");
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn man_page_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/lockdump.1");
    let fresh = render();
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &fresh).expect("write man page");
    }
    assert!(
        checked_in() == fresh,
        "man/lockdump.1 is stale: run `UPDATE_MAN=1 cargo test --test manpage` and commit the result"
    );
}

fn lockdump(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lockdump"))
        .args(args)
        .output()
        .expect("run lockdump");
    assert!(
        out.status.success(),
        "lockdump {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `--json`, `--dot`, ... as `--help` prints them.
fn long_options(help: &str) -> Vec<String> {
    let mut opts: Vec<String> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-p, ").unwrap_or(l);
            let l = l.strip_prefix("-h, ").unwrap_or(l);
            let l = l.strip_prefix("-V, ").unwrap_or(l);
            let opt = l.strip_prefix("--")?.split([' ', '=', '<']).next()?;
            Some(opt.to_string())
        })
        .collect();
    opts.sort();
    opts.dedup();
    opts
}

#[test]
fn help_man_page_and_completions_list_the_same_options() {
    let help = lockdump(&["--help"]);
    let opts = long_options(&help);
    for expected in ["dot", "html", "json", "native", "no-stop", "pid", "help", "version"] {
        assert!(
            opts.iter().any(|o| o == expected),
            "--help lacks --{expected}: {opts:?}"
        );
    }
    let man = checked_in();
    for shell in ["bash", "zsh", "fish"] {
        let script = lockdump(&["completions", shell]);
        for o in &opts {
            let needle = match shell {
                "fish" => format!("-l {o}"),
                _ => format!("--{o}"),
            };
            assert!(script.contains(&needle), "{shell} completion lacks --{o}");
        }
    }
    for o in &opts {
        // clap_mangen escapes the dashes: \-\-no\-stop.
        let escaped = format!("\\-\\-{}", o.replace('-', "\\-"));
        assert!(man.contains(&escaped), "man page lacks --{o} ({escaped})");
    }
    // The completions subcommand is for installing, not for the man page or --help.
    assert!(!help.contains("completions"), "{help}");
}
