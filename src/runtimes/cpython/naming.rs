//! Names a user recognizes: thread names and the variable that refers to a lock.
//!
//! Thread names: `threading` keeps every live `Thread` in the module global
//! `_active`, a dict keyed by `get_ident()` (= `PyThreadState.thread_id`);
//! the name is the instance attribute `_name`. So: `sys.modules["threading"]
//! .__dict__["_active"][ident]._name`, read straight from memory.
//!
//! Object names: search, innermost frame first, each frame's fast locals
//! (including closure cells), then attributes of those locals (`self._lock`),
//! then the frames' module globals and their attributes (`account._lock`).
//! Frames of `threading.py` / `queue.py` are searched last, so an object is
//! named from the user's code (`jobs`) rather than from inside `Queue.get`
//! (`self`); there a bare `self` is skipped for the next frame's name
//! (`Timer.run`'s `self.finished`).

use std::collections::HashMap;

use super::frames::{PyFrame, PyThreadState, Walker};
use super::layout::{CO_FAST_CELL, CO_FAST_FREE};

/// Upper bound on globals looked at per module when naming (and on the
/// instances among them whose attributes are searched).
const MAX_GLOBALS: usize = 4096;
const MAX_GLOBAL_INSTANCES: usize = 256;

/// A `threading.Thread` object and its name.
#[derive(Debug, Clone)]
pub struct ThreadObject {
    pub object: u64,
    pub name: Option<String>,
}

/// `threading._active` of one interpreter: ident -> Thread. Empty when
/// `threading` was never imported.
pub fn threading_active(walker: &Walker, interp: u64) -> HashMap<u64, ThreadObject> {
    let mut out = HashMap::new();
    let o = walker.obj;
    let Some(active) = threading_global(walker, interp, "_active") else {
        return out;
    };
    let Ok(items) = o.dict_items(active) else {
        return out;
    };
    for (k, v) in items {
        let Ok(ident) = o.int(k) else { continue };
        let name = o.attr(v, "_name").and_then(|n| o.str(n).ok());
        out.insert(ident as u64, ThreadObject { object: v, name });
    }
    out
}

/// Whether `threading._active` was caught in the middle of a change: its
/// entries disagree with its `ma_used`. A thread that inserts into the dict
/// (every new thread, in `Thread._bootstrap_inner`) may be stopped inside a
/// resize, and CPython's `dictresize` (Objects/dictobject.c, 3.11–3.15)
/// installs the new, still empty keys table before it copies the entries:
/// at that instant every thread but a few is missing from the registry.
/// Seen on a loaded ThreadingHTTPServer (3.11) about once in 300 stops.
pub fn active_in_flux(walker: &Walker, interp: u64) -> bool {
    let o = walker.obj;
    let Some(active) = threading_global(walker, interp, "_active") else {
        return false;
    };
    let (Ok(items), Ok(used)) = (o.dict_items(active), o.u64(active + walker.layout.dict.ma_used)) else {
        return false;
    };
    items.len() as u64 != used
}

/// The `threading.Thread` whose `_ident` is `ident` and whose `_native_id`
/// is `native_id`, from a registry read at another moment than the thread
/// states (see [`active_in_flux`]): the ident (a `pthread_t`, the address of
/// glibc's thread descriptor) is reused for the next thread as soon as one
/// exits, the kernel TID is not, so both must match.
pub fn verified_thread(
    registry: &HashMap<u64, ThreadObject>,
    walker: &Walker,
    ident: u64,
    native_id: i32,
) -> Option<ThreadObject> {
    let t = registry.get(&ident)?;
    let nid = walker
        .obj
        .attr(t.object, "_native_id")
        .and_then(|n| walker.obj.int(n).ok())?;
    (nid == i128::from(native_id) && native_id != 0).then(|| t.clone())
}

/// `threading._limbo` of one interpreter, by ident: threads `start()` has
/// launched and that have not yet entered `threading._active` (the thread
/// sets its `_ident` first, so a thread caught in between is found by it).
pub fn threading_limbo(walker: &Walker, interp: u64) -> HashMap<u64, ThreadObject> {
    let mut out = HashMap::new();
    let o = walker.obj;
    let Some(limbo) = threading_global(walker, interp, "_limbo") else {
        return out;
    };
    let Ok(items) = o.dict_items(limbo) else {
        return out;
    };
    for (_, v) in items.into_iter().take(MAX_GLOBALS) {
        let Some(ident) = o.attr(v, "_ident").and_then(|i| o.int(i).ok()) else {
            continue;
        };
        let name = o.attr(v, "_name").and_then(|n| o.str(n).ok());
        out.insert(ident as u64, ThreadObject { object: v, name });
    }
    out
}

/// The name of the `threading.Thread` a thread runs, read from the `self`
/// of its `Thread._bootstrap_inner` frame: exact even while the thread is
/// outside threading's registry (starting, before `_set_ident()` put it in
/// `_active`, or ending, after `_delete()` took it out), when it cannot be
/// looked up by ident.
pub fn name_from_bootstrap(walker: &Walker, state: &PyThreadState) -> Option<String> {
    let frame = state
        .frames
        .iter()
        .find(|f| f.code.qualname == "Thread._bootstrap_inner" || f.code.qualname == "Thread._bootstrap")?;
    let i = frame.code.localsplusnames.iter().position(|n| n == "self")?;
    let thread = local_value(walker, frame, i as u32)?;
    walker.obj.attr(thread, "_name").and_then(|n| walker.obj.str(n).ok())
}

/// Why a Python thread has no Python name: threading does not know it (yet,
/// or any more). `frames` are its Python frames' qualified names, innermost
/// first.
pub fn unnamed_because(frames: &[&str]) -> &'static str {
    let bootstrap = |q: &&str| q.starts_with("Thread._bootstrap");
    if !frames.is_empty() && frames.iter().all(|q| bootstrap(q) || q.starts_with("Thread._delete")) {
        "not in threading's registry: the thread runs only threading's bootstrap code, so it is starting (before          threading._active) or ending (removed from it)"
    } else if frames.iter().any(bootstrap) {
        "not in threading's registry (threading._active, _limbo) at the stop"
    } else {
        "not started by threading (no threading.Thread for it)"
    }
}

/// A global of the `threading` module (`_active`, `_limbo`), if imported.
fn threading_global(walker: &Walker, interp: u64, name: &str) -> Option<u64> {
    let md = module_dict(walker, interp, "threading")?;
    walker.obj.dict_get_str(md, name).ok()?
}

/// `sys.modules[name].__dict__` of an interpreter.
pub fn module_dict(walker: &Walker, interp: u64, name: &str) -> Option<u64> {
    let o = walker.obj;
    let modules = o.u64(interp + walker.layout.interp.modules).ok()?;
    o.module_dict(o.dict_get_str(modules, name).ok()??)
}

/// Files whose frames are library plumbing, searched last for names.
pub fn is_sync_library(file: &str) -> bool {
    let mut parts = file.rsplit('/');
    let base = parts.next().unwrap_or(file);
    let dir = parts.next();
    let asyncio = dir == Some("asyncio");
    base == "threading.py"
        || base == "queue.py"
        || asyncio && matches!(base, "locks.py" | "queues.py" | "tasks.py")
        || dir == Some("multiprocessing") && base == "synchronize.py"
}

/// The value of each fast local of a frame (dereferencing cells), with its name.
pub fn frame_locals(walker: &Walker, frame: &PyFrame) -> Vec<(String, u64)> {
    let o = walker.obj;
    let code = &frame.code;
    let n = code.nlocalsplus.min(code.localsplusnames.len() as u32);
    let Ok(raw) = o.mem.read_vec(frame.localsplus, n as usize * 8) else {
        return Vec::new();
    };
    raw.chunks_exact(8)
        .enumerate()
        .filter_map(|(i, c)| {
            let v = slot_value(walker, frame, i, u64::from_le_bytes(c.try_into().ok()?))?;
            Some((code.localsplusnames[i].clone(), v))
        })
        .collect()
}

/// The value of fast local `i` of a frame (dereferencing a cell), if set.
pub fn local_value(walker: &Walker, frame: &PyFrame, i: u32) -> Option<u64> {
    if i >= frame.code.nlocalsplus {
        return None;
    }
    let raw = walker.obj.mem.read_u64(frame.slot_addr(i)).ok()?;
    slot_value(walker, frame, i as usize, raw)
}

/// A `localsplus` slot's object: tag bits removed, a cell (closure
/// variable) replaced by its contents; `None` for an unset slot.
fn slot_value(walker: &Walker, frame: &PyFrame, i: usize, raw: u64) -> Option<u64> {
    let o = walker.obj;
    let v = raw & !walker.layout.frame.stackref_tag_mask;
    if v == 0 {
        return None;
    }
    let kind = frame.code.localspluskinds.get(i).copied().unwrap_or(0);
    if kind & (CO_FAST_CELL | CO_FAST_FREE) != 0 && o.is_type(v, "cell") {
        return o.u64(v + walker.layout.misc.cell_ref).ok().filter(|&inner| inner != 0);
    }
    Some(v)
}

/// Find a recognizable name for `target` from the frames of `thread`: user
/// frames first (locals, then their module globals), library frames last.
pub fn name_object(walker: &Walker, thread: &PyThreadState, target: u64) -> Option<String> {
    name_object_in(walker, thread.frames.iter(), target)
}

/// [`name_object`] over any frames, innermost first (an asyncio task's
/// coroutine frames as well as a thread's).
pub fn name_object_in<'f>(walker: &Walker, frames: impl Iterator<Item = &'f PyFrame>, target: u64) -> Option<String> {
    let (user, library): (Vec<&PyFrame>, Vec<&PyFrame>) = frames.partition(|f| !is_sync_library(&f.code.filename));
    let mut fallback = None;
    for (group, is_library) in [(user, false), (library, true)] {
        for frame in &group {
            if let Some(n) = name_in_locals(walker, frame, target) {
                // Inside threading.py, the object a method runs on is just
                // `self` (Event.wait's): a caller's `self.finished` says more.
                if is_library && n == "self" {
                    fallback = Some(n);
                    continue;
                }
                return Some(n);
            }
        }
        let mut searched = Vec::new();
        for frame in &group {
            if searched.contains(&frame.globals) {
                continue;
            }
            searched.push(frame.globals);
            if let Some(n) = name_in_globals(walker, frame.globals, target) {
                return Some(n);
            }
        }
    }
    fallback
}

fn name_in_locals(walker: &Walker, frame: &PyFrame, target: u64) -> Option<String> {
    let locals = frame_locals(walker, frame);
    if let Some((n, _)) = locals.iter().find(|(_, v)| *v == target) {
        return Some(n.clone());
    }
    for (n, v) in &locals {
        if let Some(attr) = attr_pointing_to(walker, *v, target) {
            return Some(format!("{n}.{attr}"));
        }
    }
    None
}

fn name_in_globals(walker: &Walker, globals: u64, target: u64) -> Option<String> {
    let o = walker.obj;
    let items = o.dict_items(globals).ok()?;
    let items = &items[..items.len().min(MAX_GLOBALS)];
    if let Some((k, _)) = items.iter().find(|(_, v)| *v == target) {
        return o.str(*k).ok();
    }
    let mut instances = 0;
    for (k, v) in items {
        if instances >= MAX_GLOBAL_INSTANCES {
            break;
        }
        let Ok(ty) = o.type_of(*v) else { continue };
        let Ok(flags) = o.u64(ty + walker.layout.types.tp_flags) else {
            continue;
        };
        if flags & walker.layout.types.flag_managed_dict == 0 {
            continue;
        }
        instances += 1;
        if let Some(attr) = attr_pointing_to(walker, *v, target) {
            return Some(format!("{}.{attr}", o.str(*k).ok()?));
        }
    }
    None
}

/// The name of an instance attribute of `obj` whose value is `target`.
fn attr_pointing_to(walker: &Walker, obj: u64, target: u64) -> Option<String> {
    walker
        .obj
        .instance_attrs(obj)
        .ok()?
        .into_iter()
        .find(|(_, v)| *v == target)
        .map(|(k, _)| k)
}
