//! Every numbered requirement in `spec/` is cited by at least one test.
//!
//! A requirement is defined where its id stands in brackets at the start of a
//! bullet (`- [FRAG-3] ...`). A test cites it by writing `[FRAG-3]` in a
//! comment. Citations count in `tests/`, in `interop/tests/`, in the fuzz
//! targets, and in the `#[cfg(test)]` part of files under `src/`.
//! Requirements that no test can check yet are listed, with the reason, in
//! `spec/UNCITED.md`; that list may only shrink.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") && !p.ends_with("node_modules") {
                files(&p, ext, out);
            }
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// Ids written as `[PREFIX-N]` in `text`.
fn ids(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find('[') {
        let start = i + off + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_uppercase() {
            j += 1;
        }
        if j > start && j < b.len() && b[j] == b'-' {
            let mut k = j + 1;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            if k > j + 1 && k < b.len() && b[k] == b']' {
                out.insert(text[start..k].to_string());
            }
        }
        i = start;
    }
    out
}

fn defined() -> BTreeSet<String> {
    let mut specs = Vec::new();
    files(&root().join("spec"), "md", &mut specs);
    let mut out = BTreeSet::new();
    for p in specs {
        let text = std::fs::read_to_string(&p).unwrap();
        for line in text.lines() {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("- [") {
                out.extend(ids(&format!(
                    "[{}",
                    &rest[..rest.find(']').map_or(0, |n| n + 1)]
                )));
            }
        }
    }
    out
}

fn cited() -> BTreeSet<String> {
    let mut srcs = Vec::new();
    for d in ["tests", "interop/tests", "fuzz/fuzz_targets", "fuzz/src"] {
        files(&root().join(d), "rs", &mut srcs);
    }
    let mut out = BTreeSet::new();
    for p in srcs {
        if p.ends_with("spec_coverage.rs") {
            continue;
        }
        out.extend(ids(&std::fs::read_to_string(&p).unwrap()));
    }
    let mut lib = Vec::new();
    files(&root().join("src"), "rs", &mut lib);
    for p in lib {
        let text = std::fs::read_to_string(&p).unwrap();
        if let Some(at) = text.find("#[cfg(test)]") {
            out.extend(ids(&text[at..]));
        }
    }
    out
}

fn waived() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("spec/UNCITED.md")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- "))
        .flat_map(|l| ids(l).into_iter().take(1))
        .collect()
}

#[test]
fn every_requirement_is_cited_by_a_test() {
    let defined = defined();
    assert!(
        defined.len() > 150,
        "found only {} requirements",
        defined.len()
    );
    let cited = cited();
    let waived = waived();
    let missing: Vec<&String> = defined
        .iter()
        .filter(|id| !cited.contains(*id) && !waived.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} requirements are cited by no test and not listed in spec/UNCITED.md: {missing:?}",
        missing.len()
    );
    let stale: Vec<&String> = waived.iter().filter(|id| cited.contains(*id)).collect();
    assert!(
        stale.is_empty(),
        "these are cited now; remove them from spec/UNCITED.md: {stale:?}"
    );
    let unknown: Vec<&String> = cited.difference(&defined).collect();
    assert!(
        unknown.is_empty(),
        "tests cite ids the spec does not define: {unknown:?}"
    );
}
