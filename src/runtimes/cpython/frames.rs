//! Interpreters, thread states and interpreter frames.
//!
//! The chain is `_PyRuntime.interpreters.head -> PyInterpreterState.threads.head
//! -> PyThreadState.next ...`, and for each thread `current_frame ->
//! _PyInterpreterFrame.previous ...`. Each frame names its code object and the
//! instruction it executes; the code object gives function, file and (through
//! the location table) the line.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::layout::{CurrentFrame, Layout};
use super::objects::Objects;
use super::CpythonError;

/// Upper bounds on everything walked.
pub const MAX_INTERPRETERS: usize = 64;
pub const MAX_THREADS: usize = 10_000;
pub const MAX_FRAMES: usize = 4096;

type Result<T> = std::result::Result<T, CpythonError>;

/// What lockdump keeps of a code object.
#[derive(Debug, Clone)]
pub struct CodeInfo {
    pub addr: u64,
    pub qualname: String,
    pub filename: String,
    pub firstlineno: i32,
    pub linetable: Vec<u8>,
    pub exceptiontable: Vec<u8>,
    pub nlocalsplus: u32,
    pub stacksize: u32,
    /// Names of `localsplus` slots (locals, cells, free variables).
    pub localsplusnames: Vec<String>,
    /// `co_names`: globals and attributes the bytecode refers to by index.
    pub names: Vec<String>,
    pub localspluskinds: Vec<u8>,
    /// Number of code units (`Py_SIZE(code)`).
    pub ncodeunits: u64,
}

/// One Python frame of a thread, innermost first.
#[derive(Debug, Clone)]
pub struct PyFrame {
    pub addr: u64,
    pub code: Rc<CodeInfo>,
    /// Index (in code units) of the instruction being executed.
    pub lasti: Option<u64>,
    /// Address of the bytecode `lasti` indexes (`co_code_adaptive`, or the
    /// thread's own copy in 3.14 free-threaded builds).
    pub bytecode: u64,
    pub line: Option<u32>,
    pub globals: u64,
    /// Address of `localsplus[0]`.
    pub localsplus: u64,
    /// Live value-stack depth when the frame saved it (`stacktop` / `stackpointer`).
    pub saved_depth: Option<u32>,
    /// This is the outermost Python frame run by its `_PyEval_EvalFrameDefault`
    /// call (3.11 `is_entry`; 3.12+ the frame right above a C-stack shim).
    pub entry: bool,
}

impl PyFrame {
    /// The frame as the reports show it (kind Python: function = `co_qualname`,
    /// file = `co_filename`, line).
    pub fn to_frame(&self) -> crate::stacks::Frame {
        crate::stacks::Frame {
            pc: 0,
            kind: crate::stacks::FrameKind::Python,
            function: Some(self.code.qualname.as_str().into()),
            offset: None,
            module: Some(self.code.filename.as_str().into()),
            file: Some(self.code.filename.as_str().into()),
            line: self.line,
            inlined: false,
            how: Some("python"),
            cfa: 0,
            context: None,
        }
    }

    /// Address of `localsplus[i]`.
    pub fn slot_addr(&self, i: u32) -> u64 {
        self.localsplus + 8 * i as u64
    }
    /// Value-stack depth that belongs to enclosing blocks at this
    /// instruction: the depth the exception table's handler for it keeps
    /// (every open `with` block's `__exit__` lies below it), never more than
    /// the saved depth. Slots above it are temporaries of the instruction
    /// being executed (call arguments, or a `with` whose `__enter__` is still
    /// running), so they are not evidence of a held lock.
    pub fn live_depth(&self) -> u32 {
        let handler = self
            .lasti
            .and_then(|i| exception_depth(&self.code.exceptiontable, i))
            .unwrap_or(0);
        handler
            .min(self.saved_depth.unwrap_or(u32::MAX))
            .min(self.code.stacksize)
    }
}

/// A Python thread state and its frames.
#[derive(Debug, Clone)]
pub struct PyThreadState {
    pub addr: u64,
    pub interp: u64,
    /// `pthread_self()` of the thread (`threading.get_ident()`).
    pub ident: u64,
    /// Kernel TID in the target's PID namespace.
    pub native_id: i32,
    pub frames: Vec<PyFrame>,
    /// Why the frame walk stopped early, if it did.
    pub frame_error: Option<String>,
}

/// Code objects by address (`None`: not a code object).
pub type CodeCache = HashMap<u64, Option<Rc<CodeInfo>>>;

/// Walks interpreters, threads and frames with a per-inspection code cache.
pub struct Walker<'a> {
    pub obj: &'a Objects<'a>,
    pub layout: &'a Layout,
    codes: RefCell<HashMap<u64, Option<Rc<CodeInfo>>>>,
}

impl<'a> Walker<'a> {
    pub fn new(obj: &'a Objects<'a>) -> Self {
        Walker {
            obj,
            layout: obj.layout,
            codes: RefCell::new(HashMap::new()),
        }
    }

    /// A walker that starts with the code objects another walker read.
    /// `--watch` walks the same threads every few milliseconds over fresh
    /// memory; a code object's names and tables do not change while it
    /// lives, so re-reading them per sample would only cost time.
    pub fn with_codes(obj: &'a Objects<'a>, codes: CodeCache) -> Self {
        Walker {
            obj,
            layout: obj.layout,
            codes: RefCell::new(codes),
        }
    }

    /// The code objects read so far, for [`Walker::with_codes`].
    pub fn into_codes(self) -> CodeCache {
        self.codes.into_inner()
    }

    /// Every interpreter's address (usually one). A broken link ends the
    /// list there: the interpreters before it are still worth reporting.
    pub fn interpreters(&self, runtime: u64) -> Result<Vec<u64>> {
        let head = self.obj.u64(runtime + self.layout.runtime.interpreters_head)?;
        Ok(self.linked_list(head, self.layout.interp.next, MAX_INTERPRETERS))
    }

    /// Thread states of one interpreter, newest first (as CPython links them).
    pub fn thread_states(&self, interp: u64) -> Result<Vec<u64>> {
        let head = self.obj.u64(interp + self.layout.interp.threads_head)?;
        Ok(self.linked_list(head, self.layout.tstate.next, MAX_THREADS))
    }

    /// Follow `next` pointers from `head`, stopping at NULL, an unreadable
    /// link, a loop, or `limit` nodes.
    fn linked_list(&self, head: u64, next: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut node = head;
        while node != 0 && out.len() < limit && seen.insert(node) {
            out.push(node);
            match self.obj.u64(node + next) {
                Ok(n) => node = n,
                Err(_) => break,
            }
        }
        out
    }

    /// Read one thread state and walk its frames.
    pub fn thread(&self, interp: u64, tstate: u64) -> Result<PyThreadState> {
        let ts = &self.layout.tstate;
        let ident = self.obj.u64(tstate + ts.thread_id)?;
        let native_id = self.obj.u64(tstate + ts.native_thread_id)? as i64;
        let native_id = i32::try_from(native_id).unwrap_or(0);
        let first = match ts.current_frame {
            CurrentFrame::ViaCFrame { cframe, current_frame } => {
                let cf = self.obj.u64(tstate + cframe)?;
                if cf == 0 {
                    0
                } else {
                    self.obj.u64(cf + current_frame)?
                }
            }
            CurrentFrame::Direct(off) => self.obj.u64(tstate + off)?,
        };
        let (frames, frame_error) = self.frames(first);
        Ok(PyThreadState {
            addr: tstate,
            interp,
            ident,
            native_id,
            frames,
            frame_error,
        })
    }

    /// Walk the frame chain from `first`; returns the frames read and, if the
    /// walk stopped on bad memory, why.
    fn frames(&self, first: u64) -> (Vec<PyFrame>, Option<String>) {
        let f = &self.layout.frame;
        let mut out: Vec<PyFrame> = Vec::new();
        let mut addr = first;
        let mut seen = std::collections::HashSet::new();
        while addr != 0 {
            if seen.len() >= MAX_FRAMES {
                return (out, Some(format!("more than {MAX_FRAMES} frames")));
            }
            if !seen.insert(addr) {
                return (out, Some(format!("frame chain loops at {addr:#x}")));
            }
            let owner = match self.obj.mem.read_u8(addr + f.owner) {
                Ok(o) => o,
                Err(e) => return (out, Some(format!("frame {addr:#x}: {e}"))),
            };
            let previous = match self.obj.u64(addr + f.previous) {
                Ok(p) => p,
                Err(e) => return (out, Some(format!("frame {addr:#x}: {e}"))),
            };
            if Some(owner) == f.owner_cstack {
                // A shim: the Python frame just inside it started this eval call.
                if let Some(last) = out.last_mut() {
                    last.entry = true;
                }
            } else {
                match self.frame(addr) {
                    Ok(Some(frame)) => out.push(frame),
                    Ok(None) => {}
                    Err(e) => return (out, Some(format!("frame {addr:#x}: {e}"))),
                }
            }
            addr = previous;
        }
        (out, None)
    }

    /// Decode one frame; `None` for frames that are not (yet) running Python code.
    pub fn frame(&self, addr: u64) -> Result<Option<PyFrame>> {
        let f = &self.layout.frame;
        let code_addr = self.obj.u64(addr + f.executable)? & !f.stackref_tag_mask;
        let Some(code) = self.code(code_addr) else {
            return Ok(None);
        };
        let instr = self.obj.u64(addr + f.instr)?;
        let base = self.bytecode_base(addr, &code)?;
        let lasti = instr
            .checked_sub(base)
            .map(|b| b / 2)
            .filter(|&i| i < code.ncodeunits.max(1));
        // 3.11/3.12 frames that have not executed an instruction yet point just
        // before the code; CPython hides those ("incomplete") frames too.
        if lasti.is_none() && instr < base {
            return Ok(None);
        }
        let line = lasti.and_then(|i| line_for(&code.linetable, code.firstlineno, i));
        let localsplus = addr + f.localsplus;
        let stack_base = localsplus + 8 * code.nlocalsplus as u64;
        let saved_depth = if let Some(off) = f.stacktop {
            let top = self.obj.mem.read_i32(addr + off)? as i64;
            let depth = top - code.nlocalsplus as i64;
            (0..=code.stacksize as i64).contains(&depth).then_some(depth as u32)
        } else if let Some(off) = f.stackpointer {
            let sp = self.obj.u64(addr + off)?;
            sp.checked_sub(stack_base)
                .filter(|d| d % 8 == 0 && d / 8 <= code.stacksize as u64)
                .map(|d| (d / 8) as u32)
        } else {
            None
        };
        let entry = match f.is_entry {
            Some(off) => self.obj.mem.read_u8(addr + off)? != 0,
            None => false,
        };
        Ok(Some(PyFrame {
            addr,
            globals: self.obj.u64(addr + f.globals)?,
            code,
            lasti,
            bytecode: base,
            line,
            localsplus,
            saved_depth,
            entry,
        }))
    }

    /// Start of the bytecode `instr_ptr` points into: the code object's own
    /// copy, or (3.14 free-threaded) the thread-local copy `tlbc_index` names.
    fn bytecode_base(&self, frame: u64, code: &CodeInfo) -> Result<u64> {
        let own = code.addr + self.layout.code.code_adaptive;
        let (Some(idx_off), Some(tlbc_off)) = (self.layout.frame.tlbc_index, self.layout.code.tlbc) else {
            return Ok(own);
        };
        let idx = self.obj.mem.read_i32(frame + idx_off)?;
        let array = self.obj.u64(code.addr + tlbc_off)?;
        if idx <= 0 || array == 0 {
            return Ok(own);
        }
        let size = self.obj.mem.read_i64(array)?;
        if idx as i64 >= size || size > 1 << 20 {
            return Ok(own);
        }
        // _PyCodeArray { Py_ssize_t size; char *entries[]; } (Include/cpython/code.h 3.14)
        self.obj.u64(array + 8 + 8 * idx as u64)
    }

    /// Code object info, cached; `None` if `addr` is not a code object.
    pub fn code(&self, addr: u64) -> Option<Rc<CodeInfo>> {
        if let Some(c) = self.codes.borrow().get(&addr) {
            return c.clone();
        }
        let info = self.read_code(addr).ok().map(Rc::new);
        self.codes.borrow_mut().insert(addr, info.clone());
        info
    }

    fn read_code(&self, addr: u64) -> Result<CodeInfo> {
        let o = self.obj;
        if !o.is_type(addr, "code") {
            return Err(CpythonError::Corrupt(format!("{addr:#x} is not a code object")));
        }
        let c = &self.layout.code;
        let m = o.mem;
        let qualname = o
            .str(o.u64(addr + c.qualname)?)
            .or_else(|_| o.str(o.u64(addr + c.name)?))?;
        let filename = o.str(o.u64(addr + c.filename)?).unwrap_or_default();
        let firstlineno = m.read_i32(addr + c.firstlineno)?;
        let nlocalsplus = m.read_i32(addr + c.nlocalsplus)?;
        let stacksize = m.read_i32(addr + c.stacksize)?;
        if !(0..=1 << 16).contains(&nlocalsplus) || !(0..=1 << 16).contains(&stacksize) {
            return Err(CpythonError::Corrupt(format!(
                "code {addr:#x}: nlocalsplus {nlocalsplus}, stacksize {stacksize}"
            )));
        }
        let linetable = o.bytes(o.u64(addr + c.linetable)?, 1 << 20).unwrap_or_default();
        let exceptiontable = o.bytes(o.u64(addr + c.exceptiontable)?, 1 << 20).unwrap_or_default();
        let strings = |field: u64| -> Result<Vec<String>> {
            let items = o.tuple(o.u64(addr + field)?).unwrap_or_default();
            Ok(items.iter().map(|&n| o.str(n).unwrap_or_default()).collect())
        };
        let localsplusnames = strings(c.localsplusnames)?;
        let names = strings(c.names)?;
        let localspluskinds = o.bytes(o.u64(addr + c.localspluskinds)?, 1 << 16).unwrap_or_default();
        let ncodeunits = m.read_i64(addr + self.layout.object.ob_size)?.clamp(0, 1 << 24) as u64;
        Ok(CodeInfo {
            addr,
            qualname,
            filename,
            firstlineno,
            linetable,
            exceptiontable,
            nlocalsplus: nlocalsplus as u32,
            stacksize: stacksize as u32,
            localsplusnames,
            localspluskinds,
            names,
            ncodeunits,
        })
    }
}

/// Read a location-table varint (6-bit groups, bit 6 = more follows).
fn varint(t: &[u8], pos: &mut usize) -> Option<u64> {
    let mut b = *t.get(*pos)?;
    *pos += 1;
    let mut v = (b & 63) as u64;
    let mut shift = 6;
    while b & 64 != 0 {
        b = *t.get(*pos)?;
        *pos += 1;
        if shift > 60 {
            return None;
        }
        v |= ((b & 63) as u64) << shift;
        shift += 6;
    }
    Some(v)
}

fn svarint(t: &[u8], pos: &mut usize) -> Option<i64> {
    let v = varint(t, pos)?;
    Some(if v & 1 == 1 {
        -((v >> 1) as i64)
    } else {
        (v >> 1) as i64
    })
}

/// Line of code unit `lasti` from a 3.11+ location table (PEP 657 format,
/// described in CPython's InternalDocs/code_objects.md / locations.md).
pub fn line_for(table: &[u8], firstlineno: i32, lasti: u64) -> Option<u32> {
    let mut pos = 0usize;
    let mut line = firstlineno as i64;
    let mut addr = 0u64;
    while pos < table.len() {
        let first = table[pos];
        pos += 1;
        if first & 0x80 == 0 {
            return None; // not at an entry start: corrupt table
        }
        let code = (first >> 3) & 15;
        let len = (first & 7) as u64 + 1;
        let (entry_line, has_line) = match code {
            15 => (line, false),
            14 => {
                line += svarint(table, &mut pos)?;
                varint(table, &mut pos)?; // end line delta
                varint(table, &mut pos)?; // column
                varint(table, &mut pos)?; // end column
                (line, true)
            }
            13 => {
                line += svarint(table, &mut pos)?;
                (line, true)
            }
            10..=12 => {
                line += (code - 10) as i64;
                pos += 2;
                (line, true)
            }
            _ => {
                pos += 1;
                (line, true)
            }
        };
        if lasti < addr + len {
            return (has_line && entry_line > 0).then_some(entry_line as u32);
        }
        addr += len;
    }
    None
}

/// Exception-table varint: like the location table's, but big-endian groups
/// (Objects/exception_handling_notes.txt).
fn exc_varint(t: &[u8], pos: &mut usize) -> Option<u64> {
    let mut b = *t.get(*pos)?;
    *pos += 1;
    let mut v = (b & 63) as u64;
    let mut steps = 0;
    while b & 64 != 0 {
        b = *t.get(*pos)?;
        *pos += 1;
        steps += 1;
        if steps > 10 {
            return None;
        }
        v = (v << 6) | (b & 63) as u64;
    }
    Some(v)
}

/// Stack depth the handler covering code unit `lasti` keeps: every value
/// stack slot below it is live at `lasti` (a `with` block's bound `__exit__`
/// among them). `None` when no handler covers `lasti`.
pub fn exception_depth(table: &[u8], lasti: u64) -> Option<u32> {
    exception_handler(table, lasti).map(|(_, depth)| depth)
}

/// The handler covering code unit `lasti`: (its first code unit, the stack
/// depth it keeps). `None` when no handler covers `lasti`.
pub fn exception_handler(table: &[u8], lasti: u64) -> Option<(u64, u32)> {
    let mut pos = 0usize;
    let mut entries = 0;
    while pos < table.len() && entries < 1 << 16 {
        entries += 1;
        let start = exc_varint(table, &mut pos)?;
        let size = exc_varint(table, &mut pos)?;
        let target = exc_varint(table, &mut pos)?;
        let depth_lasti = exc_varint(table, &mut pos)?;
        if start <= lasti && lasti < start.saturating_add(size) {
            return Some((target, u32::try_from(depth_lasti >> 1).ok()?));
        }
    }
    None
}

/// Source line of the `with` statement whose block is open at the frame's
/// instruction and whose handler keeps `depth` value-stack slots. The
/// handlers of the enclosing blocks, innermost first: the one covering the
/// instruction, then the one covering that handler's own code, and so on.
/// A `with` block's handler (its cleanup) carries the `with` statement's
/// location; other handlers (the cleanup's own) have no line.
pub fn with_statement_line(frame: &PyFrame, depth: u32) -> Option<u32> {
    let code = &frame.code;
    let mut at = frame.lasti?;
    for _ in 0..64 {
        let (target, keeps) = exception_handler(&code.exceptiontable, at)?;
        if keeps == depth {
            if let Some(line) = line_for(&code.linetable, code.firstlineno, target) {
                return Some(line);
            }
        }
        if target == at {
            return None;
        }
        at = target;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_table_lines() {
        // Entry forms: short (code 0, 1 unit), one-line +1 (code 11, 2 units),
        // no-column -1 (code 13, 1 unit), long +5, none.
        let table = [
            0x80,
            0x00, // short, line 10, unit 0
            0x80 | 11 << 3 | 1,
            4,
            8, // one-line +1 -> 11, units 1..3
            0x80 | 13 << 3,
            0x03, // no columns, svarint 3 = -1 -> 10, unit 3
            0x80 | 14 << 3,
            10,
            0,
            1,
            1,              // long, +5 -> 15, unit 4
            0x80 | 15 << 3, // none, unit 5
        ];
        assert_eq!(line_for(&table, 10, 0), Some(10));
        assert_eq!(line_for(&table, 10, 2), Some(11));
        assert_eq!(line_for(&table, 10, 3), Some(10));
        assert_eq!(line_for(&table, 10, 4), Some(15));
        assert_eq!(line_for(&table, 10, 5), None);
        assert_eq!(line_for(&table, 10, 99), None);
        assert_eq!(line_for(&[0x12, 0x34], 1, 0), None);
        assert_eq!(line_for(&[0xff, 0x7f], 1, 0), None);
    }

    /// `with a:` (line 4) around `with b:` (line 6), stopped in b's block:
    /// b's handler covers the instruction, a's covers b's cleanup.
    #[test]
    fn with_statement_lines_through_the_handler_chain() {
        let no_col = |units: u8, delta: u8| [0x80 | 13 << 3 | (units - 1), delta];
        let mut linetable = Vec::new();
        linetable.extend(no_col(8, 3 << 1)); // units 0..8: line 4 (first line 1)
        linetable.extend(no_col(8, 2 << 1)); // 8..16: line 6
        linetable.extend(no_col(8, 1 << 1)); // 16..24: line 7
        linetable.push(0x80 | 15 << 3 | 3); // 24..28: no line
        linetable.extend(no_col(2, 1 << 1 | 1)); // 28..30: b's handler, line 6
        linetable.push(0x80 | 15 << 3 | 1); // 30..32: b's cleanup, no line
        linetable.extend(no_col(2, 2 << 1 | 1)); // 32..34: a's handler, line 4
                                                 // (start, size, target, depth << 1 | lasti)
        let exceptiontable = vec![
            0x80,
            8,
            32,
            3, // a's block before b
            0x80 | 8,
            8,
            28,
            5, // b's block -> b's handler, keeps 2
            0x80 | 28,
            2,
            30,
            9, // b's handler -> its cleanup, keeps 4
            0x80 | 30,
            2,
            32,
            3, // b's cleanup -> a's handler, keeps 1
        ];
        let code = Rc::new(CodeInfo {
            addr: 0,
            qualname: "f".into(),
            filename: "f.py".into(),
            firstlineno: 1,
            linetable,
            exceptiontable,
            nlocalsplus: 0,
            stacksize: 4,
            localsplusnames: Vec::new(),
            localspluskinds: Vec::new(),
            names: Vec::new(),
            ncodeunits: 34,
        });
        let at = |lasti| PyFrame {
            addr: 0,
            code: code.clone(),
            lasti: Some(lasti),
            bytecode: 0,
            line: None,
            globals: 0,
            localsplus: 0,
            saved_depth: None,
            entry: false,
        };
        assert_eq!(with_statement_line(&at(12), 2), Some(6));
        assert_eq!(with_statement_line(&at(12), 1), Some(4));
        assert_eq!(with_statement_line(&at(12), 3), None);
        assert_eq!(with_statement_line(&at(4), 1), Some(4));
        assert_eq!(with_statement_line(&at(4), 2), None);
        assert_eq!(with_statement_line(&at(40), 1), None);
    }

    #[test]
    fn exception_table_depth() {
        // Entry: start 4 (0x80 marks the entry), size 10, target 30, depth 2 lasti 1 -> 5.
        // Second entry with a two-group start: 64 + 6 = 70 -> [0x80|0x40|1, 6].
        let table = [0x80 | 4, 10, 30, 5, 0x80 | 0x40 | 1, 6, 3, 20, 2];
        assert_eq!(exception_depth(&table, 3), None);
        assert_eq!(exception_depth(&table, 4), Some(2));
        assert_eq!(exception_depth(&table, 13), Some(2));
        assert_eq!(exception_depth(&table, 14), None);
        assert_eq!(exception_depth(&table, 71), Some(1));
        assert_eq!(exception_depth(&[0xc0], 0), None);
        assert_eq!(exception_handler(&table, 71), Some((20, 1)));
        assert_eq!(exception_handler(&table, 4), Some((30, 2)));
    }
}
