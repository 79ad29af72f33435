use clap::Parser;
use lockdump::cli::Cli;
use lockdump::error::exit;
use lockdump::inspect::{inspect, Options};
use lockdump::symbols::ModuleCache;
use lockdump::target::capture::CaptureOptions;

fn main() {
    let cli = Cli::parse();
    let opts = Options {
        capture: CaptureOptions {
            stack_bytes: cli.stack_bytes,
            stop_timeout: std::time::Duration::from_secs(cli.stop_timeout),
            no_stop: cli.no_stop,
        },
        max_frames: cli.max_frames,
        python: !cli.no_python,
    };
    let cache = ModuleCache::new();
    for &pid in &cli.pids {
        match inspect(pid, &opts, &cache) {
            Ok(ins) => {
                for (t, s) in ins.snapshot.threads.iter().zip(&ins.stacks) {
                    println!("Thread {} \"{}\" {} {:?}", t.tid, t.name, t.state, t.syscall);
                    for (i, f) in s.frames.iter().enumerate() {
                        println!(
                            "  #{i:<3} {:#018x} {}{} ({}) {}:{} {}",
                            f.pc,
                            f.function.as_deref().unwrap_or("??"),
                            f.offset.map(|o| format!("+{o:#x}")).unwrap_or_default(),
                            f.module.as_deref().unwrap_or("?"),
                            f.file.as_deref().unwrap_or(""),
                            f.line.unwrap_or(0),
                            if f.inlined { "[inlined]" } else { "" }
                        );
                    }
                    if let Some(e) = &s.error {
                        println!("  (unwinding stopped: {e})");
                    }
                }
                println!(
                    "pause {:?} capture {:?} analysis {:?}",
                    ins.snapshot.pause, ins.snapshot.capture_time, ins.analysis_time
                );
            }
            Err(e) => {
                eprintln!("lockdump: {e}");
                std::process::exit(exit::CANNOT_INSPECT);
            }
        }
    }
}
