//! The module layers of `src/`, as the README's architecture section draws them: every `crate::` path in a module's
//! code (tests and comments aside) names a module of a lower layer, or a sibling of its own layer without a cycle
//! among siblings. Needs no running service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// From the top: each layer may use those below it.
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["runtime", "tools"],
    &["connectors"],
    &["eventbridge", "kafka", "schema", "dead_letter"],
    &["aws"],
    &["config"],
    &["telemetry", "transform"],
    &[
        "record",
        "json_path",
        "json_text",
        "rate_limit",
        "pattern",
        "redact",
        "connector_state",
        "basic_auth",
        "backoff",
    ],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// A file's code without its `#[cfg(test)]` part and without comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module -> the modules its code names, over every `.rs` file below `src/`.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let reference = regex::Regex::new(r"\b(?:crate|ebconnect)::(\w+)").unwrap();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        if relative == "lib.rs" {
            continue;
        }
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        let named = uses.entry(module.clone()).or_default();
        for capture in reference.captures_iter(&code(&std::fs::read_to_string(&file).unwrap())) {
            let used = capture[1].to_owned();
            // `crate::error_chain` and the like are lib.rs's own items, not modules.
            if used != module && layer_of(&used).is_some() {
                named.insert(used);
            }
        }
    }
    uses
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = uses().into_keys().filter(|module| layer_of(module).is_none()).collect();
    assert!(unplaced.is_empty(), "modules in no layer of LAYERS: {unplaced:?}");
}

#[test]
fn imports_point_downward() {
    let mut upward = Vec::new();
    for (module, used) in uses() {
        let Some(own) = layer_of(&module) else { continue };
        for other in used {
            if layer_of(&other).is_some_and(|layer| layer < own) {
                upward.push(format!("{module} -> {other}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports pointing up the layers: {upward:?}");
}

#[test]
fn siblings_form_no_cycle() {
    let uses = uses();
    let mut cycles = Vec::new();
    for (module, used) in &uses {
        for other in used {
            let back = uses.get(other).is_some_and(|theirs| theirs.contains(module));
            if back && module < other {
                cycles.push(format!("{module} <-> {other}"));
            }
        }
    }
    // Longer cycles among siblings: follow each module's same-layer uses and look for the module again.
    for module in uses.keys() {
        let Some(own) = layer_of(module) else { continue };
        let mut seen = BTreeSet::new();
        let mut next: Vec<&String> = uses[module].iter().collect();
        while let Some(current) = next.pop() {
            if layer_of(current) != Some(own) || !seen.insert(current.clone()) {
                continue;
            }
            if current == module {
                cycles.push(format!("a cycle through {module}"));
                break;
            }
            next.extend(uses.get(current).into_iter().flatten());
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}

/// The longest a connector function may be: past it, wiring and the loop's phases mix and cannot be read (or
/// tested) apart.
const MAX_CONNECTOR_FUNCTION_LINES: usize = 80;

/// Every function and method under `src/connectors`, with its file, name and length in lines.
fn connector_functions() -> Vec<(String, String, usize)> {
    struct Lengths<'a> {
        file: &'a str,
        found: Vec<(String, String, usize)>,
    }
    impl Lengths<'_> {
        fn note(&mut self, name: &syn::Ident, span: proc_macro2::Span) {
            let lines = span.end().line - span.start().line + 1;
            self.found.push((self.file.to_owned(), name.to_string(), lines));
        }
    }
    impl<'ast> syn::visit::Visit<'ast> for Lengths<'_> {
        fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
            self.note(&item.sig.ident, syn::spanned::Spanned::span(item));
            syn::visit::visit_item_fn(self, item);
        }
        fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
            self.note(&item.sig.ident, syn::spanned::Spanned::span(item));
            syn::visit::visit_impl_item_fn(self, item);
        }
    }
    let connectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/connectors");
    let mut files = vec![connectors.clone()];
    let mut found = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = syn::parse_file(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let name = path.strip_prefix(&connectors).unwrap().to_string_lossy().to_string();
        let mut lengths = Lengths {
            file: &name,
            found: Vec::new(),
        };
        syn::visit::Visit::visit_file(&mut lengths, &file);
        found.extend(lengths.found);
    }
    found
}

#[test]
fn connector_functions_stay_short() {
    let functions = connector_functions();
    // The measure itself works: the connectors have functions, and it counts their lines.
    assert!(functions.len() > 100, "{functions:?}");
    assert!(functions.iter().any(|(_, _, lines)| *lines > 40), "{functions:?}");
    let long: Vec<String> = functions
        .iter()
        .filter(|(_, _, lines)| *lines > MAX_CONNECTOR_FUNCTION_LINES)
        .map(|(file, name, lines)| format!("{file}: {name} has {lines} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "connector functions over {MAX_CONNECTOR_FUNCTION_LINES} lines: {long:?}"
    );
}
