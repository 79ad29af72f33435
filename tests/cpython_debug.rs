//! Manual tool: print what `cpython::inspect` reports for a live process.
//! `PID=1234 cargo test --test cpython_debug -- --ignored --nocapture`
mod support;
use lockdump::runtimes::{cpython, ProcessView};
use lockdump::target::ProcessMemory;

#[test]
#[ignore]
fn dump() {
    let pid: i32 = std::env::var("PID").expect("PID=<target pid>").parse().unwrap();
    let snap = support::snapshot_from_proc(pid);
    let syms = support::ProcSymbols::new(pid);
    let mem = ProcessMemory::new(pid);
    let view = ProcessView {
        snapshot: &snap,
        stacks: &[],
        memory: &mem,
        symbols: &syms,
    };
    let start = std::time::Instant::now();
    let r = cpython::inspect(&view);
    println!("took {:?}", start.elapsed());
    println!("{}", serde_json::to_string_pretty(&r.unwrap()).unwrap());
}
