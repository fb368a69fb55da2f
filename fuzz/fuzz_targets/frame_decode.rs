//! Frame codec on arbitrary bytes: `Frame::decode`, `Frame::decode_server` and `split_frame`.
//!
//! Properties, beyond "never panics":
//! * the whole input as one frame body: whatever decodes reports the key and version it was
//!   read from, re-encodes, and decodes back (size prefix split by `split_frame`) to an equal
//!   frame; encoding that again gives the same bytes (the encoding is canonical);
//! * the input as a byte stream: `split_frame` cuts it into bodies within the size bound
//!   (`max`), consistent with `frame_len`, and each body goes through both decoders as above.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rmqstream::protocol::commands::{Frame, frame_len, split_frame};

fuzz_target!(|data: &[u8]| {
    check_body(Bytes::copy_from_slice(data));

    for max in [0u32, 64, 1 << 20] {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            let expected = frame_len(&buf, max);
            match split_frame(&mut buf, max) {
                Ok(Some(body)) => {
                    assert_eq!(expected, Ok(Some(body.len() + 4)));
                    assert_eq!(buf.len(), before - body.len() - 4);
                    if max != 0 {
                        assert!(body.len() <= max as usize);
                    }
                    check_body(body);
                }
                Ok(None) => {
                    assert_eq!(expected, Ok(None));
                    assert_eq!(buf.len(), before);
                    break;
                }
                Err(e) => {
                    assert_eq!(expected, Err(e));
                    assert_eq!(buf.len(), before);
                    break;
                }
            }
        }
    }
});

/// Runs one frame body through both decoders and checks what decodes.
fn check_body(body: Bytes) {
    let header = (body.len() >= 4).then(|| {
        (
            u16::from_be_bytes([body[0], body[1]]),
            u16::from_be_bytes([body[2], body[3]]),
        )
    });
    for server in [false, true] {
        let Ok(frame) = decode(body.clone(), server) else {
            continue;
        };
        let (key, version) = header.expect("a decoded frame has a key and a version");
        // decode_server reads the pre-3.11.1 responses 0x0018/0x0019 (no response bit).
        let legacy = server && (key == 0x0018 || key == 0x0019);
        assert_eq!(frame.key(), if legacy { key | 0x8000 } else { key });
        assert_eq!(frame.version(), version);
        round_trip(&frame, server);
    }
}

fn decode(body: Bytes, server: bool) -> Result<Frame, rmqstream::protocol::DecodeError> {
    if server {
        Frame::decode_server(body)
    } else {
        Frame::decode(body)
    }
}

/// encode → split_frame → decode gives the same frame; re-encoding gives the same bytes.
fn round_trip(frame: &Frame, server: bool) {
    let mut wire = BytesMut::new();
    if let Err(e) = frame.encode(&mut wire) {
        // The one value the decoder accepts but the encoder refuses: a credit above
        // 32767 (the broker reads the credit as a signed 16-bit integer).
        assert!(
            matches!(frame, Frame::Credit(c) if c.credit > i16::MAX as u16),
            "a decoded frame does not encode: {e}: {frame:?}"
        );
        assert!(wire.is_empty(), "a failed encode left bytes behind");
        return;
    }
    let encoded = wire.clone().freeze();
    let body = split_frame(&mut wire, 0)
        .expect("own encoding has a valid size prefix")
        .expect("own encoding is a whole frame");
    assert!(wire.is_empty(), "own encoding has bytes after the frame");
    let again = decode(body, server)
        .unwrap_or_else(|e| panic!("own encoding does not decode: {e}: {frame:?}"));
    assert_eq!(&again, frame, "round trip changed the frame");
    let mut wire2 = BytesMut::new();
    again.encode(&mut wire2).expect("re-encode");
    assert_eq!(wire2.freeze(), encoded, "encoding is not canonical");
}
