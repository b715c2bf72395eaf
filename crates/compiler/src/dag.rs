//! The dependency graph: cycle detection that reports every cycle, each as
//! its whole path.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Finds the cycles of a graph given as `node -> parents`. Each cycle is
/// returned in data-flow order and closed (`[a, b, c, a]`: `a` feeds `b`).
pub fn find_cycles(parents: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    // Work on indices: this runs over every node of large projects.
    let names: Vec<&str> = parents.keys().map(String::as_str).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let parent_ids: Vec<Vec<usize>> = parents
        .values()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| index.get(p.as_str()).copied())
                .collect()
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (node, ps) in parent_ids.iter().enumerate() {
        for &p in ps {
            children[p].push(node);
        }
    }
    // Peel off every node whose parents are all peeled (Kahn); what stays
    // is on a cycle or downstream of one, and every such node keeps at least
    // one remaining parent, so walking parents from it must loop.
    let mut indegree: Vec<usize> = parent_ids.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..names.len()).filter(|&i| indegree[i] == 0).collect();
    let mut remaining = vec![true; names.len()];
    while let Some(n) = ready.pop() {
        remaining[n] = false;
        for &c in &children[n] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    let mut seen_cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut on_reported_cycle = vec![false; names.len()];
    let mut cycles = Vec::new();
    for start in (0..names.len()).filter(|&i| remaining[i]) {
        if on_reported_cycle[start] {
            continue;
        }
        let mut path: Vec<usize> = vec![start];
        let mut position: HashMap<usize, usize> = HashMap::from([(start, 0)]);
        let mut current = start;
        let cycle = loop {
            let next = parent_ids[current]
                .iter()
                .copied()
                .find(|&p| remaining[p])
                .expect("a node left by Kahn's algorithm has a remaining parent");
            if let Some(&i) = position.get(&next) {
                break path[i..].to_vec();
            }
            position.insert(next, path.len());
            path.push(next);
            current = next;
        };
        // The walk went child -> parent; report parent -> child, starting at
        // the smallest name so the same cycle always prints the same way.
        let mut cycle: Vec<String> = cycle.iter().rev().map(|&i| names[i].to_string()).collect();
        let min = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
        cycle.rotate_left(min);
        let mut key = cycle.clone();
        key.sort();
        if seen_cycles.insert(key) {
            for n in &cycle {
                on_reported_cycle[index[n.as_str()]] = true;
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
