//! The module tree has no import loops below the crate root (issue 17).
//!
//! What is checked: for every module that has child modules in files (a
//! directory such as `src/symbols/` or `src/report/`), the graph among its
//! children has no cycle. There is an edge from child `a` to child `b` when
//! any file of `a` (its file, or a file below it) names a path into `b` (its
//! items, or a module below it): `use` declarations and paths written in
//! code alike (`super::b::f()`, `crate::x::b::T`, `b::g()` from the parent).
//! So `symbols/elf.rs` may use `symbols/file.rs`, but then `file.rs` may not
//! use `elf.rs`, nor anything that leads back to it. A child's use of its
//! parent's own items (`super::CpythonError` from `cpython/mod.rs`) is not an
//! edge among siblings: the parent is the directory itself.
//!
//! The paths are read from the source text with comments and literals
//! blanked, and resolved to the deepest module that has a file (an item
//! re-exported by a `mod.rs` counts as that `mod.rs`'s). `#[cfg(test)]`
//! modules count like any other: a test of one module that reaches into its
//! caller is a loop too.
//!
//! The crate root's own children (`capture`, `symbols`, `runtimes`,
//! `graph`, `report`, ...) obey the same rule, and more: they form the
//! pipeline of docs/architecture.md's module tree, and each may use only
//! the modules listed above it there
//! (`crate_modules_use_only_those_above_them_in_the_architecture`). Not
//! checked: `src/main.rs`, the binary, which wires them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Every module of the library that has a file, by path (`[]` is `lib.rs`).
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut segs: ModPath = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        match segs.as_slice() {
            [one] if one == "main" => continue,
            [one] if one == "lib" => segs.clear(),
            [.., last] if last == "mod" => {
                segs.pop();
            }
            _ => {}
        }
        out.insert(segs, f);
    }
    out
}

/// The source with comments, string and char literals replaced by spaces
/// (newlines kept, so line numbers still hold).
fn blank(src: &str) -> String {
    blank_but(src, false)
}

/// [`blank`], keeping string literals when `keep_strings`.
fn blank_but(src: &str, keep_strings: bool) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank_range = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i..].starts_with(b"//") {
            let end = src[i..].find('\n').map_or(b.len(), |k| i + k);
            blank_range(&mut out, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (0, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank_range(&mut out, i, j);
            i = j;
        } else if !ident_before
            && (b[i..].starts_with(b"r#") || b[i..].starts_with(b"r\"") || b[i..].starts_with(b"br"))
        {
            // Raw string: r"..." or r#"..."#.
            let start = i;
            let mut j = i + if b[i] == b'b' { 2 } else { 1 };
            let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
            j += hashes;
            if b.get(j) != Some(&b'"') {
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat(b'#').take(hashes))
                .collect();
            let end = b[j + 1..].windows(close.len()).position(|w| w == close.as_slice());
            let end = end.map_or(b.len(), |k| j + 1 + k + close.len());
            if !keep_strings {
                blank_range(&mut out, start, end);
            }
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            if !keep_strings {
                blank_range(&mut out, i, j + 1);
            }
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&c| c == b'\'').map(|k| i + 2 + k + 1)
            } else {
                let ch = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 2 + ch)
            };
            match end {
                Some(end) => {
                    blank_range(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Sep, // ::
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// Tokens with their byte offsets.
fn tokens(src: &str) -> Vec<(usize, Tok)> {
    let b = src.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let j = i + b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            out.push((i, Tok::Ident(src[i..j].to_string())));
            i = j;
        } else if b[i..].starts_with(b"::") {
            out.push((i, Tok::Sep));
            i += 2;
        } else {
            out.push((
                i,
                match c {
                    b'{' => Tok::Open,
                    b'}' => Tok::Close,
                    b',' => Tok::Comma,
                    b';' => Tok::Semi,
                    b'*' => Tok::Star,
                    _ => Tok::Other,
                },
            ));
            i += 1;
        }
    }
    out
}

/// The paths a `use` tree starting at `toks[*i]` names, each with `prefix`.
fn use_tree(toks: &[(usize, Tok)], i: &mut usize, prefix: &ModPath, out: &mut Vec<ModPath>) {
    let mut path = prefix.clone();
    while *i < toks.len() {
        match &toks[*i].1 {
            Tok::Ident(s) if s == "as" => {
                *i += 2; // `as name`
                break;
            }
            Tok::Ident(s) => {
                path.push(s.clone());
                *i += 1;
            }
            Tok::Sep | Tok::Star => *i += 1,
            Tok::Open => {
                *i += 1;
                loop {
                    use_tree(toks, i, &path, out);
                    match toks.get(*i).map(|t| &t.1) {
                        Some(Tok::Comma) => *i += 1,
                        Some(Tok::Close) => {
                            *i += 1;
                            break;
                        }
                        _ => break,
                    }
                    if toks.get(*i).map(|t| &t.1) == Some(&Tok::Close) {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            _ => break,
        }
    }
    out.push(path);
}

/// One named path: where it was written, and what it says.
struct Named {
    line: usize,
    inline: ModPath,
    path: ModPath,
}

/// Every path a file names, with the inline modules (`mod tests { .. }`)
/// it was written in, so that `super::` resolves from there.
fn named_paths(src: &str) -> Vec<Named> {
    let text = blank(src);
    let toks = tokens(&text);
    let line = |off: usize| text[..off].matches('\n').count() + 1;
    // Inline modules: (name, depth of the brace that opened it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let here = || inline.iter().map(|(n, _)| n.clone()).collect::<ModPath>();
        match &toks[i].1 {
            Tok::Open => depth += 1,
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Tok::Ident(m) if m == "mod" => {
                if let (Some((_, Tok::Ident(name))), Some((_, Tok::Open))) = (toks.get(i + 1), toks.get(i + 2)) {
                    depth += 1;
                    inline.push((name.clone(), depth));
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(u) if u == "use" => {
                let at = toks[i].0;
                i += 1;
                let mut paths = Vec::new();
                use_tree(&toks, &mut i, &Vec::new(), &mut paths);
                let inl = here();
                out.extend(paths.into_iter().map(|path| Named {
                    line: line(at),
                    inline: inl.clone(),
                    path,
                }));
                continue;
            }
            Tok::Ident(first)
                if !(i > 0 && toks[i - 1].1 == Tok::Sep) && toks.get(i + 1).map(|t| &t.1) == Some(&Tok::Sep) =>
            {
                let at = toks[i].0;
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while let (Some((_, Tok::Sep)), Some((_, Tok::Ident(s)))) = (toks.get(j), toks.get(j + 1)) {
                    path.push(s.clone());
                    j += 2;
                }
                out.push(Named {
                    line: line(at),
                    inline: here(),
                    path,
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module (with a file) that `path`, written in module `at`, names.
fn resolve(mods: &BTreeMap<ModPath, PathBuf>, at: &ModPath, path: &ModPath) -> Option<ModPath> {
    let mut cur = at.clone();
    let mut segs = path.as_slice();
    match segs.first().map(String::as_str) {
        Some("crate") => {
            cur.clear();
            segs = &segs[1..];
        }
        Some("super" | "self") => {
            while let Some(s @ ("super" | "self")) = segs.first().map(String::as_str) {
                if s == "super" {
                    cur.pop()?;
                }
                segs = &segs[1..];
            }
        }
        Some(first) => {
            // Relative to the module it is written in: a child module, or
            // anything else (a crate, a type, a variant), which is not ours.
            let mut child = cur.clone();
            child.push(first.to_string());
            if !mods.contains_key(&child) {
                return None;
            }
        }
        None => return None,
    }
    cur.extend(segs.iter().cloned());
    (0..=cur.len())
        .rev()
        .map(|k| cur[..k].to_vec())
        .find(|p| mods.contains_key(p))
}

/// An edge among siblings and the first place that makes it.
type Edges = BTreeMap<ModPath, BTreeMap<ModPath, BTreeMap<ModPath, String>>>;

/// For each parent module: edges among its children, with evidence.
fn sibling_edges(src: &Path) -> Edges {
    let mods = modules(src);
    let mut edges: Edges = BTreeMap::new();
    for (module, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        for n in named_paths(&text) {
            let mut at = module.clone();
            at.extend(n.inline.iter().cloned());
            let Some(to) = resolve(&mods, &at, &n.path) else {
                continue;
            };
            // Lift to the children of the deepest common ancestor; none
            // when one contains the other (a module and its parent).
            let common = module.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == module.len() || common == to.len() {
                continue;
            }
            let parent = module[..common].to_vec();
            let (a, b) = (module[..=common].to_vec(), to[..=common].to_vec());
            let rel = file.strip_prefix(src.parent().unwrap()).unwrap_or(file);
            edges
                .entry(parent)
                .or_default()
                .entry(a)
                .or_default()
                .entry(b)
                .or_insert_with(|| format!("{}:{}: {}", rel.display(), n.line, n.path.join("::")));
        }
    }
    edges
}

/// Every strongly connected component of more than one node (Tarjan).
fn loops(graph: &BTreeMap<ModPath, BTreeMap<ModPath, String>>) -> Vec<Vec<ModPath>> {
    struct T<'a> {
        g: &'a BTreeMap<ModPath, BTreeMap<ModPath, String>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a ModPath) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        for w in t.g.get(v).into_iter().flat_map(|m| m.keys()) {
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[w].min(t.low[v]);
                t.low.insert(v, l);
            } else if t.stack.contains(&w) {
                let l = t.index[w].min(t.low[v]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The shortest loop through `comp[0]`, as `a -> b -> a` with the line
/// making each edge (every member of a component is on some loop).
fn describe(graph: &BTreeMap<ModPath, BTreeMap<ModPath, String>>, comp: &[ModPath]) -> String {
    let inside: BTreeSet<&ModPath> = comp.iter().collect();
    let start = &comp[0];
    // Breadth-first from `start` until an edge leads back to it.
    let mut came_from: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let last = 'search: loop {
        let v = queue.pop_front().expect("a component member is on a loop");
        for w in graph[v].keys().filter(|w| inside.contains(w)) {
            if w == start {
                break 'search v;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    };
    let mut cycle = vec![start, last];
    while let Some(&p) = came_from.get(*cycle.last().unwrap()) {
        cycle.push(p);
    }
    cycle.reverse(); // start, ..., last, start
    let name = |m: &ModPath| m.join("::");
    let mut s = cycle.iter().map(|m| name(m)).collect::<Vec<_>>().join(" -> ");
    for w in cycle.windows(2) {
        s += &format!("\n      {} -> {}: {}", name(w[0]), name(w[1]), graph[w[0]][w[1]]);
    }
    s
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = sibling_edges(&src());
    assert!(
        edges.contains_key(&vec!["symbols".to_string()]),
        "no edges found: the parser is broken"
    );
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        for comp in loops(graph) {
            let name = if parent.is_empty() {
                "crate".to_string()
            } else {
                format!("crate::{}", parent.join("::"))
            };
            found.push(format!("  in {name}: {}", describe(graph, &comp)));
        }
    }
    assert!(
        found.is_empty(),
        "import loops (give each file one direction: shared types in a leaf module below the others):\n{}",
        found.join("\n")
    );
}

/// The crate-level modules in the order docs/architecture.md's module tree
/// lists them: the lines of its code block that start with two spaces and a
/// name ending in `.rs` or `/` (`  capture/ ...`, `  graph.rs, graph/ ...`).
fn architecture_order() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let section = doc
        .split("## Module tree")
        .nth(1)
        .expect("docs/architecture.md has a '## Module tree' section");
    let block = section.split("```").nth(1).expect("the module tree is a code block");
    let mut out = Vec::new();
    for line in block.lines() {
        let Some(rest) = line.strip_prefix("  ").filter(|r| !r.starts_with(' ')) else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[name.len()..];
        if !name.is_empty() && (after.starts_with(".rs") || after.starts_with('/')) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Every crate-level module uses only the modules docs/architecture.md
/// lists above it, so the tree there reads top-down as the pipeline (and
/// every module of `src/` is listed).
#[test]
fn crate_modules_use_only_those_above_them_in_the_architecture() {
    let order = architecture_order();
    let pos = |m: &str| order.iter().position(|o| o == m);
    let mods = modules(&src());
    let mut missing: Vec<String> = mods
        .keys()
        .filter(|m| m.len() == 1)
        .map(|m| m[0].clone())
        .filter(|m| pos(m).is_none())
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "crate-level modules missing from docs/architecture.md's module tree: {missing:?} (found there: {order:?})"
    );
    let edges = sibling_edges(&src());
    let mut upward = Vec::new();
    for (a, targets) in &edges[&Vec::new()] {
        for (b, evidence) in targets {
            let (pa, pb) = (pos(&a[0]).unwrap(), pos(&b[0]).unwrap());
            if pb >= pa {
                upward.push(format!("{} uses {}, listed below it: {evidence}", a[0], b[0]));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "uses that point up the pipeline (move the shared item down, or the module in the tree):\n  {}",
        upward.join("\n  ")
    );
}

/// The modules that may read /proc or the live process's memory
/// themselves, and why. Every other module of the library (the stages after
/// capture: symbols, unwinding, the runtimes, the graph, the pipeline, the
/// watch, the report) asks the target: the snapshot's source, or the
/// `Live` the snapshot of a live process carries (`crate::live`), whose
/// methods are the only way to the running process. So a stage cannot read
/// the host's /proc for a core file's PID, which may name an unrelated
/// process by now (issue 24).
const MAY_READ_THE_LIVE_PROCESS: [(&str, &str); 6] = [
    ("proc", "the /proc readers"),
    (
        "live",
        "the live target: every question asked of a running process after its capture",
    ),
    (
        "capture",
        "the capture: it reads /proc and the memory while the threads are stopped, and re-checks a captured wait",
    ),
    (
        "error",
        "explains why attaching to a PID failed (ptrace scope, dumpability, owner) before any capture",
    ),
    (
        "watchdog",
        "`lockdump run`: reaps and waits for the processes of its own command",
    ),
    ("demo", "`lockdump demo`: waits until its own child is in its deadlock"),
];

/// What reads /proc or live memory directly, in code (comments ignored):
/// a string that starts with a /proc path, `ProcessMemory` or `process_vm_readv`,
/// or a call of one of `crate::proc`'s readers (`proc::status(..)`, also
/// through `use crate::proc::{status}`). `join_under` (a path helper) and
/// the pure parsers (`proc::parse`) read nothing.
fn live_reads(text: &str) -> Vec<(usize, String)> {
    let code = blank(text);
    let with_strings = blank_but(text, true);
    let line = |off: usize| text[..off].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (k, _) in with_strings.match_indices("\"/proc") {
        // A string literal that starts with a /proc path (a message that
        // mentions one, "SigCgt in /proc/PID/status", reads nothing).
        if code.as_bytes()[k] == b' ' {
            out.push((line(k), "a /proc path".to_string()));
        }
    }
    for name in ["ProcessMemory", "process_vm_readv"] {
        for (k, _) in code.match_indices(name) {
            let before = code[..k].chars().next_back();
            let after = code[k + name.len()..].chars().next();
            let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident(before) && !ident(after) {
                out.push((line(k), name.to_string()));
            }
        }
    }
    let toks = tokens(&code);
    let is_reader = |f: &str| f.starts_with(|c: char| c.is_ascii_lowercase()) && f != "join_under" && f != "parse";
    for w in toks.windows(4) {
        if let [(at, Tok::Ident(m)), (_, Tok::Sep), (_, Tok::Ident(f)), (_, next)] = w {
            let called = matches!(next, Tok::Other) && code[w[3].0..].starts_with('(');
            if m == "proc" && is_reader(f) && called {
                out.push((line(*at), format!("proc::{f}(..)")));
            }
        }
    }
    for n in named_paths(text) {
        if let [c, p, f] = n.path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            if c == "crate" && p == "proc" && is_reader(f) && f != "self" {
                out.push((n.line, format!("crate::proc::{f}")));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Only the live target reads /proc or the live process (issue 24): every
/// other module asks the snapshot's source or its `Live`.
#[test]
fn only_the_live_target_reads_the_live_process() {
    let allowed: Vec<&str> = MAY_READ_THE_LIVE_PROCESS.iter().map(|(m, _)| *m).collect();
    let mut found = Vec::new();
    let mut checked = 0;
    for (module, file) in modules(&src()) {
        if module.first().is_some_and(|m| allowed.contains(&m.as_str())) {
            continue;
        }
        checked += 1;
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, what) in live_reads(&text) {
            let rel = file.strip_prefix(src().parent().unwrap()).unwrap_or(&file);
            found.push(format!("{}:{line}: {what}", rel.display()));
        }
    }
    assert!(checked > 50, "only {checked} files checked: the module walk is broken");
    assert!(
        found.is_empty(),
        "modules outside the live target read /proc or live memory themselves (ask the snapshot's source or its \
         `Live` instead; the modules that may: {allowed:?}):\n  {}",
        found.join("\n  ")
    );
}

/// The scan sees each way of reading the live process, and nothing in
/// comments or in a path helper.
#[test]
fn live_reads_are_found_in_code_only() {
    let src = r#"
// proc::status(1) in a comment, "/proc" too
use crate::proc::{stat, MapEntry};
fn f(pid: i32) {
    let _ = proc::task_status(pid, 1);
    let _ = crate::proc::join_under(a, b);
    let p = format!("/proc/{pid}/maps");
    let m = ProcessMemory::new(pid);
    let why = "SigCgt in /proc/PID/status";
    let n = MyProcessMemory::new(pid);
}
"#;
    let got: Vec<String> = live_reads(src).into_iter().map(|(l, w)| format!("{l}: {w}")).collect();
    assert_eq!(
        got,
        [
            "3: crate::proc::stat",
            "5: proc::task_status(..)",
            "7: a /proc path",
            "8: ProcessMemory"
        ]
    );
}

/// The parser sees what the check relies on: a `use` tree with groups and
/// renames, `super::` inside an inline module, paths in code, and nothing
/// inside comments or strings.
#[test]
fn paths_are_read_from_code_only() {
    let src = r#"
use crate::a::{b::{C, d}, e as f};
// use crate::commented::Out;
const S: &str = "crate::in_string::Out";
fn g() { super::h::call(); let c = 'x'; }
mod tests {
    use super::*;
    fn t() { crate::z::y(); }
}
"#;
    let got: Vec<(ModPath, String)> = named_paths(src)
        .into_iter()
        .map(|n| (n.inline, n.path.join("::")))
        .collect();
    let want = [
        (vec![], "crate::a::b::C"),
        (vec![], "crate::a::b::d"),
        (vec![], "crate::a::e"),
        (vec![], "super::h::call"),
        (vec!["tests".to_string()], "super"),
        (vec!["tests".to_string()], "crate::z::y"),
    ];
    let want: Vec<(ModPath, String)> = want.iter().map(|(i, p)| (i.clone(), p.to_string())).collect();
    assert_eq!(got, want);
}
