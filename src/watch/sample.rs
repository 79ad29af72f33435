//! One look at a running process, without stopping it: per thread the
//! kernel's view (/proc state, CPU time, context switches, the system call
//! it is in) and, for CPython, where its Python stack is; per watched lock
//! the words that say whether it is held and by whom. Everything here is
//! read with `read(2)` on /proc and `process_vm_readv`: the target is never
//! stopped or written.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::capture::Memory;
use crate::ids::{Addr, Pid, Tid};
use crate::live::Live;
use crate::proc::SyscallLine;
use crate::runtimes::cpython::frames::{CodeCache, Walker};
use crate::runtimes::cpython::layout::{Layout, LockLayout};
use crate::runtimes::cpython::locks::{lock_is_locked, rlock_state};
use crate::runtimes::cpython::objects::Objects;
use crate::runtimes::cpython::reader::CachedMemory;
use crate::runtimes::glibc::layout::{RwLockFields, RWLOCK_WRLOCKED};
use crate::runtimes::{Resource, ResourceKind};

/// The innermost Python frame of a thread at one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyPlace {
    /// Address of the code object: the identity of "the same function".
    pub code: u64,
    pub function: Rc<str>,
    pub file: Rc<str>,
    pub line: Option<u32>,
    /// Python frames on the stack (a loop stays at one depth).
    pub depth: usize,
    /// Every code object on the stack, innermost first (what names it uses).
    pub stack_codes: Vec<u64>,
}

/// One thread at one sample.
#[derive(Debug, Clone)]
pub struct ThreadSample {
    pub tid: Tid,
    pub state: char,
    /// CPU time used so far, in nanoseconds (schedstat, else stat's ticks).
    pub cpu_ns: Option<u64>,
    pub switches: Option<u64>,
    pub syscall: Option<SyscallLine>,
    pub py: Option<PyPlace>,
}

/// A watched lock at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockSample {
    /// Held (locked, or read-locked by at least one reader); `None`: unknown.
    pub held: Option<bool>,
    /// The owner the lock records (TID for glibc, `pthread_self` for an RLock).
    pub owner: Option<u64>,
    /// glibc rwlock: readers holding it.
    pub readers: Option<u32>,
    /// The first 8 bytes of its state: any change is a change of hands or of waiters.
    pub word: Option<u64>,
}

/// One look at the whole process.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Milliseconds since the watch began (the end of the first analysis).
    pub at_ms: f64,
    pub threads: Vec<ThreadSample>,
    /// Parallel to [`Sampler::locks`] at the time of the sample (locks found
    /// later have no entry in earlier samples).
    pub locks: Vec<LockSample>,
    /// What the sample cost lockdump, in microseconds.
    pub cost_us: u64,
}

/// A lock the watch reads at every sample, and why it is watched.
#[derive(Debug, Clone)]
pub struct WatchedLock {
    pub resource: Resource,
    /// Found through the code of a thread (a global named in `co_names`)
    /// rather than in the report's waits and holds.
    pub named_by_code: bool,
}

/// What a code object refers to, for the judges: its names and the lock
/// objects among the globals they name.
#[derive(Debug, Clone, Default)]
pub struct CodeRefs {
    pub names: Vec<String>,
    /// Indices into [`Sampler::locks`].
    pub locks: Vec<usize>,
}

/// Samples one process. Keeps what does not change between samples: the
/// CPython layout, the code objects read, the locks to watch.
pub struct Sampler {
    pub pid: Pid,
    /// The process, asked for its threads, their state and its memory.
    live: Live,
    /// Host TIDs in the target's namespace order, for Python's native ids.
    ns_to_host: HashMap<i32, Tid>,
    python: Option<(u64, Layout)>,
    codes: CodeCache,
    pub code_refs: HashMap<u64, CodeRefs>,
    pub locks: Vec<WatchedLock>,
    /// glibc layouts apply (the process's libc is glibc or unidentified).
    glibc: bool,
    /// schedstat is readable (else stat's clock ticks are used).
    schedstat: bool,
    clk_tck: u64,
}

impl Sampler {
    pub fn new(
        live: Live,
        ns_to_host: HashMap<i32, Tid>,
        python: Option<(u64, Layout)>,
        locks: Vec<WatchedLock>,
        glibc: bool,
    ) -> Self {
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Sampler {
            pid: Pid(live.pid),
            live,
            ns_to_host,
            python,
            codes: CodeCache::new(),
            code_refs: HashMap::new(),
            locks,
            glibc,
            schedstat: live.thread_cpu_ns(live.pid).is_some(),
            clk_tck: if tck > 0 { tck as u64 } else { 100 },
        }
    }

    /// The process sampled.
    pub fn live(&self) -> Live {
        self.live
    }

    /// Take one sample. `t0` is the start of the watch.
    pub fn take(&mut self, t0: Instant) -> Sample {
        let started = Instant::now();
        let at_ms = started.duration_since(t0).as_secs_f64() * 1000.0;
        let tids = self.live.threads().unwrap_or_default();
        let mut threads: Vec<ThreadSample> = tids.iter().filter_map(|&tid| self.thread(tid)).collect();
        let mem = self.live.memory();
        if let Some((runtime, layout)) = self.python.clone() {
            let places = self.python_places(&mem, runtime, &layout);
            for t in &mut threads {
                t.py = places.get(&t.tid).cloned();
            }
        }
        let locks = self.read_locks(&mem);
        Sample {
            at_ms,
            threads,
            locks,
            cost_us: started.elapsed().as_micros() as u64,
        }
    }

    fn thread(&self, tid: i32) -> Option<ThreadSample> {
        let stat = self.live.thread_stat(tid).ok()?;
        let cpu_ns = if self.schedstat {
            self.live.thread_cpu_ns(tid)
        } else {
            Some(stat.cpu_ticks * 1_000_000_000 / self.clk_tck)
        };
        Some(ThreadSample {
            tid: Tid(tid),
            state: stat.state,
            cpu_ns,
            switches: self.live.thread_status(tid).ok().and_then(|s| s.ctxt_switches),
            syscall: self.live.thread_syscall(tid).ok(),
            py: None,
        })
    }

    /// The innermost Python frame of every Python thread, by host TID, read
    /// from live memory with the same walker the analysis uses. Frames are
    /// read while the thread runs: a torn read gives a wrong or no place for
    /// that sample, which only blurs the histogram.
    fn python_places(&mut self, mem: &impl Memory, runtime: u64, layout: &Layout) -> HashMap<Tid, PyPlace> {
        let cached = CachedMemory::new(mem);
        let obj = Objects::new(&cached, layout);
        let walker = Walker::with_codes(&obj, std::mem::take(&mut self.codes));
        let mut out = HashMap::new();
        let mut new_codes: Vec<(u64, u64, Vec<String>)> = Vec::new();
        for interp in walker.interpreters(runtime).unwrap_or_default() {
            for ts in walker.thread_states(interp).unwrap_or_default() {
                let Ok(t) = walker.thread(interp, ts) else { continue };
                let Some(&host) = self.ns_to_host.get(&t.native_id) else {
                    continue;
                };
                let Some(top) = t.frames.first() else { continue };
                for f in &t.frames {
                    if !self.code_refs.contains_key(&f.code.addr) && !new_codes.iter().any(|c| c.0 == f.code.addr) {
                        new_codes.push((f.code.addr, f.globals, f.code.names.clone()));
                    }
                }
                out.insert(
                    host,
                    PyPlace {
                        code: top.code.addr,
                        function: Rc::from(top.code.qualname.as_str()),
                        file: Rc::from(top.code.filename.as_str()),
                        line: top.line,
                        depth: t.frames.len(),
                        stack_codes: t.frames.iter().map(|f| f.code.addr).collect(),
                    },
                );
            }
        }
        // A code object seen for the first time: which of the globals it
        // names are locks (`fork`, `resource`)? Those are watched from now on.
        for (code, globals, names) in new_codes {
            let mut locks = Vec::new();
            for name in &names {
                let Ok(Some(v)) = obj.dict_get_str(globals, name) else {
                    continue;
                };
                let kind = match obj.type_name(v).as_deref() {
                    Some("_thread.lock") => ResourceKind::PyLock,
                    Some("_thread.RLock") => ResourceKind::PyRLock,
                    _ => continue,
                };
                let k = match self.locks.iter().position(|l| l.resource.address == Addr(v)) {
                    Some(k) => k,
                    None => {
                        self.locks.push(WatchedLock {
                            resource: Resource {
                                kind,
                                address: Addr(v),
                                pid: self.pid,
                                name: Some(name.clone()),
                                shared_key: None,
                            },
                            named_by_code: true,
                        });
                        self.locks.len() - 1
                    }
                };
                locks.push(k);
            }
            self.code_refs.insert(code, CodeRefs { names, locks });
        }
        self.codes = walker.into_codes();
        out
    }

    fn read_locks(&self, mem: &impl Memory) -> Vec<LockSample> {
        let py = self.python.as_ref().map(|(_, l)| l);
        let cached = py.map(|_| CachedMemory::new(mem));
        let obj = py.zip(cached.as_ref()).map(|(l, c)| Objects::new(c, l));
        let walker = obj.as_ref().map(Walker::new);
        self.locks
            .iter()
            .map(|l| {
                // Memory is read at raw addresses.
                let a = l.resource.address.get();
                let word = mem.read_u64(a).ok();
                let mut s = LockSample {
                    word,
                    ..Default::default()
                };
                match l.resource.kind {
                    ResourceKind::Mutex
                    | ResourceKind::RecursiveMutex
                    | ResourceKind::ErrorCheckMutex
                    | ResourceKind::AdaptiveMutex
                    | ResourceKind::RobustMutex
                    | ResourceKind::PiMutex
                        if self.glibc =>
                    {
                        // __lock@0, __owner@8 (notes: glibc 2.36 layout).
                        s.held = word.map(|w| w as u32 != 0);
                        s.owner = mem.read_u32(a + 8).ok().map(u64::from).filter(|&o| o != 0);
                    }
                    ResourceKind::RwLock if self.glibc => {
                        if let Some(rw) = RwLockFields::read(mem, a) {
                            s.readers = Some(rw.reader_count());
                            s.held = Some(rw.reader_count() > 0 || rw.readers & RWLOCK_WRLOCKED != 0);
                            s.owner = (rw.cur_writer != 0).then_some(rw.cur_writer as u64);
                        }
                    }
                    // A Python object starts with its reference count, which
                    // any use changes: the word is the lock's own state.
                    ResourceKind::PyLock => {
                        s.held = walker.as_ref().and_then(|w| lock_is_locked(w, a));
                        s.word = py.and_then(|l| {
                            let at = match l.lock {
                                LockLayout::Mutex { mutex } => mutex,
                                LockLayout::Semaphore { locked, .. } => locked,
                            };
                            mem.read_u8(a + at).ok().map(u64::from)
                        });
                    }
                    ResourceKind::PyRLock => {
                        s.word = None;
                        if let Some((held, owner)) = walker.as_ref().and_then(|w| rlock_state(w, a)) {
                            s.held = Some(held);
                            s.owner = (owner != 0).then_some(owner);
                            s.word = Some(owner ^ held as u64);
                        }
                    }
                    _ => {}
                }
                s
            })
            .collect()
    }
}
