//! include/rmqstream.h must be exactly what cbindgen (pinned in Cargo.toml) generates from src/ffi.
//!
//! `RMQS_BLESS=1 cargo test --test header` (what scripts/gen-header runs) rewrites the file instead.

mod support;

use std::path::PathBuf;

fn generate() -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cannot read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen failed on src/ffi");
    let mut out = Vec::new();
    bindings.write(&mut out);
    out
}

#[test]
fn header_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/rmqstream.h");
    let generated = generate();
    if std::env::var_os("RMQS_BLESS").is_some_and(|v| v == "1") {
        let old = std::fs::read(&path).unwrap_or_default();
        if old != generated {
            std::fs::write(&path, &generated).expect("cannot write include/rmqstream.h");
            eprintln!("wrote {}", path.display());
        } else {
            eprintln!("{} is up to date", path.display());
        }
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    if checked_in != generated {
        let old = String::from_utf8_lossy(&checked_in);
        let new = String::from_utf8_lossy(&generated);
        let first = support::first_difference(&old, &new);
        panic!(
            "header is stale: run scripts/gen-header\n\
             (include/rmqstream.h differs from the generated header from line {}:\n\
             checked in: {:?}\ngenerated:  {:?})",
            first + 1,
            old.lines().nth(first).unwrap_or("<end of file>"),
            new.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn header_exports_only_rmqs_names() {
    let text = String::from_utf8(generate()).unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#define ") {
            let name = rest.split([' ', '(']).next().unwrap();
            assert!(
                name.starts_with("RMQS_") || name == "RMQSTREAM_H",
                "macro outside the RMQS_ namespace: {line}"
            );
        }
    }
}

/// What the header says about threads must hold: callbacks that run on runtime threads say so
/// (the preamble once claimed that application code never runs there), the thread of
/// `rmqs_free_cb` is stated, and so is the dispatcher threads' number (fixed, not one per
/// object).
#[test]
fn header_says_where_callbacks_and_finalizers_run() {
    let text = String::from_utf8(generate()).unwrap();
    let flat = text
        .lines()
        .map(|l| l.trim_start().trim_start_matches('*').trim())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!flat.contains("application code never runs"));
    for claim in [
        "the post-filter (rmqs_post_filter_cb) runs on an rmqs-rt thread",
        "the log callback (rmqs_log_cb) on whichever thread logs, rmqs-rt threads included",
        "user_data_free (rmqs_free_cb) runs exactly once, after the last call of its callback",
        "a dispatcher thread of the object's connection (`rmqs-dispatch`), after the object's last callback",
        "a fixed number (config key dispatch_threads, default 2) shared by all its producers and consumers",
        "the thread of the call that drops the last reference",
    ] {
        assert!(flat.contains(claim), "the header lacks: {claim}");
    }
}

/// The ABI rules of issue 12: every function that returns an `rmqs_status` is `RMQS_MUST_USE`
/// and takes the trailing `rmqs_error **err`, except the two accessors that read a status.
#[test]
fn every_status_function_is_must_use_and_takes_err() {
    let text = String::from_utf8(generate()).unwrap();
    // declarations only: comments removed, then each `...;` at top level
    let mut code = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        rest = &rest[i + rest[i..].find("*/").expect("unterminated comment") + 2..];
    }
    code.push_str(rest);
    let mut checked = 0;
    for decl in code.split(';') {
        let decl = decl.trim();
        let Some(open) = decl.find('(') else { continue };
        let head = &decl[..open];
        if decl.contains("typedef") || head.contains("(*") {
            continue;
        }
        let name = head
            .split_whitespace()
            .last()
            .unwrap()
            .trim_start_matches('*');
        let returns = &head[..head.len() - name.len()];
        if !name.starts_with("rmqs_") || !returns.split_whitespace().any(|w| w == "rmqs_status") {
            continue;
        }
        checked += 1;
        assert!(
            head.contains("RMQS_MUST_USE"),
            "{name} is not RMQS_MUST_USE"
        );
        if name != "rmqs_error_status" && name != "rmqs_event_status" {
            let args = decl[open..].trim_end_matches(')');
            assert!(
                args.trim_end().ends_with("struct rmqs_error **err"),
                "{name} does not take a trailing rmqs_error **err"
            );
        }
    }
    assert!(
        checked > 70,
        "only {checked} status functions found: the parse is broken"
    );
}

/// Every function in the header belongs to one of the Doxygen groups of its map (issue 12): the
/// doc comment right above each declaration has an `@ingroup rmqs_*` line.
#[test]
fn every_function_is_in_a_doxygen_group() {
    let text = String::from_utf8(generate()).unwrap();
    let groups = [
        "rmqs_connection",
        "rmqs_management",
        "rmqs_producer",
        "rmqs_consumer",
        "rmqs_messages",
        "rmqs_events",
        "rmqs_config",
        "rmqs_errors",
    ];
    for g in groups {
        assert!(
            text.contains(&format!("@defgroup {g} ")),
            "no @defgroup {g}"
        );
    }
    let mut last_doc = String::new();
    let mut in_doc = false;
    let mut functions = 0;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("/**") {
            in_doc = true;
            last_doc.clear();
        }
        if in_doc {
            last_doc.push_str(t);
            last_doc.push('\n');
            if t.ends_with("*/") {
                in_doc = false;
            }
            continue;
        }
        let is_fn = !line.starts_with(' ')
            && !t.starts_with('#')
            && !t.starts_with("typedef")
            && t.contains("rmqs_")
            && t.contains('(')
            && !t.contains("(*");
        if is_fn {
            functions += 1;
            let group = last_doc
                .lines()
                .find_map(|l| l.split("@ingroup ").nth(1))
                .map(str::trim);
            assert!(
                group.is_some_and(|g| groups.contains(&g)),
                "not in a group: {line}"
            );
        }
    }
    assert!(functions > 150, "only {functions} functions found");
}
