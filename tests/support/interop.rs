//! The Python interop scripts of `tests/interop`: the interpreter (the venv of
//! `scripts/install-deps`) and one script run, its JSON report parsed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::mini_json::Json;

/// How long one Python script may run (it has its own, shorter, timeouts).
pub const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// The Python with rstream: `RMQS_PYTHON` (it must exist and import rstream), else the venv's,
/// else `None` (after a notice) when the venv is missing.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RMQS_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "RMQS_PYTHON={} does not exist (unset it to use the venv of scripts/install-deps)",
            p.display()
        );
        // scripts/install-deps reads RMQS_PYTHON too, as the interpreter to make the venv
        // with: a base python left in the variable has no rstream.
        assert!(
            imports(&p, "rstream"),
            "RMQS_PYTHON={} cannot import rstream (point it at the venv's python, e.g. \
             ~/.rmqstream/venv/bin/python, or unset it)",
            p.display()
        );
        return Some(p);
    }
    super::venv_python("rstream interop test")
}

fn imports(py: &Path, module: &str) -> bool {
    Command::new(py)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `py` has `module`; when not, a notice that the test is skipped.
pub fn has_module(py: &Path, module: &str) -> bool {
    let ok = imports(py, module);
    if !ok {
        eprintln!(
            "NOTICE: no {module} in {}: interop test skipped (scripts/install-deps)",
            py.display()
        );
    }
    ok
}

/// [`python`], when it also has `module` (else a notice that the test is skipped).
pub fn python_with(module: &str) -> Option<PathBuf> {
    let py = python()?;
    has_module(&py, module).then_some(py)
}

/// The path of the script `name` of `tests/interop`.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Runs an interop script and parses the JSON it prints. Panics (showing its stderr) when it
/// fails, runs longer than [`SCRIPT_LIMIT`] or prints no JSON.
pub fn run_script(py: &Path, name: &str, args: &[String]) -> Json {
    let started = Instant::now();
    let mut child = Command::new(py)
        .arg(script(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {name}: {e}", py.display()));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    if !stderr.trim().is_empty() {
        eprintln!("--- {name} stderr:\n{}", stderr.trim_end());
    }
    let Some(status) = status else {
        panic!("{name} {args:?} ran longer than {SCRIPT_LIMIT:?} and was killed");
    };
    assert!(
        status.success(),
        "{name} {args:?} failed ({status}):\n{stderr}"
    );
    println!(
        "{name}: {:.1} s, {} bytes of JSON",
        started.elapsed().as_secs_f64(),
        stdout.len()
    );
    Json::parse(&stdout).unwrap_or_else(|e| {
        panic!(
            "{name} printed no valid JSON ({e}): {}",
            &stdout[..stdout.len().min(500)]
        )
    })
}
