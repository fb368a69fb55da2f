//! `ConnectionConfig::apply_uri` on arbitrary text, and the `echo`/`echo_uri` helpers that
//! quote user input in messages.
//!
//! Properties, beyond "never panics":
//! * a URI that fails leaves the config as it was; its message is bounded (input is quoted at
//!   most `ECHO_MAX` bytes at a time) and never holds the URI's user info with its password
//!   (`:password@`), unless the URI holds that text twice;
//! * a URI that parses gives 1 or more hosts of 1 to `MAX_HOST_LEN` bytes with a non-zero
//!   port, a vhost, and a `frame_max` that `check_frame_max` accepts; applying it again gives
//!   the same config;
//! * `echo` is a prefix of its input (plus a length note) of at most `ECHO_MAX` bytes of it;
//!   `echo_uri` is bounded the same way.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rmqstream::client::config::{ConnectionConfig, MAX_HOST_LEN, check_frame_max};
use rmqstream::client::error::{ECHO_MAX, echo, echo_uri};

/// The password of a URI's user info, as written (not decoded), if any.
fn password(uri: &str) -> Option<&str> {
    let rest = &uri[uri.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Quoting helpers.
    let e = echo(text);
    if text.len() <= ECHO_MAX {
        assert_eq!(e, text);
    } else {
        let cut = e.find("… (").expect("a length note");
        assert!(cut <= ECHO_MAX && text.starts_with(&e[..cut]));
    }
    assert!(echo_uri(text).len() <= ECHO_MAX + 64);

    // The URI itself, as given and behind both schemes.
    for uri in [
        text.to_string(),
        format!("rabbitmq-stream://{text}"),
        format!("rabbitmq-stream+tls://{text}"),
    ] {
        let mut c = ConnectionConfig::default();
        let before = c.clone();
        match c.apply_uri(&uri) {
            Err(err) => {
                assert_eq!(c, before, "a failed URI changed the config");
                let msg = err.to_string();
                // the URI, a host and a parameter key or value: each quoted at most once
                assert!(
                    msg.len() <= 4 * (ECHO_MAX + 64) + 256,
                    "{} bytes",
                    msg.len()
                );
                // the password as it stands in the user info, ":password@", never comes back
                // (the message's own text may hold the same letters: match the whole form)
                if let Some(pw) = password(&uri).filter(|p| !p.is_empty() && *p != "***") {
                    let form = format!(":{pw}@");
                    if uri.matches(&form).count() == 1 {
                        assert!(!msg.contains(&form), "password in {msg:?}");
                    }
                }
            }
            Ok(()) => {
                assert!(!c.endpoints.is_empty());
                for ep in &c.endpoints {
                    assert!(!ep.host.is_empty() && ep.host.len() <= MAX_HOST_LEN);
                    assert_ne!(ep.port, 0);
                }
                assert!(!c.vhost.is_empty());
                assert!(check_frame_max(c.frame_max).is_ok());
                let mut again = c.clone();
                again
                    .apply_uri(&uri)
                    .expect("a URI that parsed parses again");
                assert_eq!(again, c);
                let _ = c.validate();
            }
        }
    }
});
