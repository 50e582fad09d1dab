//! The lists of what a backend must implement and what it may override are checked against
//! the trait itself: this test parses `tensor/src/backend/mod.rs` (the source of `Backend`
//! and `BackendStorage`), sorts every method into required (a signature ending in `;`) and
//! provided (a default body), and fails if
//!
//! - the "Must implement vs may override" table of that module's docs, or
//! - the same table in this crate's README,
//!
//! misses a method, lists it under the wrong kind, or lists a method the traits do not have;
//! and if [`PRIMITIVES`] (what `CountingBackend` counts) is not exactly the required methods
//! of `Backend` but `name`, in the trait's order. That `CountingBackend` implements every
//! required method and nothing else is checked by the compiler and by
//! `counting_backend_overrides_nothing` below.

use std::collections::BTreeSet;
use tessera_backend_counting::PRIMITIVES;

const BACKEND_SOURCE: &str = include_str!("../../../tensor/src/backend/mod.rs");
const README: &str = include_str!("../README.md");
const COUNTING_SOURCE: &str = include_str!("../src/lib.rs");

/// The items of one trait, in source order.
#[derive(Debug, Default)]
struct TraitItems {
    required: Vec<String>,
    provided: Vec<String>,
}

/// `line` without a trailing `//` comment (the traits' code has no `//` inside strings).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The body of `pub trait NAME` in `src`, as lines.
fn trait_body<'a>(src: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("pub trait {name}");
    let mut lines = src.lines().skip_while(|l| !l.starts_with(&header));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("`{header}` not found"));
    let mut depth = code(first).matches('{').count() as i64;
    let mut body = Vec::new();
    for line in lines {
        let c = code(line);
        depth += c.matches('{').count() as i64 - c.matches('}').count() as i64;
        if depth <= 0 {
            return body;
        }
        body.push(line);
    }
    panic!("`{header}` has no closing brace");
}

/// Sorts the items of trait `name` (methods and associated types) into required and
/// provided, prefixing each with `prefix`.
fn trait_items(src: &str, name: &str, prefix: &str) -> TraitItems {
    let body = trait_body(src, name);
    let mut items = TraitItems::default();
    let mut depth = 0i64;
    for (i, line) in body.iter().enumerate() {
        let c = code(line);
        let t = c.trim_start();
        if depth == 0 {
            if let Some(rest) = t.strip_prefix("type ") {
                let ident: String = rest
                    .chars()
                    .take_while(|&ch| ch.is_alphanumeric() || ch == '_')
                    .collect();
                items.required.push(format!("{prefix}{ident}"));
            } else if let Some(rest) = t.strip_prefix("fn ") {
                let ident: String = rest
                    .chars()
                    .take_while(|&ch| ch.is_alphanumeric() || ch == '_')
                    .collect();
                // The signature ends at the first `;` (no default) or `{` (a default body).
                let rest_of_item = body[i..]
                    .iter()
                    .map(|l| code(l))
                    .collect::<Vec<_>>()
                    .join("\n");
                let sig_from = rest_of_item.find("fn ").expect("fn");
                let end = rest_of_item[sig_from..]
                    .find([';', '{'])
                    .unwrap_or_else(|| panic!("signature of `{ident}` does not end"));
                let kind = rest_of_item.as_bytes()[sig_from + end];
                let name = format!("{prefix}{ident}");
                if kind == b';' {
                    items.required.push(name);
                } else {
                    items.provided.push(name);
                }
            }
        }
        depth += c.matches('{').count() as i64 - c.matches('}').count() as i64;
    }
    items
}

/// The items of `Backend` and `BackendStorage` (the latter as `BackendStorage::item`) in
/// `src`, the source of `tensor/src/backend/mod.rs`.
fn traits(src: &str) -> TraitItems {
    let storage = trait_items(src, "BackendStorage", "BackendStorage::");
    let backend = trait_items(src, "Backend:", "");
    TraitItems {
        required: storage
            .required
            .into_iter()
            .chain(backend.required)
            .collect(),
        provided: storage
            .provided
            .into_iter()
            .chain(backend.provided)
            .collect(),
    }
}

/// The backticked names in the second column of the rows of `doc` whose first column starts
/// with "must implement" (required) or "may override" (provided). `doc` is markdown, or
/// module docs whose lines start with `//!`.
fn doc_table(doc: &str) -> TraitItems {
    let mut items = TraitItems::default();
    for line in doc.lines() {
        let line = line.trim_start().trim_start_matches("//!").trim();
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let list = if cells[1].starts_with("must implement") {
            &mut items.required
        } else if cells[1].starts_with("may override") {
            &mut items.provided
        } else {
            continue;
        };
        for (i, part) in cells[2].split('`').enumerate() {
            if i % 2 == 1 {
                list.push(part.to_string());
            }
        }
    }
    items
}

fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

/// Every difference between the lists of the traits in `src` and a document's.
fn problems(src: &str, doc: &TraitItems) -> Vec<String> {
    let t = traits(src);
    let mut problems = Vec::new();
    for (kind, want, got) in [
        ("must implement", &t.required, &doc.required),
        ("may override", &t.provided, &doc.provided),
    ] {
        let (want, got) = (set(want), set(got));
        for m in want.difference(&got) {
            problems.push(format!(
                "`{m}` is {kind} in the trait but not listed as {kind}"
            ));
        }
        for m in got.difference(&want) {
            problems.push(format!(
                "`{m}` is listed as {kind} but is not {kind} in the trait"
            ));
        }
    }
    let all: Vec<String> = doc.required.iter().chain(&doc.provided).cloned().collect();
    if set(&all).len() != all.len() {
        problems.push(format!("a method is listed twice: {all:?}"));
    }
    problems
}

/// Fails with every difference between the traits' lists and a document's.
fn check_against(what: &str, doc: &TraitItems) {
    let p = problems(BACKEND_SOURCE, doc);
    assert!(p.is_empty(), "{what}:\n{}", p.join("\n"));
}

#[test]
fn the_parser_sees_the_traits() {
    let t = traits(BACKEND_SOURCE);
    for m in [
        "Storage",
        "name",
        "from_host",
        "matmul",
        "upsample_bicubic2d_backward",
    ] {
        assert!(t.required.iter().any(|r| r == m), "{m} not required: {t:?}");
    }
    for m in [
        "full",
        "softmax",
        "conv2d_backward_weight",
        "BackendStorage::is_empty",
    ] {
        assert!(t.provided.iter().any(|r| r == m), "{m} not provided: {t:?}");
    }
    assert!(t.required.iter().any(|r| r == "BackendStorage::len"));
    assert!(t.required.len() >= 25 && t.provided.len() >= 22, "{t:?}");
}

#[test]
fn backend_module_docs_list_every_method() {
    check_against(
        "tensor/src/backend/mod.rs, table `Must implement vs may override`",
        &doc_table(BACKEND_SOURCE),
    );
}

#[test]
fn readme_lists_every_method() {
    check_against("backends/counting/README.md", &doc_table(README));
}

#[test]
fn primitives_are_the_required_methods() {
    let t = trait_items(BACKEND_SOURCE, "Backend:", "");
    let want: Vec<&str> = t
        .required
        .iter()
        .map(String::as_str)
        .filter(|m| !["Storage", "name"].contains(m))
        .collect();
    assert_eq!(PRIMITIVES, want.as_slice());
}

#[test]
fn counting_backend_overrides_nothing() {
    // Every method `CountingBackend` implements is a required one: the composites, in-place
    // ops, updates and device methods run their defaults.
    let t = traits(BACKEND_SOURCE);
    let body = trait_items(
        &COUNTING_SOURCE.replace("impl Backend for CountingBackend", "pub trait Impl"),
        "Impl",
        "",
    );
    let implemented: Vec<String> = body
        .required
        .iter()
        .chain(&body.provided)
        .cloned()
        .collect();
    let provided = set(&t.provided);
    let overridden: Vec<&String> = implemented
        .iter()
        .filter(|m| provided.contains(m.as_str()))
        .collect();
    assert!(
        overridden.is_empty(),
        "CountingBackend overrides {overridden:?}"
    );
    let required: BTreeSet<&str> = set(&t.required)
        .into_iter()
        .filter(|m| !m.starts_with("BackendStorage::"))
        .collect();
    assert_eq!(set(&implemented), required);
}

#[test]
fn a_method_added_to_the_trait_or_dropped_from_the_docs_is_caught() {
    let docs = doc_table(BACKEND_SOURCE);
    // A new required primitive in the trait, not in the table.
    let grown = BACKEND_SOURCE.replacen(
        "    fn name(&self) -> &'static str;",
        "    fn name(&self) -> &'static str;\n\n    fn fused_attention(\n        &self,\n    ) -> Result<Self::Storage>;",
        1,
    );
    assert_ne!(
        grown, BACKEND_SOURCE,
        "the trait's `name` line moved; update this test"
    );
    let p = problems(&grown, &docs);
    assert_eq!(
        p,
        ["`fused_attention` is must implement in the trait but not listed as must implement"]
    );
    // A new provided method.
    let grown = BACKEND_SOURCE.replacen(
        "    fn name(&self) -> &'static str;",
        "    fn name(&self) -> &'static str;\n    fn flush(&self) -> Result<()> {\n        Ok(())\n    }",
        1,
    );
    let p = problems(&grown, &docs);
    assert_eq!(
        p,
        ["`flush` is may override in the trait but not listed as may override"]
    );
    // A row that loses a method, and one listed under the wrong kind.
    let mut shrunk = doc_table(BACKEND_SOURCE);
    shrunk.required.retain(|m| m != "matmul");
    shrunk.provided.push("matmul".into());
    let p = problems(BACKEND_SOURCE, &shrunk);
    assert_eq!(p.len(), 2, "{p:?}");
}
