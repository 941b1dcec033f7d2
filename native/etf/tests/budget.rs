//! The memory budget, `Limits::max_memory`: term bombs (compressed or not) are refused with
//! a Limit-kind error before their memory is taken, a term exactly at its budget decodes and
//! one byte less refuses it, and what the decoder charges is never below what `TermBuilder`
//! really allocates.
//!
//! A counting global allocator (`common::alloc`) records, per thread, the peak of live bytes
//! as glibc's malloc takes them (each block with its header, rounded up), so "within the
//! budget" is measured, not assumed.


mod common;
use common::alloc::measure;
use common::fun_around;
use common::terms::term;
use proptest::prelude::*;
use rustelixir_etf::decode::{cost, decode_at_within, decode_with, TermBuilder, DEFAULT_MAX_MEMORY};
use rustelixir_etf::{decode, encode, DecodeError, DecodeErrorKind, Limits, Term};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// What refusing may take besides the budget: the error's message.
const SLACK: usize = 4 * KIB;
/// ... and, for a compressed term, the inflater's state and its 64 KiB window.
const INFLATE_SLACK: usize = 160 * KIB;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn limits(max_memory: usize) -> Limits {
    Limits { max_memory, ..Limits::default() }
}

fn unlimited() -> Limits {
    Limits { max_memory: usize::MAX, max_uncompressed_size: usize::MAX, ..Limits::default() }
}

/// What decoding `bytes` (one whole term) charges.
fn charged(bytes: &[u8]) -> usize {
    let mut left = usize::MAX;
    let (_, end) = decode_at_within(bytes, 0, &mut TermBuilder, &unlimited(), &mut left)
        .unwrap_or_else(|e| panic!("does not decode: {e}"));
    assert_eq!(end, bytes.len());
    usize::MAX - left
}

fn decode_under(bytes: &[u8], max_memory: usize) -> Result<Term, DecodeError> {
    decode_with(bytes, &mut TermBuilder, &limits(max_memory))
}

/// The error (a term decoded instead is not printed: bombs are long).
#[track_caller]
fn refused<T>(r: Result<T, DecodeError>) -> DecodeError {
    match r {
        Ok(_) => panic!("decoded, but should have been refused"),
        Err(e) => e,
    }
}

/// Refused under `max_memory` as over a limit, with at most `max_memory + slack` bytes
/// allocated on the way.
#[track_caller]
fn refused_within(bytes: &[u8], max_memory: usize, slack: usize) -> DecodeError {
    let (r, _, peak) = measure(|| decode_under(bytes, max_memory));
    let e = refused(r);
    assert_eq!(e.kind, DecodeErrorKind::Limit, "{}", e.message);
    assert!(e.message.contains("memory limit"), "{}", e.message);
    assert!(peak <= max_memory + slack, "{peak} bytes allocated under a budget of {max_memory}: {}", e.message);
    e
}

/// Decodes under exactly its charge, allocating no more than that; refused one byte below.
#[track_caller]
fn exact_at_its_charge(bytes: &[u8], slack: usize) -> usize {
    let need = charged(bytes);
    let (r, _, peak) = measure(|| decode_under(bytes, need));
    r.unwrap_or_else(|e| panic!("refused under its own charge ({need}): {e}"));
    assert!(peak <= need + slack, "{peak} bytes allocated for a charge of {need}");
    // (Refusing also takes the error's message, which the smallest charges no longer cover.)
    refused_within(bytes, need - 1, slack + SLACK);
    need
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be32(n: usize) -> [u8; 4] {
    (n as u32).to_be_bytes()
}

/// `[e, e, ...]`, `n` times, in one LIST_EXT.
fn list_of(n: usize, element: &[u8]) -> Vec<u8> {
    cat(&[&[131, 108], &be32(n), &element.repeat(n), &[106]])
}

/// `{e, e, ...}`, `n` times, in one LARGE_TUPLE_EXT.
fn tuple_of(n: usize, element: &[u8]) -> Vec<u8> {
    cat(&[&[131, 105], &be32(n), &element.repeat(n)])
}

/// `%{0 => v, 1 => v, ...}` with `n` integer keys.
fn map_of(n: usize, value: &[u8]) -> Vec<u8> {
    let mut b = cat(&[&[131, 116], &be32(n)]);
    for i in 0..n {
        b.push(98);
        b.extend_from_slice(&be32(i));
        b.extend_from_slice(value);
    }
    b
}

fn zlib(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 9)
}

/// A compressed term (version byte included) claiming `claim` bytes for `body` (no version byte).
fn compressed(claim: usize, body: &[u8]) -> Vec<u8> {
    cat(&[&[131, 80], &be32(claim), &zlib(body)])
}

/// A NEW_FUN_EXT (version byte included) whose environment is `vars` and claims `n` of them.
fn fun_with_env(vars: &[u8], n: usize) -> Vec<u8> {
    let mut f = fun_around(vars);
    let n_at = 1 + 4 + 1 + 16 + 4;
    f[n_at..n_at + 4].copy_from_slice(&be32(n));
    cat(&[&[131], &f])
}

// ---------------------------------------------------------------------------------------
// Uncompressed bombs
// ---------------------------------------------------------------------------------------

/// Terms that cost far more in memory than on the wire, each small enough to decode here.
fn bombs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("[[], [], ...]", list_of(100_000, &[106])),
        ("[%{}, %{}, ...]", list_of(100_000, &[116, 0, 0, 0, 0])),
        ("[{}, {}, ...]", list_of(100_000, &[104, 0])),
        ("[7, 7, ...]", list_of(100_000, &[97, 7])),
        ("[\"ab\", ...] (STRING_EXT)", list_of(50_000, &[107, 0, 2, b'a', b'b'])),
        ("[[] | [[] | ...]] (a chain of list tails)", {
            let mut b = vec![131];
            for _ in 0..100_000 {
                b.extend_from_slice(&[108, 0, 0, 0, 1, 106]);
            }
            b.push(106);
            b
        }),
        ("[{<<>>, [7 | 8]}, ...]", list_of(20_000, &[104, 2, 109, 0, 0, 0, 0, 108, 0, 0, 0, 1, 97, 7, 97, 8])),
        ("{[], [], ...} (LARGE_TUPLE_EXT)", tuple_of(100_000, &[106])),
        ("%{0 => [], 1 => [], ...}", map_of(50_000, &[106])),
        ("%{0 => %{}, ...}", map_of(50_000, &[116, 0, 0, 0, 0])),
        ("fun with 100,000 [] in its environment", fun_with_env(&[106; 100_000], 100_000)),
    ]
}

#[test]
fn bombs_are_refused_under_a_small_budget_and_decode_under_a_large_one() {
    for (name, bytes) in bombs() {
        let need = charged(&bytes);
        // A Term and a place on the decoder's stack, or more, for every six wire bytes or
        // fewer: these are the amplifiers.
        assert!(need > 10 * bytes.len(), "{name}: {need} charged for {} bytes", bytes.len());
        // Under its charge it decodes, allocating no more than that; under the default too.
        exact_at_its_charge(&bytes, 0);
        assert!(decode(&bytes).is_ok(), "{name}");
        // Refused, with the memory not taken, under half of it and under 64 KiB.
        for budget in [need / 2, 64 * KIB] {
            refused_within(&bytes, budget, SLACK);
        }
    }
}

#[test]
fn a_container_claiming_every_remaining_byte_is_refused_before_reserving() {
    // Each claims as many children as there are bytes left (the most the length check
    // lets through), which would reserve a Term (32 bytes) a wire byte: refused at the
    // container's tag, having allocated next to nothing.
    let n = 1_000_000;
    let cases = [
        ("LIST_EXT", cat(&[&[131, 108], &be32(n), &vec![106; n]])),
        ("LARGE_TUPLE_EXT", cat(&[&[131, 105], &be32(n), &vec![106; n]])),
        ("MAP_EXT", cat(&[&[131, 116], &be32(n / 2), &vec![106; n]])),
        ("a list's tail LIST_EXT", cat(&[&[131, 108, 0, 0, 0, 1, 106, 108], &be32(n), &vec![106; n]])),
        ("fun environment", fun_with_env(&vec![106; n], n)),
    ];
    for (name, bytes) in cases {
        let e = refused_within(&bytes, MIB, SLACK);
        assert!(e.offset <= 8, "{name}: offset {}", e.offset);
        let (_, _, peak) = measure(|| decode_under(&bytes, MIB));
        assert!(peak < 8 * KIB, "{name}: {peak} bytes allocated");
    }
}

#[test]
fn the_error_names_the_value_that_passed_the_budget() {
    // Ten binaries of 1000 bytes: a budget one byte short of the whole is passed by the
    // last; one binary shorter, by the ninth.
    let bin = cat(&[&[109], &be32(1000), &[7; 1000]]);
    let bytes = list_of(10, &bin);
    let need = charged(&bytes);
    let offset_of = |i: usize| 6 + i * bin.len();
    assert_eq!(refused_within(&bytes, need - 1, SLACK).offset, offset_of(9));
    assert_eq!(refused_within(&bytes, need - (cost::BINARY + 1000) - 1, SLACK).offset, offset_of(8));
}

#[test]
fn a_term_exactly_at_its_budget_decodes() {
    // Scalars: the table's cost, and nothing else.
    let bin = cat(&[&[131, 109], &be32(1000), &[7; 1000]]);
    assert_eq!(exact_at_its_charge(&bin, 0), cost::SLOT + cost::BINARY + 1000);
    assert_eq!(exact_at_its_charge(&[131, 97, 1], 0), cost::SLOT);
    let atom = [131, 119, 3, b'a', b'b', b'c'];
    assert_eq!(exact_at_its_charge(&atom, 0), cost::SLOT + cost::ATOM + 3);
    // A container: its slots when it opens, and the decoder's first stacks (16 values, 8
    // open containers).
    let first_stacks = 16 * cost::STACK_SLOT + cost::HEAP + 8 * cost::OPEN_SLOT + cost::HEAP;
    let tuple = [131, 104, 3, 97, 1, 97, 2, 97, 3];
    assert_eq!(exact_at_its_charge(&tuple, 0), cost::SLOT + cost::TUPLE + 3 * cost::SLOT + first_stacks);
    let map = [131, 116, 0, 0, 0, 1, 97, 1, 106];
    assert_eq!(exact_at_its_charge(&map, 0), cost::SLOT + cost::MAP + cost::MAP_PAIR + cost::NIL + first_stacks);
    // Every bomb and every golden file, too.
    for (_, bytes) in bombs() {
        exact_at_its_charge(&bytes, 0);
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut golden = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "bin") {
            let bytes = std::fs::read(&path).unwrap();
            // (A compressed golden file also holds the inflater for a moment.)
            exact_at_its_charge(&bytes, if bytes[1] == 80 { INFLATE_SLACK } else { 0 });
            golden += 1;
        }
    }
    assert!(golden > 90);
}

#[test]
fn the_default_budget_is_1_gib() {
    assert_eq!(DEFAULT_MAX_MEMORY, 1 << 30);
    assert_eq!(Limits::default().max_memory, 1 << 30);
    // 16 Mi []s take over a gigabyte decoded (in Python each is a new list of 64 bytes and
    // its place in the list; in Rust a Term in the list and another on the decoder's stack):
    // refused under the default when the list opens, before any of it is taken.
    let bytes = list_of(16 * MIB, &[106]);
    let (r, _, peak) = measure(|| decode(&bytes));
    let e = refused(r);
    assert_eq!((e.kind, e.offset), (DecodeErrorKind::Limit, 1));
    assert!(peak < SLACK, "{peak}");
}

/// The node's default `--max-message-size`: every message from a peer decodes under it.
const NODE_DEFAULT: usize = 128 * MIB;

/// Large terms of ordinary shapes: what a user sends.
fn ordinary() -> Vec<(&'static str, Vec<u8>)> {
    let float = cat(&[&[70], &1.5f64.to_bits().to_be_bytes()]);
    let mut pairs = cat(&[&[131, 108], &be32(500_000)]);
    for i in 0..500_000 {
        pairs.extend_from_slice(&[104, 2, 119, 3, b'k', b'e', b'y', 98]);
        pairs.extend_from_slice(&be32(i));
    }
    pairs.push(106);
    vec![
        ("2,000,000 small integers", list_of(2_000_000, &[97, 7])),
        ("1,000,000 floats", list_of(1_000_000, &float)),
        ("500,000 {key, integer}", pairs),
        ("a map of 100,000 integer keys", map_of(100_000, &[97, 1])),
    ]
}

#[test]
fn ordinary_large_terms_decode_under_the_node_default_and_bombs_as_large_do_not() {
    for (name, bytes) in ordinary() {
        let (r, _, peak) = measure(|| decode_under(&bytes, NODE_DEFAULT));
        r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(peak <= NODE_DEFAULT, "{name}: {peak} bytes");
    }
    // As many wire bytes as the largest of them (9 MB, past the 8 MiB of test_hostile's
    // bombs) of [] or %{}: each a new list or dict in Python. Refused before the memory is
    // taken: the []s when their list opens, the %{}s some way in.
    let wire = ordinary().iter().map(|(_, bytes)| bytes.len()).max().unwrap();
    for element in [&[106][..], &[116, 0, 0, 0, 0]] {
        refused_within(&list_of(wire / element.len(), element), NODE_DEFAULT, SLACK);
    }
}

#[test]
#[cfg(target_pointer_width = "64")]
fn the_cost_table_is_as_documented() {
    // `decode::cost`'s doc gives these numbers: a change to a struct's size moves them.
    use cost::*;
    assert_eq!((SLOT, PY_SPARE, STACK_SLOT, MAP_PAIR), (32, 24, 32, 250));
    assert_eq!((INT32, FLOAT, INT64, BIG_INT, BIG_INT_PER_BYTE), (8, 8, 24, 229, 3));
    assert_eq!((NIL, EMPTY_MAP, ATOM, BINARY, BITSTRING), (40, 40, 56, 41, 56));
    assert_eq!((PID, PORT, REFERENCE, FUN, EXPORT), (104, 104, 172, 256, 152));
    assert_eq!((TUPLE, LIST, IMPROPER_TAIL, STRING, MAP), (48, 72, 64, 104, 136));
}

#[test]
fn a_small_integer_in_a_list_costs_a_term_and_a_place_on_the_decoders_stack() {
    // (A const assertion in term.rs pins the size too; this says what it costs.)
    assert_eq!(std::mem::size_of::<Term>(), 32);
    let n = 10_000;
    let each = (charged(&list_of(2 * n, &[97, 7])) - charged(&list_of(n, &[97, 7]))) / n;
    assert_eq!(each, cost::SLOT + cost::STACK_SLOT);
    assert_eq!(each, 64);
}

#[test]
fn terms_decoded_one_after_another_can_share_one_budget() {
    // The control message and payload of one distribution message, say.
    let a = cat(&[&[131, 109], &be32(100), &[1; 100]]);
    let b = list_of(100, &[97, 1]);
    let both = cat(&[&a, &b]);
    let need = charged(&a) + charged(&b);
    let decode_both = |budget: usize| -> Result<usize, DecodeError> {
        let mut left = budget;
        let (_, end) = decode_at_within(&both, 0, &mut TermBuilder, &Limits::default(), &mut left)?;
        decode_at_within(&both, end, &mut TermBuilder, &Limits::default(), &mut left)?;
        Ok(left)
    };
    assert_eq!(decode_both(need).unwrap(), 0);
    // Refused in the second term (its list, after its version byte).
    let e = refused(decode_both(need - 1));
    assert_eq!((e.kind, e.offset), (DecodeErrorKind::Limit, a.len() + 1));
}

// ---------------------------------------------------------------------------------------
// Compressed bombs
// ---------------------------------------------------------------------------------------

#[test]
fn a_compressed_term_claiming_more_than_max_uncompressed_size_is_refused_before_inflating() {
    let body = cat(&[&[109], &be32(16 * MIB), &vec![0; 16 * MIB]]);
    let bytes = compressed(body.len(), &body);
    assert!(bytes.len() < 32 * KIB);
    let small = Limits { max_uncompressed_size: MIB, ..Limits::default() };
    let (r, _, peak) = measure(|| decode_with(&bytes, &mut TermBuilder, &small));
    let e = refused(r);
    assert_eq!((e.kind, e.offset), (DecodeErrorKind::Limit, 2));
    assert!(e.message.contains("over the limit of 1048576"), "{}", e.message);
    assert!(peak < SLACK, "{peak}");
}

#[test]
fn a_compressed_term_claiming_more_than_max_memory_is_refused_before_inflating() {
    // 16 MiB of zeros in under 32 KiB: well under the default max_uncompressed_size.
    let body = cat(&[&[109], &be32(16 * MIB), &vec![0; 16 * MIB]]);
    let bytes = compressed(body.len(), &body);
    let e = refused_within(&bytes, 8 * MIB, SLACK);
    assert_eq!(e.offset, 2);
    let (_, _, peak) = measure(|| decode_under(&bytes, 8 * MIB));
    assert!(peak < SLACK, "{peak} bytes taken before refusing");
    // The inflated bytes and the binary made of them both count: 32 MiB and a little.
    let need = exact_at_its_charge(&bytes, INFLATE_SLACK);
    assert!(need > 2 * body.len() && need < 2 * body.len() + KIB, "{need}");
    refused_within(&bytes, 2 * body.len(), INFLATE_SLACK);
}

#[test]
fn a_compressed_term_whose_value_passes_max_memory_is_refused_inside() {
    // 256 KiB of [] inflated is 32 MiB of Terms: the inflated bytes fit a 4 MiB budget,
    // the list does not, and is refused when it opens.
    let body = cat(&[&[108], &be32(256 * KIB), &vec![106; 256 * KIB], &[106]]);
    let bytes = compressed(body.len(), &body);
    assert!(bytes.len() < 4 * KIB);
    let e = refused_within(&bytes, 4 * MIB, INFLATE_SLACK);
    // The offset is the compressed term's tag; the message names the list's, inside.
    assert_eq!(e.offset, 1);
    assert!(e.message.contains("at offset 0 of the decompressed term"), "{}", e.message);
    exact_at_its_charge(&bytes, INFLATE_SLACK);
}

#[test]
fn a_compressed_term_lying_about_its_size_stops_at_its_claim() {
    // Claims 1 MiB, inflates to 64 MiB: inflating stops one byte past the claim. The bytes
    // are malformed (no limit would make them decode), and memory stays at the claim.
    let body = cat(&[&[109], &be32(64 * MIB), &vec![0; 64 * MIB]]);
    let bytes = compressed(MIB, &body);
    for budget in [2 * MIB, DEFAULT_MAX_MEMORY] {
        let (r, _, peak) = measure(|| decode_under(&bytes, budget));
        let e = refused(r);
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::Malformed, 2), "{}", e.message);
        assert!(e.message.contains("more than the 1048576 bytes it claims"), "{}", e.message);
        assert!(peak <= MIB + INFLATE_SLACK, "{peak}");
    }
    // Under a budget smaller than its claim: refused on the claim, before inflating.
    let e = refused_within(&bytes, MIB - 1, SLACK);
    assert_eq!(e.offset, 2);
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, max_shrink_iters: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every term decodes under exactly what it is charged, allocating no more, and is
    /// refused (as over the limit) one byte below; compressed, the same plus the inflater.
    #[test]
    fn the_charge_bounds_what_the_term_builder_allocates(t in term()) {
        let bytes = encode(&t).unwrap();
        let need = charged(&bytes);
        let (back, _, peak) = measure(|| decode_under(&bytes, need));
        prop_assert!(back.unwrap() == t);
        prop_assert!(peak <= need, "{} bytes allocated for a charge of {}", peak, need);
        let e = refused(decode_under(&bytes, need - 1));
        prop_assert_eq!(e.kind, DecodeErrorKind::Limit);

        let packed = compressed(bytes.len() - 1, &bytes[1..]);
        let need = charged(&packed);
        let (back, _, peak) = measure(|| decode_under(&packed, need));
        prop_assert!(back.unwrap() == t);
        prop_assert!(peak <= need + INFLATE_SLACK, "{} bytes allocated for a charge of {}", peak, need);
        prop_assert_eq!(refused(decode_under(&packed, need - 1)).kind, DecodeErrorKind::Limit);
    }
}
