//! `deploy/symbol-order.txt`, which `make dist` (the Dockerfile's build) passes to the linker: its names are symbols
//! as one rustc mangles them, so the Dockerfile must build with that rustc, or the order matches nothing; and the
//! linker Rust uses here must take the Makefile's arguments and read the file's comment lines as comments.

use std::path::Path;
use std::process::Command;

fn repository_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

#[test]
fn the_dockerfile_builds_with_the_rustc_the_order_was_written_for() {
    let order = repository_file("deploy/symbol-order.txt");
    let written_for = order
        .lines()
        .take_while(|line| line.starts_with('#'))
        .find_map(|line| line.split("for rustc ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the header names the rustc the order was written for");
    let dockerfile = repository_file("Dockerfile");
    let image = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("FROM rust:"))
        .and_then(|rest| rest.split('-').next())
        .expect("the Dockerfile builds FROM rust:<version>-...");
    assert_eq!(
        image, written_for,
        "the Dockerfile's Rust differs from the rustc deploy/symbol-order.txt was written for: rerun \
         scripts/symbol-order (README \"Performance\") or change the image"
    );
}

/// The `-C link-arg=...` arguments of the Makefile's `dist` recipe.
fn dist_link_arguments() -> Vec<String> {
    let makefile = repository_file("Makefile");
    let recipe = makefile
        .split("\ndist:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the Makefile has a dist target");
    let arguments: Vec<String> = recipe
        .split_whitespace()
        .filter(|word| word.starts_with("link-arg="))
        .map(|word| format!("-C{word}"))
        .collect();
    assert!(
        arguments
            .iter()
            .any(|argument| argument.contains("--symbol-ordering-file=deploy/symbol-order.txt")),
        "{recipe}"
    );
    arguments
}

fn link_small_program(arguments: &[String]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.rs"), "fn main() {}\n").unwrap();
    Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg(dir.path().join("main.rs"))
        .arg("-o")
        .arg(dir.path().join("main"))
        .args(["-W", "linker-messages"])
        .args(arguments)
        .output()
        .unwrap()
}

#[test]
fn the_linker_takes_the_dist_arguments_and_skips_the_comments() {
    if (std::env::consts::OS, std::env::consts::ARCH) != ("linux", "x86_64") {
        eprintln!("`make dist` orders symbols only on x86_64 Linux");
        return;
    }
    let arguments = dist_link_arguments();
    let linked = link_small_program(&arguments);
    assert!(
        linked.status.success(),
        "linking with {arguments:?}: {}",
        String::from_utf8_lossy(&linked.stderr)
    );

    // Without `--no-warn-symbol-ordering`, lld names each symbol of the file that the program lacks: a comment line
    // read as a symbol would be named among them.
    let warning_arguments: Vec<String> = arguments
        .into_iter()
        .filter(|argument| !argument.contains("--no-warn-symbol-ordering"))
        .collect();
    let linked = link_small_program(&warning_arguments);
    let messages = String::from_utf8_lossy(&linked.stderr);
    assert!(linked.status.success(), "{messages}");
    assert!(
        messages.contains("symbol ordering file: no such symbol: _ZN"),
        "lld reads the file: {messages:.2000}"
    );
    assert!(
        !messages.contains("no such symbol: #"),
        "a comment line was read as a symbol: {messages:.2000}"
    );
}
