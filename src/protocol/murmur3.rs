//! MurmurHash3 (x86, 32-bit) and the super stream hash routing built on it.
//!
//! The official stream clients (Java, Go, .NET, Rust, JS) route a message of a super stream to
//! `partitions[murmur3_32(utf8(routing_key), 104729) mod N]`, the hash taken as unsigned and
//! `partitions` in the order of the Partitions response. This is client convention, not protocol:
//! using the same function keeps a key on the same partition whichever client published it.

/// The seed every official client uses for super stream hash routing.
pub const SUPER_STREAM_SEED: u32 = 104_729;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k1(k1: u32) -> u32 {
    k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// MurmurHash3 x86 32-bit of `data` with `seed` (Austin Appleby's `MurmurHash3_x86_32`;
/// blocks are read little-endian, whatever the host's byte order).
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    let mut h1 = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k1 = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h1 ^= mix_k1(k1);
        h1 = h1.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k1 = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k1 |= u32::from(*b) << (8 * i);
        }
        h1 ^= mix_k1(k1);
    }
    // The reference folds the length in as a 32-bit value (`h1 ^= len`), truncating on purpose.
    h1 ^= data.len() as u32;
    fmix32(h1)
}

/// The partition index (in `0..n`) for `key` among `n` partitions, as the official clients
/// compute it: `murmur3_32(key as UTF-8, 104729) % n`, unsigned.
///
/// Returns 0 when `n` is 0 so the function never panics; callers must treat "no partition"
/// themselves before routing.
pub fn route_partition(key: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let hash = murmur3_32(key.as_bytes(), SUPER_STREAM_SEED);
    // u32 -> u64 is lossless; the modulus is < n so it fits back into usize.
    (u64::from(hash) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard MurmurHash3_x86_32 vectors. Source: Boost.Hash2's legacy murmur3_32 test, which
    /// takes them from the StackOverflow question 14747343 "MurmurHash3 test vectors"; every value
    /// was re-checked against a second implementation, Python `mmh3` 5.3.1
    /// (`mmh3.hash(data, seed, signed=False)`). The "hello"/seed 0 and single-byte-tail vectors
    /// below were computed with `mmh3` only.
    #[test]
    fn standard_vectors() {
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\xff\xff\xff\xff", 0, 0x7629_3b50),
            (b"\x21\x43\x65\x87", 0, 0xf55b_516b),
            (b"\x21\x43\x65\x87", 0x5082_edee, 0x2362_f9de),
            (b"\x21\x43\x65", 0, 0x7e4a_8634),
            (b"\x21\x43", 0, 0xa0f7_b07a),
            (b"\x21", 0, 0x7266_1cf4),
            (b"\x00\x00\x00\x00", 0, 0x2362_f9de),
            (b"\x00\x00\x00", 0, 0x85f0_b427),
            (b"\x00\x00", 0, 0x30f4_c306),
            (b"\x00", 0, 0x514e_28b7),
            (b"abc", 0, 0xb3dd_93fa),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                0,
                0xee92_5b90,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
            // mmh3 5.3.1 only:
            (b"hello", 0, 0x248b_fa47),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (b"a", 0x9747_b28c, 0x7fa0_9ea6),
            (b"ab", 0x9747_b28c, 0x7487_5592),
            (b"abcd", 0x9747_b28c, 0xf047_8627),
        ];
        for (data, seed, want) in cases {
            assert_eq!(
                murmur3_32(data, *seed),
                *want,
                "data {data:?} seed {seed:#x}"
            );
        }
    }

    /// rabbitmq-stream-java-client `src/test/java/com/rabbitmq/stream/impl/HashUtilsTest.java`
    /// (HEAD 33f3f5d4): `murmur3WithDefaultSeed` (seed 104729) and `murmur3WithSeed` (seed 42),
    /// unsigned values. Also matched by `mmh3` 5.3.1.
    #[test]
    fn java_client_hash_utils_vectors() {
        let default_seed = [
            ("hello", 1_321_743_225u32),
            ("brave", 3_825_276_426),
            ("new", 2_970_740_106),
            ("world", 2_453_398_188),
        ];
        for (s, want) in default_seed {
            assert_eq!(murmur3_32(s.as_bytes(), SUPER_STREAM_SEED), want, "{s}");
        }
        let seed_42 = [
            ("hello", 3_806_057_185u32),
            ("brave", 619_588_758),
            ("new", 1_483_300_585),
            ("world", 1_145_629_360),
        ];
        for (s, want) in seed_42 {
            assert_eq!(murmur3_32(s.as_bytes(), 42), want, "{s}");
        }
    }

    /// The routing table shared by the official clients' tests with partitions
    /// `["invoices-01", "invoices-02", "invoices-03"]`:
    /// Java `HashRoutingStrategyTest.routeShouldComputeAppropriatePartitions` (hello1..hello10),
    /// Go `pkg/stream/super_stream_test.go` "Partitioning using Murmur3" (541aa9d9, adds hello88),
    /// .NET `Tests/SuperStreamProducerTests.cs` `MessageIdToStreamTestCases` (e062af1a, adds hello88).
    #[test]
    fn official_clients_routing_table() {
        let partitions = ["invoices-01", "invoices-02", "invoices-03"];
        let expected = [
            ("hello1", "invoices-02"),
            ("hello2", "invoices-01"),
            ("hello3", "invoices-02"),
            ("hello4", "invoices-03"),
            ("hello5", "invoices-01"),
            ("hello6", "invoices-03"),
            ("hello7", "invoices-01"),
            ("hello8", "invoices-02"),
            ("hello9", "invoices-01"),
            ("hello10", "invoices-03"),
            ("hello88", "invoices-02"),
        ];
        for (key, stream) in expected {
            assert_eq!(
                partitions[route_partition(key, partitions.len())],
                stream,
                "{key}"
            );
        }
    }

    #[test]
    fn routing_hashes_utf8_bytes_and_is_unsigned() {
        // 1_373_978_405 per mmh3 5.3.1 over the UTF-8 bytes of "ä€😀" with seed 104729.
        assert_eq!(
            murmur3_32("ä€😀".as_bytes(), SUPER_STREAM_SEED),
            1_373_978_405
        );
        // "" hashes to 3_329_588_566 (> i32::MAX): a signed modulus would give a different index.
        assert_eq!(murmur3_32(b"", SUPER_STREAM_SEED), 3_329_588_566);
        assert_eq!(route_partition("", 7), (3_329_588_566u64 % 7) as usize);
        assert_eq!(route_partition("anything", 1), 0);
        assert_eq!(route_partition("anything", 0), 0);
    }
}
