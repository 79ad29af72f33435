//! Locks of the Rust `parking_lot` crate (crates.io `parking_lot` 0.12 over
//! `parking_lot_core` 0.9).
//!
//! A thread that cannot take a parking_lot lock parks: it queues its
//! thread-local `ThreadData` in a bucket of the global hash table
//! (`parking_lot_core::parking_lot::HASHTABLE`), keyed by the lock's address,
//! and sleeps in `futex(&thread_data.parker.futex, FUTEX_WAIT_PRIVATE, 1)`.
//! The futex address is the thread's own, so it says nothing about the lock;
//! the key in its `ThreadData` does. Layouts (parking_lot_core-0.9.12
//! src/parking_lot.rs, src/thread_parker/linux.rs):
//!
//! - `HASHTABLE: AtomicPtr<HashTable>`; `HashTable { entries: Box<[Bucket]>,
//!   hash_bits: u32, _prev }`; bucket of a key: `(key * 0x9E3779B97F4A7C15)
//!   >> (64 - hash_bits)`.
//! - `#[repr(align(64))] Bucket { mutex: WordLock, queue_head, queue_tail:
//!   *const ThreadData, fair_timeout }` (64 bytes).
//! - `ThreadData { parker: ThreadParker { futex: AtomicI32 }, key:
//!   AtomicUsize, next_in_queue: *const ThreadData, unpark_token,
//!   park_token, parked_with_timeout }`; `futex` is 1 from before the thread
//!   queues itself until an unparker dequeues it.
//!
//! None of these types is `repr(C)`, so field offsets are not assumed: they
//! are solved from the table itself ([`solve`]): the futex offset that turns
//! every sleeping thread's futex address into a `ThreadData` the buckets
//! link to, and the one key offset whose values hash to the bucket each
//! queued `ThreadData` sits in. A thread whose key this does not establish
//! (no symbol for the table: a stripped executable; an ambiguous solution)
//! is left alone, and [`super::unsupported`] reports it as not examined.
//!
//! Keys (parking_lot-0.12.5 src/raw_mutex.rs, src/raw_rwlock.rs): a `Mutex`
//! parks on its `RawMutex` state byte (`LOCKED_BIT` 1, `PARKED_BIT` 2); an
//! `RwLock` on its `RawRwLock` state word (`PARKED_BIT` 1,
//! `WRITER_PARKED_BIT` 2, `UPGRADABLE_BIT` 4, `WRITER_BIT` 8, readers from
//! bit 4), and a writer that took `WRITER_BIT` and waits for the readers to
//! leave on the state word's address + 1.
//!
//! Neither lock records its owner: owners are inferred from live
//! `lock_api` guards in the threads' DWARF locals ([`crate::symbols::guards`]),
//! and are unknown without them.

use std::collections::HashMap;

use super::codescan::CodeScanner;
use super::futex::{FutexCmd, FutexWait, FUTEX_PRIVATE_FLAG};
use super::{frames, owners, rust_std, Confidence, Hold, Owner, ProcessView, ResourceKind, ThreadFindings, Wait};
use crate::stacks::Stack;
use crate::symbols::guards::{GuardKind, LiveGuard};

/// Mangled-name prefix of `parking_lot_core::parking_lot::HASHTABLE` (legacy mangling).
pub const HASHTABLE_SYMBOL: &str = "_ZN16parking_lot_core11parking_lot9HASHTABLE17h";
/// The 64-bit multiplier of parking_lot_core's `hash`.
const HASH_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// `Bucket` is `#[repr(align(64))]` and its fields take 48 bytes.
const BUCKET_SIZE: u64 = 64;
/// Largest `ThreadData` looked at (its fields take 41 bytes).
const THREAD_DATA_SPAN: u64 = 64;
/// Most buckets read (the table has 3 per thread, rounded up to a power of two).
const MAX_BUCKETS: u64 = 1 << 18;
/// Longest bucket queue followed.
const MAX_QUEUE: usize = 4096;
/// `futex(..., FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 1)`: ThreadParker::futex_wait.
const PARK_OP: u32 = FUTEX_PRIVATE_FLAG;

const M_LOCKED: u64 = 1;
const RW_PARKED: u64 = 1;
const RW_WRITER_PARKED: u64 = 2;
const RW_WRITER: u64 = 8;
const RW_READERS_SHIFT: u32 = 4;

/// What the waiter's frames say it was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    Mutex,
    RwWrite,
    /// `wait_for_readers`: holds `WRITER_BIT`, waits for readers to leave.
    RwWriteForReaders,
    RwRead,
    RwUpgradable,
    Condvar,
    Once,
    /// A bucket's `WordLock` (parking_lot_core's own, held for a few instructions).
    WordLock,
}

fn hint_for(name: &str) -> Option<Hint> {
    let has = |s: &str| name.contains(s);
    if !has("parking_lot") {
        return None;
    }
    Some(if has("word_lock") {
        Hint::WordLock
    } else if has("RawRwLock") && has("wait_for_readers") {
        Hint::RwWriteForReaders
    } else if has("RawRwLock") && has("lock_exclusive") {
        Hint::RwWrite
    } else if has("RawRwLock") && has("upgradable") {
        Hint::RwUpgradable
    } else if has("RawRwLock") && has("lock_shared") {
        Hint::RwRead
    } else if has("RawMutex") && has("lock_slow") || has("RawFairMutex") {
        Hint::Mutex
    } else if has("Condvar") {
        Hint::Condvar
    } else if has("Once") {
        Hint::Once
    } else {
        return None;
    })
}

fn hint(stack: &Stack) -> Option<Hint> {
    stack
        .frames
        .iter()
        .find_map(|f| hint_for(frames::base_name(f.function.as_deref()?)))
}

/// Where parking_lot_core's structures put the fields read, as solved from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offsets {
    /// `ThreadData.parker.futex`.
    futex: u64,
    /// `ThreadData.key`.
    key: u64,
}

/// A sleeping thread's place in the hash table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    /// Its `ThreadData`.
    pub thread_data: u64,
    /// The key it is parked on.
    pub key: u64,
    /// The bucket it is queued in.
    pub bucket: usize,
}

/// The hash table, read from the target.
struct Table {
    buckets: u64,
    len: usize,
    hash_bits: u32,
    bytes: Vec<u8>,
}

fn hash(key: u64, bits: u32) -> usize {
    (key.wrapping_mul(HASH_MUL) >> (64 - bits)) as usize
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Read the current `HashTable`: the fat pointer `entries` (address, length
/// a power of two) and a `hash_bits` equal to its log2, wherever rustc put
/// them in the 32-byte struct; exactly one reading must fit.
fn read_table(view: &ProcessView<'_>, table: u64) -> Result<Table, String> {
    let head = view
        .memory
        .read_vec(table, 32)
        .map_err(|e| format!("cannot read the HashTable at {table:#x}: {e}"))?;
    let mut fits = Vec::new();
    for off in [0usize, 8, 16] {
        let (Some(ptr), Some(len)) = (u64_at(&head, off), u64_at(&head, off + 8)) else {
            continue;
        };
        if !(4..=MAX_BUCKETS).contains(&len) || !len.is_power_of_two() || ptr == 0 || ptr % BUCKET_SIZE != 0 {
            continue;
        }
        let bits = len.trailing_zeros();
        let bits_found = (0..32usize)
            .step_by(4)
            .filter(|&b| b + 4 <= off || b >= off + 16)
            .any(|b| u32_at(&head, b) == Some(bits));
        if bits_found {
            fits.push((ptr, len, bits));
        }
    }
    let [(buckets, len, hash_bits)] = fits[..] else {
        return Err(format!(
            "the HashTable at {table:#x} does not read as one bucket array and its hash_bits ({} readings fit)",
            fits.len()
        ));
    };
    let bytes = view
        .memory
        .read_vec(buckets, (len * BUCKET_SIZE) as usize)
        .map_err(|e| format!("cannot read {len} buckets at {buckets:#x}: {e}"))?;
    Ok(Table {
        buckets,
        len: len as usize,
        hash_bits,
        bytes,
    })
}

/// Every sleeping thread's key, from the table: `futex_words` are the futex
/// addresses of threads parked the way ThreadParker sleeps. Offsets are
/// solved (see the module doc); the solution must be unique in what it
/// says about each waiter, or nothing is said.
fn solve(view: &ProcessView<'_>, table: &Table, futex_words: &[u64]) -> Result<HashMap<u64, Parked>, String> {
    let words: Vec<(usize, u64)> = (0..table.len * (BUCKET_SIZE as usize / 8))
        .filter_map(|w| Some((w / 8, u64_at(&table.bytes, w * 8)?)))
        .collect();
    let mut cache: HashMap<u64, Option<Vec<u8>>> = HashMap::new();
    let mut read = |addr: u64| -> Option<Vec<u8>> {
        cache
            .entry(addr)
            .or_insert_with(|| view.memory.read_vec(addr, THREAD_DATA_SPAN as usize).ok())
            .clone()
    };
    let readable = |addr: u64| view.memory.read_u8(addr).is_ok();
    // (score, futex word -> parked) of each consistent solution.
    let mut solutions: Vec<(usize, HashMap<u64, Parked>, Offsets)> = Vec::new();
    for futex_off in (0..THREAD_DATA_SPAN).step_by(4) {
        let bases: HashMap<u64, u64> = futex_words
            .iter()
            .filter_map(|&w| Some((w.checked_sub(futex_off)?, w)))
            .collect();
        // Where in a bucket one of these ThreadData is linked (queue_head,
        // queue_tail); every bucket's queue is walked from those words (a
        // queue may start with a thread not asleep yet).
        let per_bucket = BUCKET_SIZE as usize / 8;
        let mut slots: Vec<usize> = words
            .iter()
            .enumerate()
            .filter(|(_, (_, w))| bases.contains_key(w))
            .map(|(k, _)| k % per_bucket)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        if slots.is_empty() {
            continue;
        }
        let starts: Vec<(usize, u64)> = words
            .iter()
            .enumerate()
            .filter(|(k, (_, w))| *w != 0 && slots.contains(&(k % per_bucket)))
            .map(|(_, &bw)| bw)
            .collect();
        for next_off in (0..THREAD_DATA_SPAN).step_by(8) {
            if next_off < futex_off + 4 && futex_off < next_off + 8 {
                continue;
            }
            // Bucket of each queued ThreadData, following next_in_queue.
            let mut queued: HashMap<u64, usize> = HashMap::new();
            let mut consistent = true;
            for &(bucket, start) in &starts {
                let mut node = start;
                for _ in 0..MAX_QUEUE {
                    match queued.insert(node, bucket) {
                        Some(b) if b != bucket => consistent = false,
                        Some(_) => break,
                        None => {}
                    }
                    let Some(next) = read(node).and_then(|b| u64_at(&b, next_off as usize)) else {
                        consistent = false;
                        break;
                    };
                    if next == 0 {
                        break;
                    }
                    node = next;
                }
            }
            if !consistent {
                continue;
            }
            for key_off in (0..THREAD_DATA_SPAN).step_by(8) {
                if key_off == next_off || key_off < futex_off + 4 && futex_off < key_off + 8 {
                    continue;
                }
                let mut parked = HashMap::new();
                let fits = queued.iter().all(|(&node, &bucket)| {
                    let Some(key) = read(node).and_then(|b| u64_at(&b, key_off as usize)) else {
                        return false;
                    };
                    let ok = key >= 4096
                        && !queued.contains_key(&key)
                        && hash(key, table.hash_bits) == bucket
                        && readable(key & !7);
                    if ok {
                        if let Some(&w) = bases.get(&node) {
                            parked.insert(
                                w,
                                Parked {
                                    thread_data: node,
                                    key,
                                    bucket,
                                },
                            );
                        }
                    }
                    ok
                });
                if fits && !parked.is_empty() {
                    solutions.push((
                        parked.len(),
                        parked,
                        Offsets {
                            futex: futex_off,
                            key: key_off,
                        },
                    ));
                }
            }
        }
    }
    let best = solutions.iter().map(|s| s.0).max().unwrap_or(0);
    if best == 0 {
        return Err(format!(
            "no ThreadData queued in the hash table's {} buckets (at {:#x}) matches a sleeping thread's futex word",
            table.len, table.buckets
        ));
    }
    let mut best_solutions = solutions.into_iter().filter(|s| s.0 == best);
    let (_, first, offsets) = best_solutions.next().expect("a best solution");
    for (_, other, o) in best_solutions {
        if other.iter().any(|(w, p)| first.get(w).map(|q| q.key) != Some(p.key)) {
            return Err(format!(
                "the hash table's ThreadData layout is ambiguous (futex at +{}, key at +{} or futex at +{}, key at +{})",
                offsets.futex, offsets.key, o.futex, o.key
            ));
        }
    }
    Ok(first)
}

/// A recognized wait before its owner is looked for.
#[derive(Debug, Clone)]
struct Found {
    kind: ResourceKind,
    /// The lock: the RawMutex state byte, or the RawRwLock state word.
    lock: u64,
    how: &'static str,
    /// Why no owner is looked for.
    ownerless: Option<&'static str>,
    hint: Hint,
    key: u64,
}

/// What each thread waits for among parking_lot's locks; `None` for a
/// thread this analyzer says nothing about. A `Some` with no wait and a
/// `blocked_in` is a thread whose park is ending (its futex word cleared).
pub fn analyze(view: &ProcessView<'_>) -> Vec<Option<ThreadFindings>> {
    let n = view.snapshot.threads.len();
    let mut out: Vec<Option<ThreadFindings>> = vec![None; n];
    let empty = Stack::default();
    let stack = |i: usize| view.stacks.get(i).unwrap_or(&empty);
    let parks: Vec<Option<FutexWait>> = (0..n)
        .map(|i| {
            view.futex(i)
                .copied()
                .filter(|w| w.cmd == FutexCmd::Wait && w.raw_op == PARK_OP && w.expected == 1)
        })
        .collect();
    if parks.iter().all(Option::is_none) {
        return out;
    }
    let hints: Vec<Option<Hint>> = (0..n).map(|i| hint(stack(i))).collect();
    // A bucket's WordLock: parking_lot_core's own short lock, no key.
    for i in 0..n {
        if parks[i].is_some() && hints[i] == Some(Hint::WordLock) {
            let w = parks[i].unwrap();
            out[i] = Some(ThreadFindings {
                wait: Some(Wait {
                    resource: owners::resource_at(view, ResourceKind::Futex, w.addr),
                    owner: Owner::unknown(
                        "parking_lot_core's WordLock records no owner; it is held for a few instructions",
                    ),
                    how: WORD_LOCK_HOW.into(),
                    site_frame: frames::site_frame(stack(i)),
                    ends: crate::runtimes::Ends::WITH_CALL,
                }),
                ..Default::default()
            });
        }
    }
    // ThreadParker::park loops while its word is non-zero: a parked thread
    // whose word an unparker has cleared returns as soon as it runs.
    for i in 0..n {
        if out[i].is_none() && hints[i].is_some() && parks[i].is_some_and(|w| w.current == 0) {
            out[i] = Some(ThreadFindings {
                blocked_in: Some("being unparked (parking_lot: its futex word is already cleared)".into()),
                ..Default::default()
            });
        }
    }
    let Some(table_ptr) = view.symbols.symbol_with_prefix(HASHTABLE_SYMBOL) else {
        return out;
    };
    let Ok(table_addr) = view.memory.read_u64(table_ptr) else {
        return out;
    };
    if table_addr == 0 {
        return out;
    }
    let Ok(table) = read_table(view, table_addr) else {
        return out;
    };
    let words: Vec<u64> = (0..n)
        .filter(|&i| out[i].is_none())
        .filter_map(|i| parks[i].map(|w| w.addr))
        .collect();
    // Nothing found (an error) leaves every waiter to the check below.
    let parked = solve(view, &table, &words).unwrap_or_default();
    // A thread changing the table (dequeuing threads to wake them, or
    // rehashing it), caught while it holds a bucket lock: a parked thread
    // missing from the queues may be one it has taken out.
    let changer = (0..n).find(|&j| {
        parks[j].is_none()
            && stack(j).frames.iter().any(|f| {
                f.function.as_deref().is_some_and(|name| {
                    let name = frames::base_name(name);
                    name.starts_with("parking_lot_core::parking_lot::unpark_")
                        || name.starts_with("parking_lot_core::parking_lot::grow_hashtable")
                        || name.starts_with("parking_lot_core::parking_lot::rehash_bucket_into")
                })
            })
    });

    let mut found: Vec<Option<Found>> = vec![None; n];
    for i in 0..n {
        let Some(w) = parks[i] else { continue };
        if out[i].is_some() {
            continue;
        }
        let Some(p) = parked.get(&w.addr) else {
            if let (Some(j), Some(_)) = (changer, hints[i]) {
                out[i] = Some(ThreadFindings {
                    blocked_in: Some(format!(
                        "being unparked: not queued in parking_lot's hash table while thread {} is changing it",
                        view.snapshot.threads[j].tid
                    )),
                    ..Default::default()
                });
            }
            continue;
        };
        found[i] = classify(view, hints[i], p.key);
    }
    let guards = if found.iter().flatten().any(|f| f.ownerless.is_none()) {
        live_guards(view)
    } else {
        Vec::new()
    };
    let code = CodeScanner::new(view);
    let mut holds: Vec<(usize, Hold)> = Vec::new();
    for i in 0..n {
        let Some(f) = &found[i] else { continue };
        let owner = match f.ownerless {
            Some(why) => Owner::unknown(why),
            None => infer_owner(view, &code, &guards, i, f, &found),
        };
        let mut resource = owners::resource_at(view, f.kind, f.lock);
        // The key is the raw lock inside the lock_api object a static holds
        // (rustc may put it after the data): name the static, `LOCK_A`, not
        // `LOCK_A+0x8`.
        resource.name = resource
            .name
            .map(|full| full.split('+').next().unwrap_or(&full).to_string());
        holds.extend(owners::inferred_hold(view, i, &owner, &resource));
        out[i] = Some(ThreadFindings {
            wait: Some(Wait {
                resource,
                owner,
                how: format!("{} (parked on key {:#x})", f.how, f.key),
                site_frame: frames::site_frame(stack(i)),
                ends: crate::runtimes::Ends::WITH_CALL,
            }),
            ..Default::default()
        });
    }
    for (j, h) in holds {
        let f = out[j].get_or_insert_with(Default::default);
        if !f.holds.iter().any(|x| x.resource.address == h.resource.address) {
            f.holds.push(h);
        }
    }
    out
}

/// `how` of a wait for a bucket's WordLock.
pub const WORD_LOCK_HOW: &str = "parking_lot_core WordLock (a hash table bucket's lock)";

fn classify(view: &ProcessView<'_>, hint: Option<Hint>, key: u64) -> Option<Found> {
    let found = |kind, lock, how, ownerless, hint| {
        Some(Found {
            kind,
            lock,
            how,
            ownerless,
            hint,
            key,
        })
    };
    let rw_state = |addr: u64| view.memory.read_u64(addr).ok();
    let writer_behind_readers = |lock| {
        found(
            ResourceKind::ParkingLotRwLock,
            lock,
            "parking_lot::RwLock::write (holds the writer bit, waits for the readers to leave)",
            None,
            Hint::RwWriteForReaders,
        )
    };
    match hint {
        Some(Hint::Mutex) => {
            view.memory.read_u8(key).ok()?;
            found(
                ResourceKind::ParkingLotMutex,
                key,
                "parking_lot::Mutex::lock",
                None,
                Hint::Mutex,
            )
        }
        Some(Hint::RwWriteForReaders) => {
            let lock = key.checked_sub(1)?;
            (rw_state(lock)? & RW_WRITER_PARKED != 0).then_some(())?;
            writer_behind_readers(lock)
        }
        Some(h @ (Hint::RwWrite | Hint::RwRead | Hint::RwUpgradable)) => {
            (rw_state(key)? & RW_PARKED != 0).then_some(())?;
            let how = match h {
                Hint::RwWrite => "parking_lot::RwLock::write",
                Hint::RwRead => "parking_lot::RwLock::read",
                _ => "parking_lot::RwLock::upgradable_read",
            };
            found(ResourceKind::ParkingLotRwLock, key, how, None, h)
        }
        Some(Hint::Condvar) => found(
            ResourceKind::CondVar,
            key,
            "parking_lot::Condvar::wait",
            Some("condition variables have no owner"),
            Hint::Condvar,
        ),
        Some(Hint::Once) => found(
            ResourceKind::Futex,
            key,
            "parking_lot::Once (waiting for another thread's initializer)",
            Some("Once does not record which thread runs the initializer"),
            Hint::Once,
        ),
        // No frame names the primitive: only an odd key (a writer waiting
        // for readers on address + 1) says what it is from memory alone.
        None if key % 2 == 1 => {
            let lock = key - 1;
            (rw_state(lock)? & (RW_WRITER | RW_WRITER_PARKED) == RW_WRITER | RW_WRITER_PARKED).then_some(())?;
            writer_behind_readers(lock)
        }
        _ => None,
    }
}

/// Per thread: (physical frame index, lock_api guard) from DWARF locals.
fn live_guards(view: &ProcessView<'_>) -> Vec<Vec<(usize, LiveGuard)>> {
    (0..view.snapshot.threads.len())
        .map(|j| {
            let Some(stack) = view.stacks.get(j) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for (k, f) in stack.frames.iter().enumerate().filter(|(_, f)| !f.inlined) {
                let Some(ctx) = f.context.as_deref() else { continue };
                if let Some(gs) = view.symbols.live_guards(ctx, view.memory) {
                    out.extend(gs.into_iter().filter(|g| g.lock_api).map(|g| (k, g)));
                }
            }
            out
        })
        .collect()
}

/// The holder of a parking_lot lock, inferred the way Rust std's are
/// ([`super::rust_std`]): a thread with a live guard of the lock of the kind
/// that blocks this wait (a write guard, or for a writer behind readers a
/// read guard) in its DWARF locals; else (a guard of a `static` whose
/// pointer rustc optimized out, a build without debug info) a thread whose
/// frame's code took the lock (`lock cmpxchg` on it, told from the
/// `compare_exchange` that releases it by the constant it expects) before
/// the point it resumes at and has not released it since. Exactly one
/// candidate is the owner; none or several make it unknown.
fn infer_owner(
    view: &ProcessView<'_>,
    code: &CodeScanner<'_, '_>,
    guards: &[Vec<(usize, LiveGuard)>],
    i: usize,
    f: &Found,
    all: &[Option<Found>],
) -> Owner {
    let mut state_note = String::new();
    let wanted: &[GuardKind] = match f.kind {
        ResourceKind::ParkingLotMutex => {
            let state = u64::from(view.memory.read_u8(f.lock).unwrap_or(0));
            if state & M_LOCKED == 0 {
                return Owner::unknown(format!(
                    "parking_lot Mutex state {state:#x}: not locked (a hand-off or wake-up is in progress)"
                ));
            }
            &[GuardKind::Mutex]
        }
        _ => {
            let state = view.memory.read_u64(f.lock).unwrap_or(0);
            let readers = state >> RW_READERS_SHIFT;
            if f.hint == Hint::RwWriteForReaders || state & RW_WRITER == 0 {
                if readers == 0 {
                    return Owner::unknown(format!(
                        "parking_lot RwLock state {state:#x}: no reader holds it (a wake-up is in progress)"
                    ));
                }
                if readers > 1 {
                    return Owner::unknown(format!(
                        "parking_lot RwLock read-locked by {readers} readers; parking_lot does not record which threads they are"
                    ));
                }
                state_note = format!(" (RwLock state {state:#x}: one reader)");
                &[GuardKind::RwRead]
            } else {
                &[GuardKind::RwWrite]
            }
        }
    };
    // Other threads waiting on the same lock do not hold it (a writer
    // waiting for readers holds the writer bit, not a guard).
    let others_waiting = |j: usize| j != i && all.get(j).and_then(|g| g.as_ref()).is_some_and(|g| g.lock == f.lock);
    let mut by_guard: Vec<(usize, usize, &LiveGuard)> = Vec::new();
    for (j, gs) in guards.iter().enumerate() {
        if others_waiting(j) {
            continue;
        }
        if let Some((k, g)) = gs.iter().find(|(_, g)| g.lock == f.lock && wanted.contains(&g.kind)) {
            by_guard.push((j, *k, g));
        }
    }
    match by_guard.as_slice() {
        [(j, k, g)] => {
            let tid = view.snapshot.threads[*j].tid;
            return Owner::held_by(view.snapshot.pid, tid, Confidence::Inferred, format!(
                    "parking_lot locks record no owner; thread {tid} has a live lock_api {} `{}` of it ({}) in {}, per its DWARF locals{state_note}",
                    g.kind.type_name(),
                    g.variable,
                    g.place,
                    rust_std::frame_name(view, *j, *k)
                ));
        }
        [] => {}
        several => {
            return Owner::unknown(format!(
                "parking_lot locks record no owner; several threads have a live guard of it: {}",
                several
                    .iter()
                    .map(|(j, _, _)| view.snapshot.threads[*j].tid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
    let by_code = rust_std::code_holders(view, code, i, f.lock, &others_waiting);
    match by_code.as_slice() {
        [(j, h)] => {
            let tid = view.snapshot.threads[*j].tid;
            Owner::held_by(view.snapshot.pid, tid, Confidence::Inferred, format!(
                    "parking_lot locks record no owner; thread {tid} is in {}, whose code took the lock (lock cmpxchg at {:#x} on {}) before the point it resumes at, and has not released it since{state_note}",
                    rust_std::frame_name(view, *j, h.frame),
                    h.instruction,
                    h.operand.describe()
                ))
        }
        [] => Owner::unknown(
            "parking_lot locks record no owner; no thread has a live guard of it (DWARF locals) or code that took it and has not returned",
        ),
        several => Owner::unknown(format!(
            "parking_lot locks record no owner; several threads run code that took it: {}",
            several
                .iter()
                .map(|(j, _)| view.snapshot.threads[*j].tid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Copying the hash table while the target is stopped.
///
/// Under contention the table changes all the time: read after the target
/// resumed, it no longer matches the futex waits captured during the stop
/// (a thread captured asleep has been woken and queued again elsewhere).
/// So the table, the queued `ThreadData` and what they point to (the lock
/// words among them) are copied during the stop, like CPython's state
/// (`cpython::stopcopy`), and the analysis reads that copy.
pub mod stopcopy {
    use std::collections::HashSet;
    use std::time::Instant;

    use super::{BUCKET_SIZE, HASHTABLE_SYMBOL, THREAD_DATA_SPAN};
    use crate::capture::{CopiedRegion, Memory, RuntimeCopy};
    use crate::live::Live;
    use crate::proc::MapEntry;
    use crate::runtimes::SymbolLookup;
    use crate::symbols::{ModuleCache, ProcessSymbols};

    /// Most buckets copied (64 bytes each: 1 MiB).
    const MAX_COPY_BUCKETS: u64 = 1 << 14;
    /// Most 64-byte windows copied around the pointers found.
    const MAX_WINDOWS: usize = 4096;
    /// Pointers followed from the buckets: ThreadData, the next ones and the lock words.
    const DEPTH: usize = 6;

    /// Where the table's pointer is, found before the stop.
    pub struct Prepared {
        hashtable: u64,
        /// Writable mappings (start, end): where ThreadData, tables and locks live.
        writable: Vec<(u64, u64)>,
    }

    /// The address of `HASHTABLE` in a process that links parking_lot_core (with its symbols).
    pub fn prepare(live: Live, maps: &[MapEntry], cache: &ModuleCache) -> Option<Prepared> {
        let symbols = ProcessSymbols::load_maps(live, maps, cache);
        let hashtable = symbols.symbol_with_prefix(HASHTABLE_SYMBOL)?;
        let writable = maps
            .iter()
            .filter(|m| m.readable && m.writable)
            .map(|m| (m.start, m.end))
            .collect();
        Some(Prepared { hashtable, writable })
    }

    /// Copy the table and what it points to (bounded in bytes).
    pub fn copy(prep: &Prepared, live: Live) -> RuntimeCopy {
        let started = Instant::now();
        let mem = live.memory();
        let mut regions: Vec<CopiedRegion> = Vec::new();
        let take = |start: u64, len: usize, regions: &mut Vec<CopiedRegion>| -> Option<Vec<u8>> {
            let bytes = mem.read_vec(start, len).ok()?;
            regions.push(CopiedRegion {
                start,
                bytes: bytes.clone(),
            });
            Some(bytes)
        };
        let mut out = RuntimeCopy {
            made: false,
            ..Default::default()
        };
        let Some(ptr) = take(prep.hashtable, 8, &mut regions) else {
            return out;
        };
        let table = u64::from_le_bytes(ptr[..8].try_into().unwrap_or([0; 8]));
        let Some(head) = (table != 0).then(|| take(table, 32, &mut regions)).flatten() else {
            out.regions = regions;
            return out;
        };
        // Every (pointer, length) reading of the table head whose length is a
        // bucket count: the analysis decides which is the table.
        let in_writable = |v: u64| prep.writable.iter().any(|&(s, e)| s <= v && v < e);
        let mut frontier: Vec<u64> = Vec::new();
        for off in [0usize, 8, 16] {
            let word = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap_or([0; 8]));
            let (p, len) = (word(off), word(off + 8));
            if (4..=MAX_COPY_BUCKETS).contains(&len) && len.is_power_of_two() && p % BUCKET_SIZE == 0 && in_writable(p)
            {
                if let Some(b) = take(p, (len * BUCKET_SIZE) as usize, &mut regions) {
                    frontier.extend(
                        b.chunks_exact(8)
                            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
                    );
                }
            }
        }
        let mut seen: HashSet<u64> = HashSet::new();
        for _ in 0..DEPTH {
            let mut next = Vec::new();
            for v in frontier.drain(..) {
                let start = v & !7;
                if v == 0 || !in_writable(start) || !seen.insert(start) || seen.len() > MAX_WINDOWS {
                    continue;
                }
                if let Some(b) = take(start, THREAD_DATA_SPAN as usize, &mut regions) {
                    next.extend(
                        b.chunks_exact(8)
                            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
                    );
                }
            }
            frontier = next;
        }
        // Sorted and disjoint, as the snapshot wants its copied regions.
        regions.sort_by_key(|r| r.start);
        let mut merged: Vec<CopiedRegion> = Vec::new();
        for r in regions {
            match merged.last_mut() {
                Some(last) if r.start <= last.start + last.bytes.len() as u64 => {
                    let end = r.start + r.bytes.len() as u64;
                    let last_end = last.start + last.bytes.len() as u64;
                    if end > last_end {
                        let skip = (last_end - r.start) as usize;
                        last.bytes.extend_from_slice(&r.bytes[skip..]);
                    }
                }
                _ => merged.push(r),
            }
        }
        // `made` speaks of CPython's copy (its thread states); this is not one.
        out.made = false;
        out.regions = merged;
        out.took = started.elapsed();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};
    use crate::runtimes::frames::testing::stack;
    use crate::runtimes::owners::testing::{futex, snapshot, thread, Symbols};

    const TABLE_PTR: u64 = 0x1000;
    const TABLE: u64 = 0x2000;
    const BUCKETS: u64 = 0x4000;
    const LOCK_A: u64 = 0x1_0008;
    const LOCK_B: u64 = 0x1_0018;
    /// Two threads' ThreadData (in their TLS), futex at +40, key at +0, next at +8.
    const TD1: u64 = 0x7f00_0000_1000;
    const TD2: u64 = 0x7f00_0100_1000;

    fn put(bytes: &mut [u8], at: usize, v: u64) {
        bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A 16-bucket table with TD1 parked on `k1` and TD2 on `k2`.
    fn memory(k1: u64, k2: u64, lock_bytes: [u8; 2]) -> BufferMemory {
        let bits = 4;
        let mut table = vec![0u8; 32];
        put(&mut table, 0, BUCKETS);
        put(&mut table, 8, 16);
        table[24..28].copy_from_slice(&(bits as u32).to_le_bytes());
        let mut buckets = vec![0u8; 16 * 64];
        for (td, k) in [(TD1, k1), (TD2, k2)] {
            let b = hash(k, bits) * 64;
            // Different buckets for the keys used here: each queue is one ThreadData.
            put(&mut buckets, b + 8, td); // head
            put(&mut buckets, b + 16, td); // tail
        }
        let td = |k: u64| {
            let mut v = vec![0u8; 64];
            put(&mut v, 0, k);
            v[40..44].copy_from_slice(&1u32.to_le_bytes());
            v
        };
        let mut statics = vec![0u8; 0x20];
        statics[0x8] = lock_bytes[0];
        statics[0x18] = lock_bytes[1];
        let mut ptr = vec![0u8; 8];
        put(&mut ptr, 0, TABLE);
        BufferMemory {
            regions: vec![
                CopiedRegion {
                    start: TABLE_PTR,
                    bytes: ptr,
                },
                CopiedRegion {
                    start: TABLE,
                    bytes: table,
                },
                CopiedRegion {
                    start: BUCKETS,
                    bytes: buckets,
                },
                CopiedRegion {
                    start: 0x1_0000,
                    bytes: statics,
                },
                CopiedRegion {
                    start: TD1,
                    bytes: td(k1),
                },
                CopiedRegion {
                    start: TD2,
                    bytes: td(k2),
                },
            ],
        }
    }

    fn syms() -> Symbols {
        Symbols(vec![
            (format!("{HASHTABLE_SYMBOL}0123456789abcdefE"), TABLE_PTR, 8),
            ("_ZN4abba6LOCK_A17h0123456789abcdefE".into(), LOCK_A - 8, 16),
            ("_ZN4abba6LOCK_B17h0123456789abcdefE".into(), LOCK_B - 8, 16),
        ])
    }

    fn run(mem: &BufferMemory, stacks: &[Stack], syms: &Symbols) -> Vec<Option<ThreadFindings>> {
        let snap = snapshot(
            7,
            vec![
                thread(1, futex(TD1 + 40, 128, 1), 0),
                thread(2, futex(TD2 + 40, 128, 1), 0),
            ],
            vec![],
        );
        analyze(&ProcessView {
            snapshot: &snap,
            stacks,
            memory: mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, mem),
            symbols: syms,
        })
    }

    fn lock_slow() -> Stack {
        stack(&[
            ("syscall", "libc.so.6"),
            ("parking_lot::raw_mutex::RawMutex::lock_slow", "/t"),
            ("abba::main::{{closure}}", "/t"),
        ])
    }

    #[test]
    fn keys_from_the_hash_table() {
        let mem = memory(LOCK_B, LOCK_A, [3, 3]);
        let out = run(&mem, &[lock_slow(), lock_slow()], &syms());
        let w1 = out[0].as_ref().unwrap().wait.as_ref().unwrap();
        assert_eq!(
            (w1.resource.kind, w1.resource.address.get()),
            (ResourceKind::ParkingLotMutex, LOCK_B)
        );
        assert_eq!(w1.resource.name.as_deref(), Some("abba::LOCK_B"));
        assert_eq!(w1.owner.confidence(), Confidence::Unknown);
        assert!(w1.how.starts_with("parking_lot::Mutex::lock"), "{}", w1.how);
        assert_eq!(w1.site_frame, Some(2));
        let w2 = out[1].as_ref().unwrap().wait.as_ref().unwrap();
        assert_eq!(w2.resource.address.get(), LOCK_A);
    }

    #[test]
    fn hash_solution_finds_the_offsets() {
        let mem = memory(LOCK_B, LOCK_A, [3, 3]);
        let snap = snapshot(7, vec![], vec![]);
        let s = syms();
        let view = ProcessView {
            snapshot: &snap,
            stacks: &[],
            memory: &mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
            symbols: &s,
        };
        let table = read_table(&view, TABLE).unwrap();
        assert_eq!((table.len, table.hash_bits), (16, 4));
        let parked = solve(&view, &table, &[TD1 + 40, TD2 + 40]).unwrap();
        assert_eq!(parked[&(TD1 + 40)].key, LOCK_B);
        assert_eq!(parked[&(TD1 + 40)].thread_data, TD1);
        assert_eq!(parked[&(TD2 + 40)].key, LOCK_A);
    }

    #[test]
    fn without_the_table_symbol_nothing_is_said() {
        let mem = memory(LOCK_B, LOCK_A, [3, 3]);
        let out = run(&mem, &[lock_slow(), lock_slow()], &Symbols::default());
        assert!(out.iter().all(Option::is_none));
    }

    #[test]
    fn a_thread_not_in_the_table_is_not_guessed() {
        let mem = memory(LOCK_B, LOCK_A, [3, 3]);
        let snap = snapshot(
            7,
            vec![
                thread(1, futex(TD1 + 40, 128, 1), 0),
                thread(3, futex(0x7f00_0200_1028, 128, 1), 0),
            ],
            vec![],
        );
        let mut mem = mem;
        mem.regions.push(CopiedRegion {
            start: 0x7f00_0200_1000,
            bytes: {
                let mut v = vec![0u8; 64];
                v[40] = 1;
                v
            },
        });
        let s = syms();
        let out = analyze(&ProcessView {
            snapshot: &snap,
            stacks: &[lock_slow(), lock_slow()],
            memory: &mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
            symbols: &s,
        });
        assert!(out[0].is_some());
        assert!(out[1].is_none(), "{:?}", out[1]);
    }

    #[test]
    fn writer_waiting_for_readers_parks_on_address_plus_one() {
        // RwLock state at LOCK_A: one reader, WRITER_BIT, WRITER_PARKED_BIT.
        let mut mem = memory(LOCK_A + 1, LOCK_B, [0, 3]);
        let state: u64 = (1 << 4) | 8 | 2;
        for r in &mut mem.regions {
            if r.start == 0x1_0000 {
                r.bytes[8..16].copy_from_slice(&state.to_le_bytes());
            }
        }
        let writer = stack(&[
            ("syscall", "libc.so.6"),
            ("parking_lot::raw_rwlock::RawRwLock::wait_for_readers", "/t"),
            ("abba::main::{{closure}}", "/t"),
        ]);
        let out = run(&mem, &[writer, lock_slow()], &syms());
        let w = out[0].as_ref().unwrap().wait.as_ref().unwrap();
        assert_eq!(
            (w.resource.kind, w.resource.address.get()),
            (ResourceKind::ParkingLotRwLock, LOCK_A)
        );
        assert!(w.how.contains("waits for the readers"), "{}", w.how);
        assert_eq!(w.owner.confidence(), Confidence::Unknown);
        // Without a frame name the odd key and the state say the same.
        let out = run(&mem, &[Stack::default(), Stack::default()], &syms());
        let w = out[0].as_ref().unwrap().wait.as_ref().unwrap();
        assert_eq!(w.resource.address.get(), LOCK_A);
        // A mutex key with no frame naming the primitive: not said.
        assert!(out[1].is_none());
    }
}
