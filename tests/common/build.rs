//! Building the fixture programs: C with the system compiler, Rust as cargo
//! examples.
//!
//! Builds are cached (rebuilt only when a source is newer than the output)
//! and safe to run from several tests and test binaries at once: each build
//! writes a private temporary file and renames it into place, so a reader
//! sees either the old complete binary or the new complete binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{fixtures_dir, scratch_dir, unique_path};

/// How a C fixture is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `cc -g -O2 -pthread`: symbols and DWARF (line tables, inlined frames).
    Debug,
    /// `cc -O2 -pthread`, then `strip`: no .symtab, no DWARF; only .dynsym
    /// and .eh_frame remain.
    Stripped,
    /// `cc -O2 -pthread`, not stripped: ELF symbols (.symtab) but no DWARF
    /// (what lockdump names without debug info: `forks+0x28`).
    NoDwarf,
    /// `cc -static -g -O2 -pthread`: glibc linked into the executable
    /// (libc.a has symbols but no DWARF); no libc module to recognize its
    /// functions by.
    GlibcStatic,
    /// `musl-gcc -static -g -O2 -pthread` (Debian's musl-tools): musl linked
    /// into the executable, with symbols and DWARF for the fixture's code
    /// (Debian's libc.a has neither DWARF nor unwind tables).
    MuslStatic,
    /// `musl-gcc -static -O2 -pthread`, then `strip`: no symbols at all, no
    /// libc mapping; only the code and the memory tell it is musl.
    MuslStaticStripped,
}

/// Serializes builds within one test binary, so two tests wanting the same
/// fixture do not both compile it (across binaries the rename keeps it safe).
static BUILD_LOCK: Mutex<()> = Mutex::new(());

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// True when `out` exists and is at least as new as every input.
fn up_to_date(out: &Path, inputs: &[PathBuf]) -> bool {
    let Some(built) = mtime(out) else { return false };
    inputs.iter().all(|i| {
        let t = mtime(i).unwrap_or_else(|| panic!("missing fixture source {}", i.display()));
        t <= built
    })
}

/// Run `cmd` (a compiler or strip); panic with its output when it fails.
fn run_tool(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?} for {what}: {e} (install a C toolchain: gcc/cc, binutils)",
            cmd
        )
    });
    if !out.status.success() {
        panic!(
            "{what} failed: {:?} exited with {}\n{}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The C sources of fixtures/c: the fixture plus every shared header.
fn c_inputs(name: &str) -> Vec<PathBuf> {
    c_inputs_in(&fixtures_dir().join("c"), name)
}

/// `DIR/NAME.c` plus every header in DIR.
fn c_inputs_in(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut inputs = vec![dir.join(format!("{name}.c"))];
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries.flatten() {
        if entry.path().extension().is_some_and(|x| x == "h") {
            inputs.push(entry.path());
        }
    }
    inputs
}

/// Compile `inputs[0]` with `flags` to `out`, through a temporary file.
fn compile(inputs: &[PathBuf], flags: &[&str], out: &Path, strip: bool) {
    compile_with("cc", inputs, flags, out, strip)
}

/// [`compile`] with the compiler driver `compiler`.
fn compile_with(compiler: &str, inputs: &[PathBuf], flags: &[&str], out: &Path, strip: bool) {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if up_to_date(out, inputs) {
        return;
    }
    let stem = out.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = unique_path(&format!(".{stem}.tmp"));
    let mut cc = Command::new(compiler);
    cc.args(flags).arg("-o").arg(&tmp).arg(&inputs[0]);
    run_tool(cc, &format!("compiling {}", inputs[0].display()));
    if strip {
        let mut st = Command::new("strip");
        st.arg(&tmp);
        run_tool(st, &format!("stripping {}", tmp.display()));
    }
    std::fs::rename(&tmp, out).unwrap_or_else(|e| panic!("cannot rename {} to {}: {e}", tmp.display(), out.display()));
}

/// Build fixtures/c/NAME.c and return the path of the executable.
pub fn build_c(name: &str, variant: Variant) -> PathBuf {
    let inputs = c_inputs(name);
    let (file, flags, strip): (String, &[&str], bool) = match variant {
        Variant::Debug => (name.to_string(), &["-g", "-O2", "-pthread", "-Wall", "-Wextra"], false),
        Variant::Stripped => (
            format!("{name}-stripped"),
            &["-O2", "-pthread", "-Wall", "-Wextra"],
            true,
        ),
        Variant::NoDwarf => (
            format!("{name}-nodwarf"),
            &["-O2", "-pthread", "-Wall", "-Wextra"],
            false,
        ),
        Variant::GlibcStatic => (
            format!("{name}-glibc-static"),
            &["-static", "-g", "-O2", "-pthread", "-Wall", "-Wextra"],
            false,
        ),
        Variant::MuslStatic | Variant::MuslStaticStripped => return build_musl(name, &inputs, variant),
    };
    let out = scratch_dir().join(file);
    compile(&inputs, flags, &out, strip);
    out
}

/// The musl variants. A missing musl-gcc fails the test (never a skip):
/// scripts/setup-tools.sh installs musl-tools.
fn build_musl(name: &str, inputs: &[PathBuf], variant: Variant) -> PathBuf {
    let found = Command::new("musl-gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "musl-gcc is not installed: the musl tests need Debian's musl-tools (scripts/setup-tools.sh installs it)"
    );
    let (file, flags, strip): (String, &[&str], bool) = match variant {
        Variant::MuslStatic => (
            format!("{name}-musl-static"),
            &["-static", "-g", "-O2", "-pthread", "-Wall", "-Wextra"],
            false,
        ),
        _ => (
            format!("{name}-musl-static-stripped"),
            &["-static", "-O2", "-pthread", "-Wall", "-Wextra"],
            true,
        ),
    };
    let out = scratch_dir().join(file);
    compile_with("musl-gcc", inputs, flags, &out, strip);
    out
}

/// Build fixtures/c/NAME.c as a shared library `libNAME.so` and return its path.
pub fn build_shared_lib(name: &str) -> PathBuf {
    let inputs = vec![fixtures_dir().join("c").join(format!("{name}.c"))];
    let out = scratch_dir().join(format!("lib{name}.so"));
    compile(
        &inputs,
        &["-g", "-O2", "-pthread", "-shared", "-fPIC", "-Wall", "-Wextra"],
        &out,
        false,
    );
    out
}

/// Build fixtures/cpp/NAME.cpp (which may include fixtures/c's headers)
/// with `g++ -g -O2 -pthread` and return the path of the executable.
pub fn build_cpp(name: &str) -> PathBuf {
    let mut inputs = c_inputs(name);
    inputs[0] = fixtures_dir().join("cpp").join(format!("{name}.cpp"));
    let out = scratch_dir().join(format!("{name}-cpp"));
    compile_with(
        "g++",
        &inputs,
        &["-g", "-O2", "-pthread", "-Wall", "-Wextra"],
        &out,
        false,
    );
    out
}

/// The directory under [`scratch_dir`] for outputs of one group of sources
/// (their names may repeat fixtures/c's: fixtures/reliability has a busy.c).
fn scratch_subdir(name: &str) -> PathBuf {
    let dir = scratch_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The reliability fixtures (fixtures/reliability/NAME.c with its
/// progress.h), compiled with `cc -O1 -g -pthread -fno-omit-frame-pointer
/// -Wall` plus `extra`, to `out_name`.
fn build_reliability(name: &str, out_name: &str, extra: &[&str]) -> PathBuf {
    let inputs = c_inputs_in(&fixtures_dir().join("reliability"), name);
    let mut flags = vec!["-O1", "-g", "-pthread", "-fno-omit-frame-pointer", "-Wall"];
    flags.extend_from_slice(extra);
    let out = scratch_subdir("reliability").join(out_name);
    compile(&inputs, &flags, &out, false);
    out
}

/// The executable built from fixtures/reliability/NAME.c.
pub fn reliability_fixture(name: &str) -> PathBuf {
    let extra: &[&str] = if name == "dlhost" { &["-ldl"] } else { &[] };
    build_reliability(name, name, extra)
}

/// The shared library `libNAME.so` built from fixtures/reliability/NAME.c.
pub fn reliability_shared_lib(name: &str) -> PathBuf {
    build_reliability(name, &format!("lib{name}.so"), &["-shared", "-fPIC"])
}

/// tests/data/native/NAME.c (the analyzer tests' own fixtures, which print
/// `READY key=value ...`) compiled with `cc -O2 -pthread`.
pub fn native_c(name: &str) -> PathBuf {
    let inputs = [super::manifest_dir()
        .join("tests/data/native")
        .join(format!("{name}.c"))];
    let out = scratch_subdir("native").join(name);
    compile(&inputs, &["-O2", "-pthread"], &out, false);
    out
}

/// tests/data/native/NAME.rs compiled with `rustc -O --edition 2021` (the
/// toolchain running the tests, or `$RUSTC`).
pub fn native_rust(name: &str) -> PathBuf {
    let inputs = [super::manifest_dir()
        .join("tests/data/native")
        .join(format!("{name}.rs"))];
    let out = scratch_subdir("native").join(name);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    compile_with(&rustc, &inputs, &["-O", "--edition", "2021"], &out, false);
    out
}

/// A command that runs the C++ fixture NAME with `args`.
pub fn cpp_fixture(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(build_cpp(name));
    cmd.args(args);
    cmd
}

/// A command that runs the C fixture NAME with `args`.
pub fn c_fixture(name: &str, variant: Variant, args: &[&str]) -> Command {
    let mut cmd = Command::new(build_c(name, variant));
    cmd.args(args);
    cmd
}

/// The profile directory (target/debug or target/release) this test binary
/// was built into: it lives in `<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    deps.parent().expect("deps has a parent").to_path_buf()
}

/// The Rust fixture NAME (a cargo example, fixtures/rust/NAME.rs), built if
/// `cargo test` did not build it already (e.g. `cargo test --test X`).
pub fn rust_example(name: &str) -> PathBuf {
    let profile = profile_dir();
    let exe = profile.join("examples").join(name);
    let rust = fixtures_dir().join("rust");
    let inputs = [rust.join(format!("{name}.rs")), rust.join("ready.rs")];
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if up_to_date(&exe, &inputs) {
        return exe;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--example", name])
        .current_dir(super::manifest_dir())
        .env("CARGO_TARGET_DIR", profile.parent().expect("profile dir has a parent"));
    if profile.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    run_tool(cmd, &format!("building example {name}"));
    assert!(
        exe.exists(),
        "cargo built example {name} but {} does not exist",
        exe.display()
    );
    exe
}

/// How a Rust fixture is built for [`rust_example_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RustBuild {
    /// The `fixture-debug` profile: release code with full debug info
    /// (`debug = 2`: locals, their types and DWARF locations).
    Debug,
    /// The same executable, `strip`ped: no .symtab, no DWARF (only .dynsym
    /// and .eh_frame remain), the code identical to [`RustBuild::Debug`]'s.
    Stripped,
}

/// The Rust fixture NAME built as `build` says (cached like [`rust_example`]).
pub fn rust_example_with(name: &str, build: RustBuild) -> PathBuf {
    let profile = profile_dir();
    let target = profile.parent().expect("profile dir has a parent").to_path_buf();
    let exe = target.join("fixture-debug").join("examples").join(name);
    let rust = fixtures_dir().join("rust");
    let inputs = [rust.join(format!("{name}.rs")), rust.join("ready.rs")];
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !up_to_date(&exe, &inputs) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--profile", "fixture-debug", "--example", name])
            .current_dir(super::manifest_dir())
            .env("CARGO_TARGET_DIR", &target);
        run_tool(cmd, &format!("building example {name} (profile fixture-debug)"));
        assert!(
            exe.exists(),
            "cargo built example {name} but {} does not exist",
            exe.display()
        );
    }
    match build {
        RustBuild::Debug => exe,
        RustBuild::Stripped => {
            let out = scratch_dir().join(format!("{name}-stripped"));
            if !up_to_date(&out, std::slice::from_ref(&exe)) {
                let tmp = unique_path(&format!(".{name}-stripped.tmp"));
                let mut st = Command::new("strip");
                st.arg("-o").arg(&tmp).arg(&exe);
                run_tool(st, &format!("stripping {}", exe.display()));
                std::fs::rename(&tmp, &out)
                    .unwrap_or_else(|e| panic!("cannot rename {} to {}: {e}", tmp.display(), out.display()));
            }
            out
        }
    }
}
