//! The dependency graph: cycle detection that reports every cycle, each as
//! its whole path.

use std::collections::{BTreeMap, BTreeSet};

/// Finds the cycles of a graph given as `node -> parents`. Each cycle is
/// returned in data-flow order and closed (`[a, b, c, a]`: `a` feeds `b`).
pub fn find_cycles(parents: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    // Peel off every node whose parents are all peeled (Kahn); what stays
    // is on a cycle or downstream of one, and every such node keeps at least
    // one remaining parent, so walking parents from it must loop.
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut indegree: BTreeMap<&str, usize> = BTreeMap::new();
    for (node, ps) in parents {
        let known: Vec<&str> = ps
            .iter()
            .map(String::as_str)
            .filter(|p| parents.contains_key(*p))
            .collect();
        indegree.insert(node, known.len());
        for p in known {
            children.entry(p).or_default().push(node);
        }
    }
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    while let Some(n) = ready.pop() {
        indegree.remove(n);
        for c in children.get(n).into_iter().flatten() {
            if let Some(d) = indegree.get_mut(c) {
                *d -= 1;
                if *d == 0 {
                    ready.push(c);
                }
            }
        }
    }
    let remaining: BTreeSet<&str> = indegree.keys().copied().collect();
    let mut seen_cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut cycles = Vec::new();
    let mut on_reported_cycle: BTreeSet<&str> = BTreeSet::new();
    for &start in &remaining {
        if on_reported_cycle.contains(start) {
            continue;
        }
        let mut path: Vec<&str> = vec![start];
        let mut position: BTreeMap<&str, usize> = BTreeMap::from([(start, 0)]);
        let mut current = start;
        let cycle = loop {
            let next = parents[current]
                .iter()
                .map(String::as_str)
                .find(|p| remaining.contains(p))
                .expect("a node left by Kahn's algorithm has a remaining parent");
            if let Some(&i) = position.get(next) {
                break path[i..].to_vec();
            }
            position.insert(next, path.len());
            path.push(next);
            current = next;
        };
        // The walk went child -> parent; report parent -> child.
        let mut cycle: Vec<String> = cycle.iter().rev().map(|s| s.to_string()).collect();
        // Start at the smallest name so the same cycle prints the same way.
        let min = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
        cycle.rotate_left(min);
        let key: Vec<String> = {
            let mut k = cycle.clone();
            k.sort();
            k
        };
        if seen_cycles.insert(key) {
            for n in &cycle {
                if let Some(&r) = remaining.get(n.as_str()) {
                    on_reported_cycle.insert(r);
                }
            }
            let first = cycle[0].clone();
            cycle.push(first);
            cycles.push(cycle);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(n, ps)| (n.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn acyclic_has_no_cycles() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]);
        assert!(find_cycles(&g).is_empty());
    }

    #[test]
    fn reports_whole_cycle_in_flow_order() {
        // a feeds b, b feeds c, c feeds a; d hangs off the cycle.
        let g = graph(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["c"])]);
        assert_eq!(find_cycles(&g), vec![vec!["a", "b", "c", "a"]]);
    }

    #[test]
    fn reports_each_cycle_and_self_loops() {
        let g = graph(&[("a", &["b"]), ("b", &["a"]), ("x", &["x"]), ("y", &[])]);
        assert_eq!(find_cycles(&g), vec![vec!["a", "b", "a"], vec!["x", "x"]]);
    }
}
