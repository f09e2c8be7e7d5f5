//! The node's modules import one way: services → components → {transport, store, clock}.
//! This test reads `src/` and fails on any circle between the crate's top-level modules
//! (`crate::node` → `crate::repair` → `crate::node`, say), naming the modules in it. Test-only
//! modules (declared under `#[cfg(test)]`) and comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its path relative to `src`.
fn sources(src: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ reads") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(src).expect("under src").to_path_buf());
        }
    }
}

/// The files of modules declared under `#[cfg(test)]` (`#[cfg(test)] mod x;` in `dir/m.rs`
/// or `dir/m/mod.rs`) and of their submodules, relative to `src`.
fn test_only(src: &Path, files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(src.join(file)).expect("a source reads");
        let base = match file.file_name().and_then(|f| f.to_str()) {
            Some("mod.rs" | "lib.rs") => file.parent().unwrap_or(Path::new("")).to_path_buf(),
            _ => file.with_extension(""),
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]"
                && let Some(name) = pair[1]
                    .strip_prefix("mod ")
                    .or_else(|| pair[1].strip_prefix("pub mod "))
                    .and_then(|r| r.strip_suffix(';'))
            {
                out.insert(base.join(format!("{name}.rs")));
                out.insert(base.join(name).join("mod.rs"));
            }
        }
    }
    // A test-only module's own submodules (files under its directory) are test-only too.
    let dirs: Vec<PathBuf> = out.iter().map(|f| f.with_extension("")).collect();
    for file in files {
        if dirs.iter().any(|d| file.starts_with(d)) {
            out.insert(file.clone());
        }
    }
    out
}

/// The top-level module a file belongs to (`node/mod.rs` → `node`).
fn top_module(file: &Path) -> String {
    let first = file.components().next().expect("a path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The crate's top-level modules that `text` names as `crate::<module>`, outside comments
/// and inline test modules.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let mut rest = line.split("//").next().unwrap_or_default();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The circles of `graph` (its strongly connected components of more than one module).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (m, r) in &reaches {
        if !r.contains(*m) {
            continue;
        }
        let circle: BTreeSet<String> = r
            .iter()
            .filter(|o| reaches.get(o).is_some_and(|back| back.contains(*m)))
            .cloned()
            .collect();
        if circle.len() > 1 && !out.contains(&circle) {
            out.push(circle);
        }
    }
    out
}

fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, src, &mut files);
    let skip = test_only(src, &files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| !skip.contains(*f)) {
        let module = top_module(file);
        if module == "lib" || module == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(src.join(file)).expect("a source reads");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(imports(&text).into_iter().filter(|d| *d != module));
    }
    graph
}

#[test]
fn the_node_modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() > 10, "the modules were found: {graph:?}");
    assert!(graph["node"].contains("coordinator"));
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "modules that import each other (directly or around a circle): {found:?}"
    );
}

#[test]
fn a_circle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a", "d"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, ds)| (m.to_string(), ds.into_iter().map(String::from).collect()))
    .collect();
    let found = circles(&graph);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        ["a", "b", "c"].into_iter().map(String::from).collect()
    );
    assert_eq!(
        imports("use crate::node::Node; // crate::x\n/// crate::doc\nlet a = crate::b::c();"),
        ["b", "node"].into_iter().map(String::from).collect()
    );
}
