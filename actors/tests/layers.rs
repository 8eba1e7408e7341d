//! The crate's layers, checked on its source: `base` ← `runtime` ← `api` ← `cluster`, imports
//! pointing down only, and no cycle between modules (files). See the crate docs.
//!
//! Every `crate::…` path outside comments is an import of the module it names (the longest
//! prefix that is a module file). Unit tests (`tests.rs` files) may use any layer, as a
//! runtime test builds its job with the API; `lib.rs`, the facade re-exporting the public
//! names, is not a layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LAYERS: [&str; 4] = ["base", "runtime", "api", "cluster"];

/// Module path (`runtime::checkpoint::storage`) of every source file but tests and `lib.rs`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let name = rel.to_str().unwrap().replace('/', "::");
            if name == "lib" || name.ends_with("tests") || name.contains("::tests::") {
                continue;
            }
            out.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The code of a file without comments (so doc links are not imports).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every path after `crate::`, with `{a, b::c}` groups expanded.
fn crate_paths(code: &str) -> Vec<String> {
    fn tree(s: &[u8], i: &mut usize, prefix: &str, out: &mut Vec<String>) {
        let mut path = prefix.to_owned();
        loop {
            while *i < s.len() && s[*i].is_ascii_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == b'{' {
                *i += 1;
                loop {
                    tree(s, i, &path, out);
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b'}') => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&b'}') {
                        *i += 1;
                        return;
                    }
                }
            }
            let start = *i;
            while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
                *i += 1;
            }
            let segment = std::str::from_utf8(&s[start..*i]).unwrap();
            if segment.is_empty() {
                break;
            }
            if !path.is_empty() {
                path.push_str("::");
            }
            path.push_str(segment);
            if s[*i..].starts_with(b"::") {
                *i += 2;
            } else {
                break;
            }
        }
        out.push(path);
    }
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        let mut i = start + "crate::".len();
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary {
            tree(bytes, &mut i, "", &mut out);
        }
        from = i.max(start + 1);
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn module_of<'a>(path: &str, modules: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let mut prefix = path;
    loop {
        if let Some((name, _)) = modules.get_key_value(prefix) {
            return Some(name);
        }
        prefix = &prefix[..prefix.rfind("::")?];
    }
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS.iter().position(|l| *l == top).unwrap_or_else(|| panic!("module {module} is in no layer"))
}

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut graph = BTreeMap::new();
    for (name, text) in &modules {
        let targets: BTreeSet<String> = crate_paths(&code(text))
            .iter()
            .filter_map(|p| module_of(p, &modules))
            .filter(|m| m != name)
            .map(str::to_owned)
            .collect();
        graph.insert(name.clone(), targets);
    }
    graph
}

#[test]
fn imports_point_down_the_layers() {
    let graph = imports();
    assert!(graph.len() > 50, "the source was not found: {graph:?}");
    let upward: Vec<String> = graph
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |t| (from, t)))
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(upward.is_empty(), "imports against the layers ({LAYERS:?}, lowest first):\n{}", upward.join("\n"));
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = imports();
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in &graph[node] {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("modules import each other: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn paths_are_read_with_their_groups() {
    let paths = crate_paths("use crate::a::{b::C, d::{e, F}};\nlet x = crate::g::h(); notcrate::z");
    assert_eq!(paths, ["a::b::C", "a::d::e", "a::d::F", "g::h"]);
}
