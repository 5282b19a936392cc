//! The guide stays true to the code (issue 30): every `BETLEDGER_*` variable the code
//! reads is named in the README's configuration section, and every one named there is
//! read by the code or a script; every error code the API answers is in
//! `docs/api/errors.md`, and every code listed there is one it answers. Read as text, so
//! it needs no services.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The files under `dir` ending in `ext`, recursively.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("listing {}: {e}", folder.display()))
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out
}

/// The `BETLEDGER_*` names in `text` (a trailing `_` is cut: `BETLEDGER_*_FILE` forms).
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("BETLEDGER_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let name = name.trim_end_matches('_').to_string();
        if name != "BETLEDGER" {
            found.insert(name);
        }
    }
    found
}

/// The part of a Rust file before its first `#[cfg(test)]`.
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or_default()
}

/// What the binaries read: the `src/` of every crate that builds one or that they link.
fn read_by_code() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for krate in [
        "command-api",
        "projections",
        "replay-tool",
        "eventstore",
        "readmodel",
    ] {
        for file in files(&root().join(krate).join("src"), "rs") {
            found.extend(variables(without_tests(&read(&file))));
        }
    }
    found
}

fn read_by_scripts() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in files(&root().join("scripts"), "sh") {
        found.extend(variables(&read(&file)));
    }
    found.extend(variables(&read(&root().join("docker/entrypoint.sh"))));
    found
}

fn readme_configuration() -> String {
    let readme = read(&root().join("README.md"));
    let start = readme
        .find("## Configuration")
        .expect("the README has a `## Configuration` section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    section[..end].to_string()
}

#[test]
fn every_variable_the_binaries_read_is_in_the_readme_configuration() {
    let documented = variables(&readme_configuration());
    let missing: Vec<_> = read_by_code().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "the code reads these, the README's configuration section does not name them: {missing:?}"
    );
}

#[test]
fn every_variable_the_readme_names_is_read_somewhere() {
    let read: BTreeSet<String> = read_by_code()
        .into_iter()
        .chain(read_by_scripts())
        .chain(variables(&read(&root().join("command-api/src/openapi.rs"))))
        .collect();
    let stale: Vec<_> = variables(&readme_configuration())
        .difference(&read)
        .cloned()
        .collect();
    assert!(
        stale.is_empty(),
        "the README's configuration names these, nothing reads them: {stale:?}"
    );
}

/// The quoted upper-case codes of `text` (`"INVALID_REQUEST"` and the like).
fn quoted_codes(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() > 4 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_error_code_is_in_the_errors_page_and_only_those() {
    let answered = quoted_codes(without_tests(&read(
        &root().join("command-api/src/error.rs"),
    )));
    assert!(
        answered.len() > 20,
        "read too few codes from error.rs: {answered:?}"
    );
    let page = read(&root().join("docs/api/errors.md"));
    let listed: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|c| !c.starts_with("RS_"))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = answered.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&answered).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/api/errors.md: missing {missing:?}, not answered by the API {extra:?}"
    );
    let hub88 = quoted_codes(without_tests(&read(
        &root().join("command-api/src/routes/hub88.rs"),
    )));
    let hub88: BTreeSet<_> = hub88.into_iter().filter(|c| c.starts_with("RS_")).collect();
    let missing: Vec<_> = hub88
        .iter()
        .filter(|c| !page.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api/errors.md lacks these Hub88 statuses: {missing:?}"
    );
}

#[test]
fn the_reading_of_variables_and_codes_sees_what_it_should() {
    assert_eq!(
        variables("x BETLEDGER_API_ADDR, `BETLEDGER_*` BETLEDGER_DB_URL_FILE"),
        ["BETLEDGER_API_ADDR", "BETLEDGER_DB_URL_FILE"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        quoted_codes(r#"(S::X, "WALLET_EXISTS") "a b" "OK" "RS_OK_X" "FORBIDDEN""#),
        ["FORBIDDEN", "RS_OK_X", "WALLET_EXISTS"]
            .map(String::from)
            .into()
    );
}
