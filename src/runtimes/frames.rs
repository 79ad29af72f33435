//! Reading function names off a blocked thread's stack.
//!
//! Names are the second line of evidence (the futex arguments and memory are
//! the first): they tell a reader from a writer on the same rwlock word and
//! confirm a guess from memory. They may be missing entirely (no unwinder
//! output, a libc without `.symtab`), so every user must cope with `None`.

use super::owners::module_file_name;
use crate::stacks::{Frame, Stack};

/// How many innermost frames to search for the runtime function that blocks.
/// Lock functions are at most a handful of frames above the syscall.
pub const HINT_DEPTH: usize = 12;

/// A function name without decoration: leading underscores (`___pthread_mutex_lock`),
/// ELF symbol versions (`@@GLIBC_2.2.5`), GCC clone suffixes (`.isra.0`,
/// `.constprop.0`) and a Rust legacy hash (`::h0123456789abcdef`).
pub fn base_name(name: &str) -> &str {
    let mut n = name.trim_start_matches('_');
    if let Some(i) = n.find('@') {
        n = &n[..i];
    }
    if let Some(i) = n.find('.') {
        // C clone suffixes; Rust paths use `::`, never `.`, before the hash.
        if !n[..i].contains("::") {
            n = &n[..i];
        }
    }
    if let Some(i) = n.rfind("::h") {
        let hash = &n[i + 3..];
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            n = &n[..i];
        }
    }
    n
}

/// The innermost frame (within [`HINT_DEPTH`]) whose base name satisfies `pred`.
pub fn find_frame(stack: &Stack, pred: impl Fn(&str) -> bool) -> Option<(usize, &Frame)> {
    stack
        .frames
        .iter()
        .take(HINT_DEPTH)
        .enumerate()
        .find(|(_, f)| f.function.as_deref().map(base_name).is_some_and(&pred))
}

/// The frame belongs to the C library, the C++ standard library, Rust's
/// standard library or the `parking_lot` crates (`parking_lot`,
/// `parking_lot_core`, `lock_api`): code that implements a lock rather than
/// code that uses one.
pub fn is_runtime_internal(frame: &Frame) -> bool {
    if let Some(m) = frame.module.as_deref() {
        let file = module_file_name(m);
        if file.starts_with("libc.so")
            || file.starts_with("libpthread")
            || file.starts_with("ld-linux")
            || file.starts_with("ld-musl-")
            || file.starts_with("libstdc++.so")
            || file.starts_with("libc++.so")
            || file.starts_with("libc++abi.so")
        {
            return true;
        }
    }
    if frame.file.as_deref().is_some_and(is_cxx_library_header) {
        return true;
    }
    match frame.function.as_deref() {
        Some(f) => {
            let f = f.trim_start_matches('<');
            f.starts_with("std::")
                || f.starts_with("core::")
                || f.starts_with("alloc::")
                || f.starts_with("parking_lot::")
                || f.starts_with("parking_lot_core::")
                || f.starts_with("lock_api::")
                || f.starts_with("__gnu_cxx::")
                || f.starts_with("__gthread_")
                || f.starts_with("__glibcxx_")
                || is_static_libc(f)
        }
        None => false,
    }
}

/// A header of the C++ standard library (libstdc++'s
/// `/usr/include/c++/12/shared_mutex`, `.../x86_64-linux-gnu/c++/12/bits/
/// gthr-default.h`, libc++'s `.../include/c++/v1/__mutex/mutex.h`). Its
/// functions are inlined into the program (`std::mutex::lock`,
/// `__gthread_mutex_lock`), and DWARF names an inlined member function
/// without its class (`wait<...>` for `std::condition_variable::wait`), so
/// the header is the reliable sign.
fn is_cxx_library_header(path: &str) -> bool {
    let Some(i) = path.find("/include/") else {
        return false;
    };
    let rest = &path[i + "/include/".len()..];
    // `c++/VERSION/`, directly or under the target triplet's directory.
    let versioned = |r: &str| {
        r.strip_prefix("c++/")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(v, _)| v == "v1" || v.starts_with(|c: char| c.is_ascii_digit()))
    };
    versioned(rest) || rest.split_once('/').is_some_and(|(_, r)| versioned(r))
}

/// A C library function linked into the executable itself (static musl has
/// no libc module to recognize it by): the pthread API and musl's internal
/// wait and syscall helpers (`__timedwait`, `__syscall_cp`'s `sccp`, ...).
fn is_static_libc(name: &str) -> bool {
    let n = base_name(name);
    // glibc's internal functions in a static executable (`__lll_lock_wait`,
    // `__futex_abstimed_wait_common`, `__new_sem_wait_slow64`,
    // `__GI___pthread_cond_wait`): names with a leading `__`, which C
    // reserves for the implementation, so no program's own function.
    let glibc_internal = name.starts_with("__")
        && [
            "lll_",
            "futex_",
            "new_sem_",
            "GI_",
            "pthread_",
            "sem_",
            "libc_",
            "syscall_cancel",
        ]
        .iter()
        .any(|p| n.starts_with(p));
    glibc_internal
        || n.starts_with("pthread_")
        || n.starts_with("timedwait")
        || n.starts_with("futexwait")
        || n.starts_with("syscall_cp")
        || n == "sccp"
        || n == "wait"
}

/// Index of the frame that called into the runtime's lock code: the first
/// frame, counting from the innermost, that is not runtime-internal.
/// `None` when there are no frames or every frame is internal.
pub fn site_frame(stack: &Stack) -> Option<usize> {
    stack.frames.iter().position(|f| !is_runtime_internal(f))
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::stacks::{Frame, Stack};

    /// A stack from (function, module) pairs, innermost first, with CFAs 0x100 apart.
    pub fn stack(frames: &[(&str, &str)]) -> Stack {
        Stack {
            frames: frames
                .iter()
                .enumerate()
                .map(|(i, (f, m))| {
                    let mut fr = Frame::native(0x1000 + i as u64, 0x7000_0100 + 0x100 * i as u64);
                    fr.function = (!f.is_empty()).then(|| (*f).into());
                    fr.module = (!m.is_empty()).then(|| (*m).into());
                    fr
                })
                .collect(),
            error: None,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::stack;
    use super::*;

    #[test]
    fn base_names() {
        assert_eq!(base_name("___pthread_mutex_lock"), "pthread_mutex_lock");
        assert_eq!(base_name("pthread_mutex_lock@@GLIBC_2.2.5"), "pthread_mutex_lock");
        assert_eq!(
            base_name("__pthread_rwlock_wrlock_full64.isra.0"),
            "pthread_rwlock_wrlock_full64"
        );
        assert_eq!(
            base_name("std::sys::sync::mutex::futex::Mutex::lock_contended::h0123456789abcdef"),
            "std::sys::sync::mutex::futex::Mutex::lock_contended"
        );
        assert_eq!(
            base_name("<T as core::fmt::Debug>::fmt"),
            "<T as core::fmt::Debug>::fmt"
        );
    }

    #[test]
    fn site_is_first_frame_outside_the_runtime() {
        let s = stack(&[
            ("__futex_abstimed_wait_common64", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("___pthread_mutex_lock", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("worker", "/tmp/abba"),
            ("start_thread", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ]);
        assert_eq!(site_frame(&s), Some(2));
        let r = stack(&[
            ("syscall", "libc.so.6"),
            ("std::sys::pal::unix::futex::futex_wait", "/tmp/r"),
            ("std::sys::sync::mutex::futex::Mutex::lock_contended", "/tmp/r"),
            ("<std::sync::poison::mutex::Mutex<T>>::lock", "/tmp/r"),
            ("abba::worker", "/tmp/r"),
        ]);
        assert_eq!(site_frame(&r), Some(4));
        assert_eq!(site_frame(&Stack::default()), None);
        // Static glibc: its internals are in the executable, known by name.
        let st = stack(&[
            ("__lll_lock_wait", "/tmp/abba-static"),
            ("pthread_mutex_lock", "/tmp/abba-static"),
            ("t1_main", "/tmp/abba-static"),
        ]);
        assert_eq!(site_frame(&st), Some(2));
        // A program's own function that merely starts like one is not.
        let own = stack(&[("lll_lock_wait", "/tmp/app"), ("futex_wait_for_job", "/tmp/app")]);
        assert_eq!(site_frame(&own), Some(0));
        // C++: libstdc++'s inline wrappers, by header (the inlined
        // condition_variable::wait is named just `wait<...>`) and by name.
        let mut cxx = stack(&[
            ("___pthread_cond_wait", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("wait<wait_until_ready()::<lambda()> >", "/tmp/cxx"),
            ("__gthread_mutex_lock", "/tmp/cxx"),
            ("wait_until_ready", "/tmp/cxx"),
        ]);
        cxx.frames[1].file = Some("/usr/include/c++/12/condition_variable".into());
        cxx.frames[3].file = Some("/src/app/include/c++/waits.cpp".into());
        assert_eq!(site_frame(&cxx), Some(3));
        cxx.frames[3].file = Some("/usr/include/x86_64-linux-gnu/c++/12/bits/gthr-default.h".into());
        assert_eq!(site_frame(&cxx), None);
        let found = find_frame(&s, |n| n == "pthread_mutex_lock").map(|(i, _)| i);
        assert_eq!(found, Some(1));
    }
}
