//! Structure rules of command-api kept by tests instead of a review: the layering of
//! `src/lib.rs`'s `# Layout` list (dependencies point down it, no module uses one above
//! it), and one clock (no `Utc::now()` outside `crate::clock`). An import circle removed
//! once (issue 11) came back two issues later because nothing checked it (issue 29); this
//! fails on the first `crate::` path that points up.
//!
//! Read as text: every `crate::name` path (and each name of a `crate::{a, b}` group) in a
//! module's files, outside comments and outside its `#[cfg(test)]` part (tests may reach
//! anywhere; the reading stops at a file's first `#[cfg(test)]`). A module is a file
//! `src/name.rs` with its folder `src/name/`, if any; `routes`' own files may use each
//! other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The modules in the order of the `# Layout` list.
fn layout() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("reading src/lib.rs");
    lib.lines()
        .filter_map(|line| line.strip_prefix("//! - [`"))
        .filter_map(|rest| rest.split_once("`]").map(|(name, _)| name.to_string()))
        .collect()
}

/// The modules `lib.rs` declares.
fn declared() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("reading src/lib.rs");
    lib.lines()
        .filter_map(|line| line.strip_prefix("pub mod ").or(line.strip_prefix("mod ")))
        .map(|rest| rest.trim_end_matches(';').to_string())
        .collect()
}

/// A module's source files: `src/name.rs` and everything under `src/name/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = vec![src().join(format!("{module}.rs"))];
    let mut folders = vec![src().join(module)];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.retain(|f| f.exists());
    files
}

/// The modules `text` names through `crate::`, outside comments and its test part.
fn uses(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                names.extend(
                    inner
                        .split(',')
                        .filter_map(|item| item.trim().split("::").next())
                        .filter(|name| !name.is_empty())
                        .map(str::to_string),
                );
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn every_module_is_in_the_layout_list_once() {
    let mut listed = layout();
    let mut modules = declared();
    assert!(
        !listed.is_empty(),
        "no `//! - [`name`]` lines in src/lib.rs"
    );
    listed.sort();
    modules.sort();
    assert_eq!(
        listed, modules,
        "src/lib.rs's # Layout list and its `mod` lines name different modules"
    );
}

#[test]
fn no_module_uses_one_above_it_in_the_layout_list() {
    let order: BTreeMap<String, usize> = layout()
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let mut upward = Vec::new();
    for (module, at) in &order {
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).expect("reading a module's file");
            for used in uses(&text) {
                // `crate::Config` and other re-exports at the root name no module.
                let Some(used_at) = order.get(&used) else {
                    continue;
                };
                if used_at < at {
                    upward.push(format!(
                        "{} uses crate::{used}, which is above {module} in the list",
                        file.strip_prefix(src()).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "dependencies must point down src/lib.rs's # Layout list; move the shared part \
         down, or the module up if nothing below uses it:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_face_uses_another_face() {
    // Each file under `routes/` is one face or group of endpoints; what two of them share
    // lives below them (`seamless`, `input`, `body`, ...), so a face can change without
    // touching another (issue 29: Hub88 reached into the provider's file, which reached
    // into the rounds'). `routes.rs` itself only gathers them.
    let mut crossing = Vec::new();
    for file in files_of("routes") {
        if file == src().join("routes.rs") || file == src().join("routes").join("mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("reading a route's file");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("super::") || code.contains("crate::routes::") {
                crossing.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(src()).unwrap_or(&file).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        crossing.is_empty(),
        "a face uses another face's file; move what they share below routes:\n{}",
        crossing.join("\n")
    );
}

#[test]
fn the_reading_of_paths_sees_groups_and_skips_comments_and_tests() {
    let text = "use crate::{auth::Scope, error::ApiError};\n\
                // crate::app is in a comment\n\
                let x = crate::json::drain(b); // crate::routes after code\n\
                #[cfg(test)]\nmod tests { use crate::app; }\n";
    assert_eq!(uses(text), vec!["auth", "error", "json"]);
}

#[test]
fn time_is_read_from_the_clock_alone() {
    // Handlers and background tasks read "now" from `AppState::clock` (`crate::clock`), so
    // tests can set it; a `Utc::now()` elsewhere would escape them.
    let mut found = Vec::new();
    for module in layout() {
        if module == "clock" {
            continue;
        }
        for file in files_of(&module) {
            let text = std::fs::read_to_string(&file).expect("reading a module's file");
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let code = line.split("//").next().unwrap_or_default();
                if code.contains("Utc::now()") {
                    found.push(format!(
                        "{}:{}",
                        file.strip_prefix(src()).unwrap_or(&file).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "read the time from state.clock (crate::clock), not Utc::now(): {found:?}"
    );
}

#[test]
fn every_bearer_route_names_its_scope_in_its_extractor() {
    // A native route takes `Authorized<needs::X>`: its scope is checked before it runs,
    // and a route without one does not compile into this list (issue 29).
    let mut bare = Vec::new();
    for file in files_of("routes") {
        let text = std::fs::read_to_string(&file).expect("reading a route's file");
        for block in text.split("#[utoipa::path(").skip(1) {
            let Some((attribute, rest)) = block.split_once(")]\n") else {
                continue;
            };
            if !attribute.contains("(\"bearer\"") {
                continue;
            }
            let signature = rest.split(") ->").next().unwrap_or_default();
            if !signature.contains("Authorized<needs::") {
                let name = signature
                    .split("fn ")
                    .nth(1)
                    .and_then(|s| s.split('(').next())
                    .unwrap_or("?");
                bare.push(format!(
                    "{}: {name}",
                    file.strip_prefix(src()).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "bearer routes without an Authorized<needs::X> extractor: {bare:?}"
    );
}
