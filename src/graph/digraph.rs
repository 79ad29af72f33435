//! The graph algorithms every verdict shares, over one indexed shape:
//! nodes in sorted order, and for each the nodes it waits for, each pair
//! with the one arc kept for it. Each verdict builds this shape from the
//! arcs its rule follows ([`super::WaitGraph`]) and asks it for cycles and
//! for who waits behind whom; the algorithms live here once.

use std::collections::{BTreeSet, VecDeque};

use super::Node;

/// Nodes numbered in sorted order (so every cycle found starts at its least
/// node), with their successors and the arc behind each pair.
pub(crate) struct Digraph {
    nodes: Vec<Node>,
    /// `adj[a]`: the successors of `a`, sorted.
    adj: Vec<Vec<usize>>,
    /// `arc_of[a][i]`: the caller's index of the arc from `a` to `adj[a][i]`.
    arc_of: Vec<Vec<usize>>,
}

impl Digraph {
    /// The graph of `nodes` (and every end of an arc) and `arcs`, each
    /// `(from, to, caller's index)`, given in order of preference: of
    /// several arcs between the same two nodes the first is kept.
    pub fn new(nodes: impl IntoIterator<Item = Node>, arcs: &[(Node, Node, usize)]) -> Self {
        let mut all: Vec<Node> = nodes.into_iter().collect();
        all.extend(arcs.iter().flat_map(|&(a, b, _)| [a, b]));
        all.sort_unstable();
        all.dedup();
        let index = |n: &Node| all.binary_search(n).unwrap_or(0);
        let mut pairs: Vec<(usize, usize, usize)> = arcs.iter().map(|(a, b, k)| (index(a), index(b), *k)).collect();
        // Stable: within a pair, the caller's order (its preference) stays.
        pairs.sort_by_key(|&(a, b, _)| (a, b));
        pairs.dedup_by_key(|p| (p.0, p.1));
        let mut adj = vec![Vec::new(); all.len()];
        let mut arc_of = vec![Vec::new(); all.len()];
        for (a, b, k) in pairs {
            adj[a].push(b);
            arc_of[a].push(k);
        }
        Digraph {
            nodes: all,
            adj,
            arc_of,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> Node {
        self.nodes[i]
    }

    pub fn index(&self, n: &Node) -> Option<usize> {
        self.nodes.binary_search(n).ok()
    }

    /// The nodes `a` waits for, sorted.
    pub fn successors(&self, a: usize) -> &[usize] {
        &self.adj[a]
    }

    /// The caller's index of the arc kept from `a` to `b` (which must be a successor).
    pub fn arc(&self, a: usize, b: usize) -> usize {
        let i = self.adj[a].binary_search(&b).unwrap_or(0);
        self.arc_of[a][i]
    }

    /// For each node, the nodes that wait for it.
    pub fn predecessors(&self) -> Vec<Vec<usize>> {
        let mut rev = vec![Vec::new(); self.len()];
        for (a, outs) in self.adj.iter().enumerate() {
            for &b in outs {
                rev[b].push(a);
            }
        }
        rev
    }

    /// Every elementary cycle ([`elementary_cycles`]), each from its least node.
    pub fn cycles(&self, cap: usize, cap_edges: usize) -> (Vec<Vec<usize>>, bool) {
        elementary_cycles(&self.adj, cap, cap_edges)
    }

    /// Every node outside `set` with a path into it, sorted: who waits
    /// behind it, directly or through others. `rev` is [`Self::predecessors`].
    pub fn behind(&self, rev: &[Vec<usize>], set: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        for &s in set {
            seen[s] = true;
        }
        let mut todo: VecDeque<usize> = set.iter().copied().collect();
        let mut out = Vec::new();
        while let Some(v) = todo.pop_front() {
            for &u in &rev[v] {
                if !seen[u] {
                    seen[u] = true;
                    out.push(u);
                    todo.push_back(u);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// Strongly connected components (Tarjan, iterative so deep chains cannot
/// overflow the stack). Returns a component id per vertex.
fn scc(adj: &[Vec<usize>], allowed: &dyn Fn(usize) -> bool) -> Vec<Option<usize>> {
    let n = adj.len();
    let mut idx: Vec<Option<usize>> = vec![None; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp: Vec<Option<usize>> = vec![None; n];
    let mut next_index = 0;
    let mut next_comp = 0;
    for root in 0..n {
        if !allowed(root) || idx[root].is_some() {
            continue;
        }
        // (vertex, position in its adjacency list)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        idx[root] = Some(next_index);
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if let Some(&w) = adj[v].get(*pos) {
                *pos += 1;
                if !allowed(w) {
                    continue;
                }
                match idx[w] {
                    None => {
                        idx[w] = Some(next_index);
                        low[w] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        call.push((w, 0));
                    }
                    Some(iw) if on_stack[w] => low[v] = low[v].min(iw),
                    Some(_) => {}
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if Some(low[v]) == idx[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = Some(next_comp);
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

/// Every elementary cycle (Johnson 1975), at most `cap` of them with at most
/// `cap_edges` edges in total. Vertices are
/// numbered in sorted node order, so each cycle starts at its least vertex.
/// Returns the cycles and whether the cap cut the enumeration short.
pub(crate) fn elementary_cycles(adj: &[Vec<usize>], cap: usize, cap_edges: usize) -> (Vec<Vec<usize>>, bool) {
    let n = adj.len();
    let mut out = Vec::new();
    let mut total_edges = 0usize;
    // Only vertices on some cycle matter: those in a non-trivial SCC or with a self-loop.
    let whole = scc(adj, &|_| true);
    let comp_size = component_sizes(&whole);
    let cyclic = |v: usize| whole[v].is_some_and(|c| comp_size[c] > 1) || adj[v].contains(&v);
    let mut blocked = vec![false; n];
    let mut b_sets: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut s = 0;
    while s < n {
        // The least vertex >= s on a cycle of the subgraph induced by vertices >= s,
        // and its component there (Johnson's outer loop; vertices < s are done).
        let from = s;
        let sub = scc(adj, &|v| v >= from && cyclic(v));
        let size = component_sizes(&sub);
        let Some(start) = (from..n).find(|&v| sub[v].is_some_and(|c| size[c] > 1 || adj[v].contains(&v))) else {
            break;
        };
        s = start;
        let cs = sub[s];
        let in_comp = |v: usize| v >= start && sub[v] == cs;
        for v in 0..n {
            if in_comp(v) {
                blocked[v] = false;
                b_sets[v].clear();
            }
        }
        // Iterative CIRCUIT(s): frames of (vertex, next edge, found a cycle below).
        let mut path = vec![s];
        let mut frames: Vec<(usize, usize, bool)> = vec![(s, 0, false)];
        blocked[s] = true;
        while let Some(top) = frames.last_mut() {
            let v = top.0;
            if let Some(&w) = adj[v].get(top.1) {
                top.1 += 1;
                if !in_comp(w) {
                    continue;
                }
                if w == s {
                    total_edges += path.len();
                    if out.len() >= cap || total_edges > cap_edges {
                        return (out, true);
                    }
                    out.push(path.clone());
                    top.2 = true;
                } else if !blocked[w] {
                    blocked[w] = true;
                    path.push(w);
                    frames.push((w, 0, false));
                }
                continue;
            }
            let (_, _, found) = frames.pop().unwrap_or((v, 0, false));
            if found {
                unblock(v, &mut blocked, &mut b_sets);
            } else {
                for &w in &adj[v] {
                    if in_comp(w) {
                        b_sets[w].insert(v);
                    }
                }
            }
            path.pop();
            if let Some(parent) = frames.last_mut() {
                parent.2 |= found;
            }
        }
        s += 1;
    }
    (out, false)
}

/// How many vertices each component id of [`scc`] has.
fn component_sizes(comp: &[Option<usize>]) -> Vec<usize> {
    let mut size = vec![0usize; comp.len()];
    for &c in comp.iter().flatten() {
        size[c] += 1;
    }
    size
}

fn unblock(u: usize, blocked: &mut [bool], b_sets: &mut [BTreeSet<usize>]) {
    let mut work = vec![u];
    while let Some(x) = work.pop() {
        if !blocked[x] {
            continue;
        }
        blocked[x] = false;
        work.extend(std::mem::take(&mut b_sets[x]));
    }
}
