//! Self-deadlock through a signal handler, for locks that record no owner.
//!
//! A handler runs on the stack of the thread it interrupted: innermost the
//! handler's frames, then `__restore_rt` (the kernel's signal frame), then
//! the interrupted code. If the handler waits for a lock that the
//! interrupted code holds, the thread waits for itself. Owner-recording
//! locks (pthread mutexes) show that exactly (`__owner` is the thread
//! itself: the graph's cycle of one). glibc's internal locks record no
//! owner; for those the holder is *inferred* from the interrupted frames
//! being inside the lock's critical section: a handler waiting on the malloc
//! arena lock while the frames below `__restore_rt` are inside malloc/free.
//!
//! The locks known here, with the functions whose frames hold them (glibc
//! 2.36 malloc/malloc.c and malloc/arena.c: `__libc_malloc`, `__libc_free`,
//! ... take `av->mutex` around `_int_malloc` / `_int_free`; `arena_get2`,
//! `reused_arena` and `_int_new_arena` take `list_lock` / `free_list_lock`).
//! stdio's `_IO_lock_t` is recursive with an owner (`{lock, cnt, owner}`),
//! so a handler re-entering stdio on its own thread does not block on it.

use super::{Confidence, Owner, ResourceKind, ThreadFindings};
use crate::ids::{Pid, Tid};
use crate::stacks::{Frame, FrameKind, Stack};

/// (lock name as symbolized, functions whose frames hold it).
const CRITICAL_SECTIONS: &[(&[&str], &[&str])] = &[(
    &["main_arena", "list_lock", "free_list_lock"],
    &[
        "malloc",
        "free",
        "calloc",
        "realloc",
        "memalign",
        "posix_memalign",
        "aligned_alloc",
        "valloc",
        "pvalloc",
        "_int_malloc",
        "_int_free",
        "_int_realloc",
        "_int_memalign",
        "malloc_consolidate",
        "arena_get2",
        "reused_arena",
        "_int_new_arena",
        "tcache_init",
        "malloc_trim",
    ],
)];

/// `__GI___libc_malloc` -> `malloc`, `___pthread_mutex_lock` ->
/// `pthread_mutex_lock`: glibc's internal aliases of a public function
/// (`_int_*` are malloc's own internal names and stay).
pub fn public_name(f: &str) -> &str {
    if f.starts_with("_int_") {
        return f;
    }
    let mut s = f.trim_start_matches('_');
    loop {
        if let Some(r) = s.strip_prefix("GI_") {
            s = r.trim_start_matches('_');
        } else if let Some(r) = s.strip_prefix("libc_").filter(|r| !r.is_empty()) {
            s = r;
        } else {
            break;
        }
    }
    if s.is_empty() {
        f
    } else {
        s
    }
}

fn is_signal_frame(f: &Frame) -> bool {
    f.function_is("__restore_rt")
}

/// A wait inside a signal handler: the handler's frames, the signal frame
/// and the interrupted frames, as indices into the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerWait {
    /// The handler function (the frame that `__restore_rt` returns into).
    pub handler: usize,
    /// The signal frame (`__restore_rt`).
    pub signal_frame: usize,
    /// The interrupted function (the frame right below the signal frame).
    pub interrupted: usize,
    /// The first interrupted frame outside the C library, when the
    /// interrupted function is inside it (`churn` below `malloc`).
    pub interrupted_caller: Option<usize>,
    /// The outermost C library frame inside the handler: the call the
    /// handler made (`malloc`), when the wait is inside the C library.
    pub call: Option<usize>,
}

/// Where a wait whose innermost frames are `stack.frames` sits relative to
/// the innermost signal frame, if it is inside a handler.
pub fn handler_wait(frames: &[Frame]) -> Option<HandlerWait> {
    let signal_frame = frames.iter().position(is_signal_frame)?;
    if signal_frame == 0 || signal_frame + 1 >= frames.len() {
        return None;
    }
    let handler = signal_frame - 1;
    let is_libc = |f: &Frame| {
        f.kind == FrameKind::Native
            && f.module.as_deref().is_some_and(|m| {
                let base = m.rsplit('/').next().unwrap_or(m);
                base.starts_with("libc.so") || base.starts_with("libc-") || base.starts_with("libpthread")
            })
    };
    // The C library frames at the top of the handler's frames are the call
    // it made; the outermost of them is the function it called.
    let libc_run = frames[..handler].iter().take_while(|f| is_libc(f)).count();
    let call = (libc_run > 0).then(|| libc_run - 1);
    let interrupted_caller = is_libc(&frames[signal_frame + 1])
        .then(|| (signal_frame + 2..frames.len()).find(|&k| !is_libc(&frames[k])))
        .flatten();
    Some(HandlerWait {
        handler,
        signal_frame,
        interrupted: signal_frame + 1,
        interrupted_caller,
        call,
    })
}

/// If the thread waits, inside a signal handler, on a glibc lock that
/// records no owner while the interrupted frames are inside that lock's
/// critical section: make the thread itself the (inferred) owner, so the
/// graph sees a self-deadlock. `tid`/`pid` name the thread.
pub fn infer_self_deadlock(pid: Pid, tid: Tid, stack: &Stack, f: &mut ThreadFindings) {
    let Some(w) = f.wait.as_mut() else { return };
    if !matches!(w.owner, Owner::Unknown { .. }) || w.resource.kind != ResourceKind::Futex {
        return;
    }
    let Some(name) = w.resource.name.clone() else { return };
    let Some((_, holders)) = CRITICAL_SECTIONS
        .iter()
        .find(|(locks, _)| locks.contains(&name.as_str()))
    else {
        return;
    };
    let Some(hw) = handler_wait(&stack.frames) else { return };
    let frames = &stack.frames;
    // The interrupted code, from the signal frame outwards, up to the first
    // frame outside the C library's allocator: is it inside the section?
    let holding = frames[hw.interrupted..]
        .iter()
        .take(8)
        .filter_map(|fr| fr.function.as_deref())
        .find(|func| holders.contains(&public_name(func)));
    let Some(holding) = holding else { return };
    let handler = frames[hw.handler].function.as_deref().unwrap_or("??").to_string();
    let call = hw
        .call
        .and_then(|k| frames[k].function.as_deref())
        .map(|c| public_name(c).to_string())
        .unwrap_or_else(|| "the C library".into());
    w.resource.kind = ResourceKind::LibcLock;
    w.owner = Owner::held_by(
        pid,
        tid,
        Confidence::Inferred,
        format!(
            "{name} records no owner; the frames this thread's signal handler {handler} interrupted (below \
             __restore_rt) are inside {holding}, which holds {name}: the handler called {call}, which is not \
             async-signal-safe"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Addr, Pid, Tid};
    use crate::runtimes::{Deadline, Resource, Sleep, Wait};

    fn frame(function: &str, module: &str) -> Frame {
        Frame {
            pc: 1,
            kind: FrameKind::Native,
            function: Some(function.into()),
            offset: None,
            module: Some(module.into()),
            file: None,
            line: None,
            inlined: false,
            how: None,
            cfa: 0,
            context: None,
        }
    }

    const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

    fn stack(names: &[(&str, &str)]) -> Stack {
        Stack {
            frames: names.iter().map(|(f, m)| frame(f, m)).collect(),
            error: None,
            truncated: false,
        }
    }

    fn arena_wait(name: &str) -> ThreadFindings {
        ThreadFindings {
            wait: Some(Wait {
                resource: Resource {
                    kind: ResourceKind::Futex,
                    address: Addr(0x7000),
                    pid: Pid(5),
                    name: Some(name.into()),
                    shared_key: None,
                },
                owner: Owner::unknown("no owner recorded"),
                how: "futex".into(),
                site_frame: Some(3),
                ends: crate::runtimes::Ends::WITH_CALL,
            }),
            sleep: Sleep::Futex {
                timeout: Deadline::Never,
            },
            ..Default::default()
        }
    }

    fn in_handler(interrupted: &str) -> Stack {
        stack(&[
            ("futex_wait", LIBC),
            ("__GI___lll_lock_wait_private", LIBC),
            ("__GI___libc_malloc", LIBC),
            ("on_alarm", "/bin/fx"),
            ("__restore_rt", LIBC),
            (interrupted, LIBC),
            ("churn", "/bin/fx"),
            ("main", "/bin/fx"),
        ])
    }

    #[test]
    fn arena_lock_held_by_the_interrupted_malloc_is_inferred() {
        let mut f = arena_wait("main_arena");
        infer_self_deadlock(Pid(5), Tid(7), &in_handler("__GI___libc_malloc"), &mut f);
        let w = f.wait.unwrap();
        assert_eq!(w.resource.kind, ResourceKind::LibcLock);
        assert_eq!(
            (
                w.owner.tid().map(Tid::get),
                w.owner.pid().map(Pid::get),
                w.owner.confidence()
            ),
            (Some(7), Some(5), Confidence::Inferred)
        );
        assert!(
            w.owner.evidence().contains("handler on_alarm"),
            "{}",
            w.owner.evidence()
        );
        assert!(
            w.owner.evidence().contains("inside __GI___libc_malloc"),
            "{}",
            w.owner.evidence()
        );
        assert!(w.owner.evidence().contains("called malloc"), "{}", w.owner.evidence());
    }

    #[test]
    fn no_inference_without_the_evidence() {
        // Interrupted outside the allocator: some other thread holds the arena.
        for (name, st) in [
            ("main_arena", in_handler("write")),
            // Not an allocator lock.
            ("lock_handler", in_handler("__GI___libc_malloc")),
            // Not inside a handler: plain contention.
            (
                "main_arena",
                stack(&[
                    ("__GI___lll_lock_wait_private", LIBC),
                    ("__GI___libc_malloc", LIBC),
                    ("churn", "/bin/fx"),
                ]),
            ),
        ] {
            let mut f = arena_wait(name);
            infer_self_deadlock(Pid(5), Tid(7), &st, &mut f);
            let w = f.wait.unwrap();
            assert_eq!(w.owner.confidence(), Confidence::Unknown, "{name}: {st:?}");
            assert_eq!(w.resource.kind, ResourceKind::Futex);
        }
    }

    #[test]
    fn handler_and_call_are_found() {
        let hw = handler_wait(&in_handler("_int_free").frames).expect("in a handler");
        assert_eq!(
            (hw.call, hw.handler, hw.signal_frame, hw.interrupted),
            (Some(2), 3, 4, 5)
        );
        assert_eq!(hw.interrupted_caller, Some(6), "churn, below the allocator");
        assert_eq!(public_name("__GI___libc_malloc"), "malloc");
        assert_eq!(public_name("___pthread_mutex_lock"), "pthread_mutex_lock");
        assert_eq!(public_name("__GI___pthread_mutex_lock"), "pthread_mutex_lock");
        assert_eq!(public_name("_int_free"), "_int_free");
        assert_eq!(public_name("__libc_free"), "free");
    }
}
