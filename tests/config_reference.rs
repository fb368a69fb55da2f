//! docs/CONFIGURATION.md must be exactly what the client's key table generates
//! (`rmqstream::client::config::keys::reference_markdown`).
//!
//! `RMQS_BLESS=1 cargo test --test config_reference` (also run by scripts/gen-header) rewrites
//! the file instead.

mod support;

use std::path::PathBuf;

use rmqstream::client::config::keys::reference_markdown;

#[test]
fn configuration_reference_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/CONFIGURATION.md");
    let generated = reference_markdown();
    if std::env::var_os("RMQS_BLESS").is_some_and(|v| v == "1") {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).expect("cannot write docs/CONFIGURATION.md");
            eprintln!("wrote {}", path.display());
        }
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let line = support::first_difference(&checked_in, &generated);
        panic!(
            "docs/CONFIGURATION.md is stale (first difference at line {}): regenerate it with \
             `RMQS_BLESS=1 cargo test --test config_reference` (or scripts/gen-header)",
            line + 1
        );
    }
}

/// Every key of the table is in the reference, with its default.
#[test]
fn every_key_is_documented() {
    let doc = reference_markdown();
    for key in rmqstream::client::config::keys::KEYS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", key.name)))
            .unwrap_or_else(|| panic!("{} missing", key.name));
        if !key.default.is_empty() {
            assert!(row.contains(&format!("| `{}` |", key.default)), "{row}");
        }
    }
}
