//! Bad input: every error is a `DecodeError` naming the offset, found quickly, with nothing
//! allocated on the word of a length field, and no panic.
//!
//! A tracking global allocator (`common::alloc`) records, per thread, the largest single
//! allocation and the peak of live bytes, so "nothing huge is allocated" is checked, not
//! assumed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

mod common;
use common::alloc::measure;
use common::fun_around;
use rustelixir_etf::decode::{decode_with, TermBuilder, DEFAULT_MAX_DEPTH};
use rustelixir_etf::{decode, encode, DecodeError, DecodeErrorKind, Limits, Term};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Decodes bytes that must be refused: never a panic, and the offset inside the input.
fn err_with(bytes: &[u8], limits: &Limits) -> DecodeError {
    let r = catch_unwind(AssertUnwindSafe(|| decode_with(bytes, &mut TermBuilder, limits)))
        .unwrap_or_else(|_| panic!("decoder panicked on {bytes:?}"));
    let e = r.expect_err("should not decode");
    assert!(e.offset <= bytes.len(), "offset {} past the input ({} bytes): {}", e.offset, bytes.len(), e.message);
    assert!(!e.message.is_empty());
    // Over a limit, or malformed: the kind and the message agree.
    assert_eq!(e.kind == DecodeErrorKind::Limit, e.message.contains("limit"), "{:?}: {}", e.kind, e.message);
    e
}

fn err(bytes: &[u8]) -> DecodeError {
    err_with(bytes, &Limits::default())
}

fn err_at(bytes: &[u8]) -> (usize, String) {
    let e = err(bytes);
    (e.offset, e.message)
}

/// Asserts the error's offset and that its message contains `needle`.
#[track_caller]
fn assert_err(bytes: &[u8], offset: usize, needle: &str) {
    let e = err(bytes);
    assert_eq!(e.offset, offset, "offset for {bytes:?} ({})", e.message);
    assert!(e.message.contains(needle), "message for {bytes:?}: {:?} lacks {needle:?}", e.message);
}

fn with_limits(max_depth: usize, max_uncompressed_size: usize) -> Limits {
    Limits { max_depth, max_uncompressed_size, ..Limits::default() }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 9)
}

/// A compressed term (version byte included) claiming `claim` bytes for `body`.
fn compressed(claim: u32, body: &[u8]) -> Vec<u8> {
    let mut b = vec![131, 80];
    b.extend_from_slice(&claim.to_be_bytes());
    b.extend_from_slice(&zlib(body));
    b
}

const NODE: [u8; 5] = [119, 3, b'a', b'@', b'b'];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Every golden file (VM-written) plus hand-made legacy inputs: one valid input per tag.
fn valid_inputs() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() > 90, "golden files missing");
    let mut float = b"1.50000000000000000000e+00".to_vec();
    float.resize(31, 0);
    v.extend([
        ("FLOAT_EXT".into(), cat(&[&[131, 99], &float])),
        ("ATOM_EXT".into(), vec![131, 100, 0, 5, b'h', 0xe9, b'l', b'l', b'o']),
        ("SMALL_ATOM_EXT".into(), vec![131, 115, 1, 0xe9]),
        ("PID_EXT".into(), cat(&[&[131, 103], &NODE, &[0, 0, 0, 1, 0, 0, 0, 2, 3]])),
        ("PORT_EXT".into(), cat(&[&[131, 102], &NODE, &[0, 0, 0, 9, 3]])),
        ("REFERENCE_EXT".into(), cat(&[&[131, 101], &NODE, &[0, 0, 0, 9, 3]])),
        ("NEW_REFERENCE_EXT".into(), cat(&[&[131, 114, 0, 2], &NODE, &[3, 0, 0, 0, 1, 0, 0, 0, 2]])),
        ("fun in a tuple".into(), cat(&[&[131, 104, 2, 97, 1], &fun_around(&[104, 1, 97, 1])])),
    ]);
    for (name, bytes) in &v {
        decode(bytes).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    }
    v
}

// ---------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------

#[test]
fn every_prefix_of_every_valid_input_is_an_error() {
    let mut checked = 0;
    for (name, bytes) in valid_inputs() {
        // All prefixes of small inputs; of large ones the first and last 300 and a sample.
        let cuts: Vec<usize> = if bytes.len() <= 4096 {
            (0..bytes.len()).collect()
        } else {
            (0..300).chain(bytes.len() - 300..bytes.len()).chain((300..bytes.len() - 300).step_by(997)).collect()
        };
        for cut in cuts {
            let e = err(&bytes[..cut]);
            assert!(e.offset <= cut, "{name} cut at {cut}: offset {} ({})", e.offset, e.message);
            if cut == 0 {
                assert_eq!(e.message, "empty input");
            } else if bytes[1] != 80 {
                let m = &e.message;
                assert!(m.contains("truncated") || m.contains("remain"), "{name} cut at {cut}: {m}");
            }
            checked += 1;
        }
    }
    assert!(checked > 5000);
}

#[test]
fn truncation_offsets_name_the_field_that_is_cut() {
    assert_err(&[], 0, "empty input");
    assert_err(&[131], 1, "truncated term tag");
    assert_err(&[131, 98, 0, 0], 2, "truncated integer");
    assert_err(&[131, 109, 0, 0, 0, 5, 1, 2], 6, "truncated binary: needs 5 bytes, 2 remain");
    assert_err(&[131, 104, 2, 97, 1], 5, "truncated term tag");
    assert_err(&[131, 108, 0, 0, 0, 1, 97, 1], 8, "truncated term tag"); // the tail is missing
    assert_err(&[131, 119, 3, b'a'], 3, "truncated atom text");
    assert_err(&[131, 110, 2, 0, 1], 4, "truncated big integer digits");
    assert_err(&[131, 80, 0, 0], 2, "truncated compressed term size");
}

// ---------------------------------------------------------------------------------------
// Tags: unknown, misplaced, unsupported
// ---------------------------------------------------------------------------------------

const KNOWN_TAGS: [u8; 33] = [
    70, 77, 80, 82, 88, 89, 90, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    114, 115, 116, 117, 118, 119, 120, 121, 131,
];

#[test]
fn unknown_tags_are_refused_where_they_stand() {
    for tag in 0..=255u8 {
        if KNOWN_TAGS.contains(&tag) {
            continue;
        }
        assert_err(&[131, tag, 0, 0, 0, 0], 1, &format!("unknown tag {tag}"));
        // Inside a tuple, a list, a map key and value, and an improper tail.
        assert_err(&[131, 104, 2, 97, 1, tag, 0], 5, "unknown tag");
        assert_err(&[131, 108, 0, 0, 0, 1, tag, 106], 6, "unknown tag");
        assert_err(&[131, 116, 0, 0, 0, 1, tag, 97, 1], 6, "unknown tag");
        assert_err(&[131, 116, 0, 0, 0, 1, 97, 1, tag], 8, "unknown tag");
        assert_err(&[131, 108, 0, 0, 0, 1, 97, 1, tag], 8, "unknown tag");
    }
    // A version byte inside a term is no tag either.
    assert_err(&[131, 104, 1, 131, 97, 1], 3, "unknown tag 131");
}

#[test]
fn bad_version_byte() {
    for v in [0u8, 1, 97, 130, 132, 255] {
        assert_eq!(err_at(&[v, 97, 1]), (0, format!("bad version byte {v} (expected 131)")));
    }
}

#[test]
fn removed_and_node_local_tags_are_refused_with_a_clear_message() {
    let (at, msg) = err_at(&cat(&[&[131, 117, 0, 0, 0, 0], &NODE, &[97, 0, 97, 0, 97, 0]]));
    assert_eq!(at, 1);
    assert!(msg.contains("FUN_EXT") && msg.contains("not supported"), "{msg}");
    let (at, msg) = err_at(&[131, 121, 0, 0, 0, 0, 0, 0, 0, 0, 97, 1]);
    assert_eq!(at, 1);
    assert!(msg.contains("LOCAL_EXT"), "{msg}");
    // Nested, at their own offset.
    assert_err(&[131, 104, 2, 97, 1, 117, 0, 0, 0, 0], 5, "FUN_EXT");
    assert_err(&[131, 108, 0, 0, 0, 1, 121, 0, 106], 6, "LOCAL_EXT");
    assert_err(&[131, 82, 0], 1, "atom cache reference");
    assert_err(&cat(&[&[131, 88, 82, 0], &[0; 12]]), 2, "atom cache reference");
    assert_err(&[131, 104, 1, 80, 0, 0, 0, 2, 120, 156, 75, 100, 4, 0, 0, 200, 0, 99], 3, "compressed term nested");
}

#[test]
fn fields_with_the_wrong_tag() {
    // A pid, port, reference or export whose node/module/function is not an atom.
    assert_err(&[131, 88, 97, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 2, "expected an atom, found tag 97");
    assert_err(&[131, 89, 109, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 2, "expected an atom, found tag 109");
    assert_err(&[131, 120, 106, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 2, "expected an atom");
    assert_err(&[131, 90, 0, 1, 104, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, "expected an atom");
    assert_err(&[131, 113, 119, 1, b'm', 97, 1, 97, 1], 5, "expected an atom");
    // An export's arity must be a small integer in 0..=255.
    assert_err(&[131, 113, 119, 1, b'm', 119, 1, b'f', 119, 1, b'a'], 8, "expected an integer for export arity");
    assert_err(&[131, 113, 119, 1, b'm', 119, 1, b'f', 98, 255, 255, 255, 255], 8, "export arity -1 out of range");
    assert_err(&[131, 113, 119, 1, b'm', 119, 1, b'f', 110, 1, 0, 1], 8, "expected an integer");
    // A fun's pid must be a pid.
    let mut f = fun_around(&[97, 1]);
    let pid_at = f.iter().position(|&b| b == 88).unwrap();
    f[pid_at] = 89;
    assert_err(&cat(&[&[131], &f]), 1 + pid_at, "expected a pid, found tag 89");
}

// ---------------------------------------------------------------------------------------
// Absurd lengths: refused at once, nothing allocated on their word
// ---------------------------------------------------------------------------------------

#[test]
fn absurd_lengths_fail_fast_without_allocating() {
    let ff = [0xff; 4];
    let few: &[u8] = &[97, 1, 97, 2, 97, 3, 106];
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("LIST_EXT", cat(&[&[131, 108], &ff, few]), 1),
        ("LARGE_TUPLE_EXT", cat(&[&[131, 105], &ff, few]), 1),
        ("MAP_EXT", cat(&[&[131, 116], &ff, few]), 1),
        ("BINARY_EXT", cat(&[&[131, 109], &ff, few]), 6),
        ("BIT_BINARY_EXT", cat(&[&[131, 77], &ff, &[3], few]), 7),
        ("LARGE_BIG_EXT", cat(&[&[131, 111], &ff, &[0], few]), 7),
        ("STRING_EXT", cat(&[&[131, 107, 0xff, 0xff], few]), 4),
        ("ATOM_UTF8_EXT", cat(&[&[131, 118, 0xff, 0xff], few]), 4),
        ("ATOM_EXT", cat(&[&[131, 100, 0xff, 0xff], few]), 4),
        ("NEW_FUN_EXT size", cat(&[&[131, 112], &ff, few]), 2),
        ("nested LIST_EXT", cat(&[&[131, 104, 1, 108], &ff, few]), 3),
        ("list tail LIST_EXT", cat(&[&[131, 108, 0, 0, 0, 1, 97, 1, 108], &ff, few]), 8),
        ("map value BINARY_EXT", cat(&[&[131, 116, 0, 0, 0, 1, 97, 1, 109], &ff, few]), 13),
    ];
    for (name, bytes, offset) in cases {
        let started = Instant::now();
        let (e, largest, peak) = measure(|| err(&bytes));
        assert!(started.elapsed() < Duration::from_millis(100), "{name}: slow");
        assert_eq!(e.offset, offset, "{name}: {}", e.message);
        assert!(largest < 4 * KIB && peak < 16 * KIB, "{name}: allocated {largest} bytes at once, {peak} at peak");
    }
    // The message says what was claimed.
    let (_, msg) = err_at(&cat(&[&[131, 108], &ff, few]));
    assert!(msg.contains("claims 4294967295") && msg.contains("7 bytes remain"), "{msg}");
    // A fun claiming 2^32 - 1 free variables with a plausible size.
    let mut f = fun_around(&[97, 1]);
    let n_at = 1 + 4 + 1 + 16 + 4;
    f[n_at..n_at + 4].copy_from_slice(&ff);
    let (e, largest, _) = measure(|| err(&cat(&[&[131], &f])));
    assert!(e.message.contains("fun environment claims 4294967295"), "{}", e.message);
    assert!(largest < 4 * KIB);
    // A reference claiming 65535 id words.
    assert_err(&cat(&[&[131, 90, 0xff, 0xff], &NODE, &[0; 8]]), 2, "reference with 65535 id words");
}

#[test]
fn large_plausible_claims_allocate_in_proportion_to_the_input_only() {
    // A list claiming as many elements as there are bytes left (the most a length check can
    // let through), all of them bad: what is allocated is bounded by the input's size.
    let n = 100_000usize;
    let mut bytes = vec![131, 108];
    bytes.extend_from_slice(&(n as u32).to_be_bytes());
    bytes.extend(vec![97; n]); // tags with no value after the last
    let (e, largest, peak) = measure(|| err(&bytes));
    assert!(e.message.contains("truncated"), "{}", e.message);
    let per_value = std::mem::size_of::<Term>();
    assert!(largest <= n * per_value + 4 * KIB, "{largest} bytes for {n} claimed elements");
    assert!(peak <= 2 * n * per_value + 64 * KIB, "{peak} bytes at peak");
}

// ---------------------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------------------

/// `depth` containers of the given kind around `97, 1`; the kinds: tuple, list element,
/// map value, map key, improper tail (a tuple in the tail), fun environment.
fn nested(kind: &str, depth: usize) -> Vec<u8> {
    let (open, close): (&[u8], &[u8]) = match kind {
        "tuple" => (&[104, 1], &[]),
        "list" => (&[108, 0, 0, 0, 1], &[106]),
        "map value" => (&[116, 0, 0, 0, 1, 97, 0], &[]),
        "map key" => (&[116, 0, 0, 0, 1], &[97, 0]),
        "improper tail" => (&[108, 0, 0, 0, 1, 97, 0, 104, 1], &[]),
        _ => unreachable!(),
    };
    let mut b = vec![131];
    for _ in 0..depth {
        b.extend_from_slice(open);
    }
    b.extend_from_slice(&[97, 1]);
    for _ in 0..depth {
        b.extend_from_slice(close);
    }
    b
}

fn depth_of(kind: &str) -> usize {
    // Containers each level adds: an improper list with a tuple tail adds two.
    if kind == "improper tail" {
        2
    } else {
        1
    }
}

#[test]
fn nesting_up_to_max_depth_decodes_and_one_more_is_refused() {
    for kind in ["tuple", "list", "map value", "map key", "improper tail"] {
        let per = depth_of(kind);
        for max_depth in [1usize, 2, 7, 100] {
            let limits = with_limits(max_depth, 1 << 30);
            let levels = max_depth / per;
            let ok = nested(kind, levels);
            decode_with(&ok, &mut TermBuilder, &limits).unwrap_or_else(|e| panic!("{kind} x{levels} at {max_depth}: {e}"));
            let too_deep = nested(kind, levels + 1);
            let e = err_with(&too_deep, &limits);
            assert!(e.message.contains("depth limit"), "{kind}: {}", e.message);
            assert_eq!(e.kind, DecodeErrorKind::Limit);
        }
    }
    // The offset is the container that goes one level too deep.
    let limits = with_limits(100, 1 << 30);
    assert_eq!(err_with(&nested("tuple", 101), &limits).offset, 1 + 2 * 100);
    assert_eq!(err_with(&nested("list", 101), &limits).offset, 1 + 5 * 100);
}

#[test]
fn the_default_depth_limit_is_10_000() {
    assert_eq!(DEFAULT_MAX_DEPTH, 10_000);
    assert_eq!(Limits::default().max_depth, 10_000);
    for kind in ["tuple", "list", "map value"] {
        let t = decode(&nested(kind, 10_000)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        // (Compared with `==`: the Debug of a failing assert_eq! would recurse 10,000 deep.)
        assert!(decode(&encode(&t).unwrap()).unwrap() == t, "{kind}");
        let e = err(&nested(kind, 10_001));
        assert!(e.message.contains("depth limit (10000)"), "{}", e.message);
    }
    assert_eq!(err(&nested("tuple", 10_001)).offset, 1 + 2 * 10_000);
}

#[test]
fn max_depth_zero_allows_only_scalars() {
    let limits = with_limits(0, 1 << 30);
    for ok in [&[131, 97, 1][..], &[131, 106], &[131, 107, 0, 1, 5], &[131, 109, 0, 0, 0, 0]] {
        decode_with(ok, &mut TermBuilder, &limits).unwrap();
    }
    for bad in [&[131, 104, 0][..], &[131, 104, 1, 97, 1], &[131, 108, 0, 0, 0, 1, 97, 1, 106], &[131, 116, 0, 0, 0, 0]] {
        assert!(err_with(bad, &limits).message.contains("depth"));
    }
}

#[test]
fn a_million_levels_are_refused_quickly_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(128 * KIB)
        .spawn(|| {
            for kind in ["tuple", "list", "map value"] {
                let bytes = nested(kind, 1_000_000);
                let started = Instant::now();
                let e = err(&bytes);
                assert!(e.message.contains("depth"), "{}", e.message);
                assert!(started.elapsed() < Duration::from_secs(2));
            }
            // Long chains of list tails are one list, not nesting.
            let mut chain = vec![131];
            for _ in 0..200_000 {
                chain.extend_from_slice(&[108, 0, 0, 0, 1, 97, 1]);
            }
            chain.push(106);
            let t = decode(&chain).unwrap();
            let Term::List(items) = &t else { panic!() };
            assert_eq!(items.len(), 200_000);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn funs_count_against_the_depth_limit_exactly() {
    let wrap = |levels: usize| {
        let mut t = vec![97, 1];
        for _ in 0..levels {
            t = fun_around(&t);
        }
        cat(&[&[131], &t])
    };
    for max_depth in [1usize, 2, 5] {
        let limits = with_limits(max_depth, 1 << 30);
        decode_with(&wrap(max_depth), &mut TermBuilder, &limits).unwrap();
        assert!(err_with(&wrap(max_depth + 1), &limits).message.contains("depth"));
    }
    // A fun inside tuples: both count.
    let limits = with_limits(3, 1 << 30);
    let inner = fun_around(&[104, 1, 97, 1]);
    decode_with(&cat(&[&[131, 104, 1], &inner]), &mut TermBuilder, &limits).unwrap();
    assert!(err_with(&cat(&[&[131, 104, 1, 104, 1], &inner]), &limits).message.contains("depth"));
}

// ---------------------------------------------------------------------------------------
// Compressed terms
// ---------------------------------------------------------------------------------------

#[test]
fn compressed_claim_of_4_gib_with_a_tiny_payload() {
    let bytes = compressed(u32::MAX, &[97, 1]);
    // Over the default limit (1 GiB): refused on the size field, before inflating.
    let (e, largest, _) = measure(|| err(&bytes));
    assert_eq!(e.offset, 2);
    assert!(e.message.contains("over the limit"), "{}", e.message);
    assert_eq!(e.kind, DecodeErrorKind::Limit);
    assert!(largest < 4 * KIB);
    // With no limit to speak of, memory follows what the stream produces, not the claim.
    let started = Instant::now();
    let unlimited = Limits { max_uncompressed_size: usize::MAX, max_memory: usize::MAX, ..Limits::default() };
    let (e, largest, peak) = measure(|| err_with(&bytes, &unlimited));
    assert!(e.message.contains("inflates to 2 bytes, not the 4294967295"), "{}", e.message);
    assert!(largest < 256 * KIB && peak < MIB, "{largest} / {peak}");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[test]
fn zlib_bombs_are_bounded_by_max_uncompressed_size() {
    let body = cat(&[&[109], &(64 * MIB as u32).to_be_bytes(), &vec![0u8; 64 * MIB]]);
    let z = zlib(&body);
    assert!(z.len() < 100 * KIB);
    let limits = with_limits(DEFAULT_MAX_DEPTH, MIB);
    // Claiming its real size: refused on the size field.
    let honest = cat(&[&[131, 80], &(body.len() as u32).to_be_bytes(), &z]);
    let (e, _, peak) = measure(|| err_with(&honest, &limits));
    assert!(e.message.contains("over the limit"), "{}", e.message);
    assert!(peak < 256 * KIB);
    // Claiming the limit exactly, and inflating to 64 MiB: stopped one byte past the claim.
    let lying = cat(&[&[131, 80], &(MIB as u32).to_be_bytes(), &z]);
    let started = Instant::now();
    let (e, largest, peak) = measure(|| err_with(&lying, &limits));
    assert!(e.message.contains("inflates to more than the 1048576 bytes it claims"), "{}", e.message);
    assert_eq!(e.offset, 2);
    assert!(largest < 4 * MIB && peak < 6 * MIB, "{largest} / {peak}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn compressed_size_must_match_what_inflates() {
    let body = encode(&Term::Binary(vec![7; 1000])).unwrap();
    let body = &body[1..];
    decode(&compressed(body.len() as u32, body)).unwrap();
    let e = err(&compressed(body.len() as u32 + 1, body));
    assert!(e.message.contains("not the 1006 it claims"), "{}", e.message);
    let e = err(&compressed(body.len() as u32 - 1, body));
    assert!(e.message.contains("more than the 1004 bytes"), "{}", e.message);
    assert_eq!(e.offset, 2);
}

#[test]
fn compressed_garbage_and_truncation() {
    // Not a zlib stream.
    let e = err(&[131, 80, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6]);
    assert!(e.message.contains("zlib"), "{}", e.message);
    // A zlib stream cut short, at every length.
    let good = compressed(1006, &encode(&Term::Binary(vec![7; 1000])).unwrap()[1..]);
    for cut in 6..good.len() {
        err(&good[..cut]);
    }
    // Trailing bytes after the compressed stream, at the offset where they start.
    let mut trailing = compressed(2, &[97, 1]);
    let end = trailing.len();
    trailing.push(0);
    assert_err(&trailing, end, "1 trailing bytes");
    // Trailing bytes inside the decompressed data.
    let e = err(&compressed(3, &[97, 1, 0]));
    assert!(e.message.contains("trailing bytes inside the decompressed term"), "{}", e.message);
    // A compressed term inside a compressed term.
    let e = err(&compressed(7, &[80, 0, 0, 0, 2, 120, 156]));
    assert!(e.message.contains("compressed term nested"), "{}", e.message);
    // Nothing inside.
    assert!(err(&compressed(0, &[])).message.contains("truncated"));
}

// ---------------------------------------------------------------------------------------
// Trailing bytes
// ---------------------------------------------------------------------------------------

#[test]
fn trailing_bytes_are_an_error_at_their_offset() {
    assert_eq!(err_at(&[131, 97, 1, 0]), (3, "1 trailing bytes after the term".into()));
    assert_err(&[131, 106, 106, 106], 2, "2 trailing bytes");
    assert_err(&[131, 104, 0, 131, 104, 0], 3, "3 trailing bytes");
    for (name, bytes) in valid_inputs() {
        let len = bytes.len();
        let e = err(&cat(&[&bytes, &[97]]));
        assert_eq!(e.offset, len, "{name}: {}", e.message);
        assert!(e.message.contains("trailing"), "{name}: {}", e.message);
    }
}

// ---------------------------------------------------------------------------------------
// Field values
// ---------------------------------------------------------------------------------------

#[test]
fn bad_utf8_atoms() {
    for text in [&[0xff, 0xfe][..], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[0xe2, 0x9c], &[b'a', 0x80]] {
        assert_err(&cat(&[&[131, 119, text.len() as u8], text]), 1, "not valid UTF-8");
        assert_err(&cat(&[&[131, 118, 0, text.len() as u8], text]), 1, "not valid UTF-8");
        // As a pid's node: the offset is the atom's.
        assert_err(&cat(&[&[131, 88, 119, text.len() as u8], text, &[0; 12]]), 2, "not valid UTF-8");
    }
}

#[test]
fn atoms_over_255_characters() {
    let a256 = "a".repeat(256);
    assert_err(&cat(&[&[131, 118, 1, 0], a256.as_bytes()]), 1, "longer than 255 characters");
    let e256 = "é".repeat(256);
    assert_err(&cat(&[&[131, 118, 2, 0], e256.as_bytes()]), 1, "longer than 255 characters");
    assert_err(&cat(&[&[131, 100, 1, 0], &[0xe9; 256]]), 1, "longer than 255 characters");
}

#[test]
fn floats_that_are_not_finite() {
    for bits in [f64::NAN.to_bits(), f64::INFINITY.to_bits(), f64::NEG_INFINITY.to_bits(), 0x7ff0_0000_0000_0001] {
        assert_err(&cat(&[&[131, 70], &bits.to_be_bytes()]), 1, "not finite");
        assert_err(&cat(&[&[131, 104, 1, 70], &bits.to_be_bytes()]), 3, "not finite");
    }
    for text in ["nan", "inf", "-inf", "infinity", "1.0e400", "-1.0e999", "", "abc", "1.5e", "0x10"] {
        let mut t = text.as_bytes().to_vec();
        t.resize(31, 0);
        assert_err(&cat(&[&[131, 99], &t]), 1, "FLOAT_EXT");
    }
    // Text that is not UTF-8.
    let mut t = vec![b'1', 0xff];
    t.resize(31, 0);
    assert_err(&cat(&[&[131, 99], &t]), 1, "FLOAT_EXT");
}

#[test]
fn any_nonzero_big_integer_sign_byte_is_negative_as_in_the_vm() {
    // binary_to_term reads every nonzero sign byte as negative; so does the decoder, and the
    // canonical re-encoding is the VM's (sign 1, smallest form).
    for sign in [2u8, 3, 128, 255] {
        assert_eq!(decode(&[131, 110, 1, sign, 5]).unwrap(), Term::Int(-5));
        assert_eq!(decode(&[131, 111, 0, 0, 0, 1, sign, 5]).unwrap(), Term::Int(-5));
        assert_eq!(encode(&decode(&[131, 110, 1, sign, 5]).unwrap()).unwrap(), [131, 98, 255, 255, 255, 251]);
    }
}

#[test]
fn references_need_one_to_five_words() {
    for words in [0u16, 6, 7, 1000] {
        let mut b = cat(&[&[131, 90], &words.to_be_bytes(), &NODE, &[0, 0, 0, 1]]);
        b.extend(vec![0; 4 * words as usize]);
        assert_err(&b, 2, &format!("reference with {words} id words (1 to 5 allowed)"));
    }
    // NEW_REFERENCE_EXT held at most 3.
    for words in [0u16, 4, 5] {
        let mut b = cat(&[&[131, 114], &words.to_be_bytes(), &NODE, &[0]]);
        b.extend(vec![0; 4 * words as usize]);
        assert_err(&b, 2, &format!("reference with {words} id words (1 to 3 allowed)"));
    }
}

#[test]
fn bitstrings_with_impossible_bit_counts() {
    assert_err(&[131, 77, 0, 0, 0, 1, 0, 5], 6, "cannot have 0 bits");
    assert_err(&[131, 77, 0, 0, 0, 1, 9, 5], 6, "cannot have 9 bits");
    assert_err(&[131, 77, 0, 0, 0, 0, 3], 6, "bitstring of 0 bytes cannot have 3 bits");
    assert_err(&[131, 77, 0, 0, 0, 0, 8], 6, "bitstring of 0 bytes");
}

#[test]
fn fun_size_must_agree_with_its_contents() {
    let f = fun_around(&[97, 1]);
    let size = u32::from_be_bytes(f[1..5].try_into().unwrap());
    // One too many: the size runs past the input.
    let mut long = f.clone();
    long[1..5].copy_from_slice(&(size + 1).to_be_bytes());
    assert_err(&cat(&[&[131], &long]), 2, "does not fit");
    // One too many with a byte to spare: the contents end before the size says.
    assert_err(&cat(&[&[131], &long, &[106]]), 2, "disagrees with its contents");
    // One too few: the contents run past the size (the environment is read only up to the
    // end the size gives).
    let mut short = f.clone();
    short[1..5].copy_from_slice(&(size - 1).to_be_bytes());
    let short = cat(&[&[131], &short]);
    assert_err(&short, short.len() - 1, "truncated");
    // Below the fixed fields.
    let mut tiny = f.clone();
    tiny[1..5].copy_from_slice(&10u32.to_be_bytes());
    assert_err(&cat(&[&[131], &tiny]), 2, "fun size 10");
}

#[test]
fn representative_error_offsets() {
    let nan = f64::NAN.to_bits().to_be_bytes();
    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (vec![130, 97, 1], 0, "bad version byte"),
        (vec![131, 104, 3, 97, 1, 97, 2, 1], 7, "unknown tag 1"),
        (vec![131, 104, 2, 97, 1, 119, 2, 0xff, 0xfe], 5, "UTF-8"),
        (cat(&[&[131, 116, 0, 0, 0, 1, 97, 1, 70], &nan]), 8, "not finite"),
        (cat(&[&[131, 104, 1, 90, 0, 6], &NODE, &[0; 28]]), 4, "id words"),
        (vec![131, 104, 2, 97, 1, 108, 0xff, 0xff, 0xff, 0xff, 106], 5, "list claims"),
        (vec![131, 104, 2, 97, 1, 105, 0xff, 0xff, 0xff, 0xff, 106], 5, "tuple claims"),
        (vec![131, 104, 2, 97, 1, 116, 0x7f, 0xff, 0xff, 0xff, 106], 5, "map claims"),
        (vec![131, 104, 1, 77, 0, 0, 0, 1, 0, 5], 8, "bits"),
        (vec![131, 80, 0xff, 0xff, 0xff, 0xff, 120, 156], 2, "over the limit"),
        (vec![131, 104, 1, 97, 1, 97], 5, "trailing"),
    ];
    for (bytes, offset, needle) in cases {
        assert_err(&bytes, offset, needle);
    }
}

// ---------------------------------------------------------------------------------------
// Known bugs (see the report): each test states the behaviour the codec should have.
// ---------------------------------------------------------------------------------------

/// A NEW_FUN_EXT whose Size (29) covers only its fixed fields, with one free variable: the
/// module, old index/uniq and pid are read past the end the Size gives, and the environment
/// is then decoded from a slice that ends before the read position.
fn fun_with_short_size() -> Vec<u8> {
    let mut f = fun_around(&[97, 1]);
    f[1..5].copy_from_slice(&29u32.to_be_bytes());
    cat(&[&[131], &f])
}

#[test]
fn fun_whose_size_ends_inside_its_fields_is_an_error_not_a_panic() {
    // Size 29 covers only the fixed fields: the module atom is cut off where Size ends.
    let bytes = fun_with_short_size();
    let e = err(&bytes);
    assert_eq!(e.offset, 2 + 29, "{}", e.message);
    assert!(e.message.contains("truncated"), "{}", e.message);
}

#[test]
fn ascii_latin1_atom_over_255_characters_is_refused() {
    let bytes = cat(&[&[131, 100, 1, 0], &[b'a'; 256]]);
    assert_err(&bytes, 1, "longer than 255 characters");
}

#[test]
fn offsets_of_errors_inside_compressed_terms_lie_within_the_input() {
    // 400 bytes of list decompressed from a few dozen, with a bad tag at its end.
    let mut body = vec![108, 0, 0, 0, 200];
    for _ in 0..200 {
        body.extend_from_slice(&[97, 1]);
    }
    body.push(1);
    let bytes = compressed(body.len() as u32, &body);
    assert!(bytes.len() < 100);
    let e = decode(&bytes).unwrap_err();
    assert!(e.offset <= bytes.len(), "offset {} in a {}-byte input: {}", e.offset, bytes.len(), e.message);
}

#[test]
fn map_with_a_repeated_key_is_refused() {
    let bytes = [131, 116, 0, 0, 0, 2, 97, 1, 97, 1, 97, 1, 97, 2];
    let e = err(&bytes);
    assert!(e.message.contains("key"), "{}", e.message);
}



#[test]
fn funs_nested_in_funs_count_against_the_depth_limit_and_never_overflow_the_stack() {
    let mut term = vec![97, 1];
    for _ in 0..3 {
        term = fun_around(&term);
    }
    let bytes = [&[131][..], &term].concat();
    let decoded = decode(&bytes).unwrap();
    assert_eq!(encode(&decoded).unwrap(), bytes);
    let limits = Limits { max_depth: 2, ..Limits::default() };
    assert!(decode_with(&bytes, &mut TermBuilder, &limits).unwrap_err().message.contains("depth"));

    // 20,000 funs deep, decoded on a thread with a 256 KiB stack: a clean depth error.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let mut term = vec![97, 1];
            for _ in 0..20_000 {
                term = fun_around(&term);
            }
            let bytes = [&[131][..], &term].concat();
            assert!(decode(&bytes).unwrap_err().message.contains("depth"));
            let limits = Limits { max_depth: 30_000, ..Limits::default() };
            let t = decode_with(&bytes, &mut TermBuilder, &limits).unwrap();
            assert_eq!(encode(&t).unwrap(), bytes);
        })
        .unwrap()
        .join()
        .unwrap();
}
