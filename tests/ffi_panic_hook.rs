//! The library's panic hook: caught panics of the library stay off the host program's hook
//! (Rust's default one prints to stderr) and go to the log; the host's own panics still reach
//! the host's hook. One test function: the hook is process-wide.

use std::ffi::CStr;
use std::panic::catch_unwind;
use std::ptr;
use std::sync::{Arc, Mutex};

use rmqstream::client::log::{Level, Log, Logger};
use rmqstream::ffi::panic::{ffi_status, register_log, set_thread_log, unregister_log};
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::runtime::{ThreadRole, mark_thread};
use rmqstream::ffi::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Logger for Recorder {
    fn log(&self, level: Level, target: &str, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{level} {target}: {message}"));
    }
}

fn lines(r: &Recorder) -> Vec<String> {
    std::mem::take(&mut *r.0.lock().unwrap())
}

#[test]
fn caught_panics_go_to_the_log_and_the_host_hook_sees_only_its_own() {
    // The host program's hook, installed before the library is used.
    let host: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = host.clone();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default();
        h.lock().unwrap().push(msg);
    }));
    // First use of the library: installs its hook over the host's.
    let cfg = rmqs_config_new();
    unsafe { rmqs_config_free(cfg) };

    // 1. A panic inside a boundary on an application thread: an RMQS_ERR_PANIC with the
    //    location, the open connections' logs get it, the host's hook does not.
    let rec = Arc::new(Recorder::default());
    let id = register_log(Log::new(rec.clone(), Level::Error));
    let mut err: *mut rmqs_error = ptr::null_mut();
    let line = line!() + 1;
    let st = unsafe { ffi_status(&mut err, || panic!("boom in a call")) };
    unregister_log(id);
    assert_eq!(st, RMQS_ERR_PANIC.status());
    let msg = unsafe { CStr::from_ptr(rmqs_error_message(err)) }
        .to_str()
        .unwrap()
        .to_string();
    unsafe { rmqs_error_free(err) };
    let at = format!("(at tests/ffi_panic_hook.rs:{line})");
    assert_eq!(msg, format!("panic in rmqstream: boom in a call {at}"));
    assert_eq!(
        lines(&rec),
        [format!("error panic: caught a panic: boom in a call {at}")]
    );
    assert!(
        host.lock().unwrap().is_empty(),
        "{:?}",
        host.lock().unwrap()
    );

    // 2. A panic on a library thread (caught there, as Tokio and the dispatcher do): to that
    //    thread's connection log only.
    let rec2 = Arc::new(Recorder::default());
    let r2 = rec2.clone();
    std::thread::spawn(move || {
        mark_thread(ThreadRole::Runtime);
        set_thread_log(Log::new(r2, Level::Info));
        assert!(catch_unwind(|| panic!("boom on rmqs-rt")).is_err());
    })
    .join()
    .unwrap();
    let got = lines(&rec2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "error panic: caught a panic: boom on rmqs-rt (at tests/ffi_panic_hook.rs:"
        ),
        "{got:?}"
    );
    assert!(
        host.lock().unwrap().is_empty(),
        "{:?}",
        host.lock().unwrap()
    );

    // 3. The host's own panics, on its threads and outside any library call: the host's hook,
    //    and nothing in the library's logs.
    let rec3 = Arc::new(Recorder::default());
    let id = register_log(Log::new(rec3.clone(), Level::Error));
    assert!(catch_unwind(|| panic!("the host's own")).is_err());
    std::thread::spawn(|| assert!(catch_unwind(|| panic!("on a host thread")).is_err()))
        .join()
        .unwrap();
    unregister_log(id);
    assert_eq!(
        *host.lock().unwrap(),
        ["the host's own", "on a host thread"]
    );
    assert!(lines(&rec3).is_empty());
}
