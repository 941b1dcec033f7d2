//! A mutation fuzzer for everything that reads a peer's bytes in Rust: the framing, the
//! fragment reassembly, the fast path (and the natives it runs) and the term decoder.
//!
//! The inputs are real: `corpus/otp25.bin` and `corpus/otp28.bin` hold what an OTP 25 and
//! an OTP 28 node sent after the handshake (written by `corpus/capture.py`). Each case takes
//! a run of those frames, mutates them the ways a broken or hostile peer would (bit flips,
//! interesting values over 1/2/4-byte fields, insertions, deletions, duplications,
//! truncation, splices of two frames, atoms made longer than a node may send; frame lengths
//! fixed up or not), and feeds the result in
//! random pieces to a fresh fast path. What must hold, for every input:
//! - nothing panics (a panic here is an abort in the node);
//! - no single allocation is larger than the input allows (a count from the wire sizing an
//!   allocation shows up here, long before it could abort a process), and the bytes live
//!   after a case are what they were before it;
//! - every frame the fast path writes is a well-formed message.
//!
//! The number of cases is `RUSTELIXIR_FUZZ_CASES` (default 2,000,000, under a minute in a
//! release build; a long run sets it to 10 million), the seed `RUSTELIXIR_FUZZ_SEED`.

mod common;
use common::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etf::Term;
use std::sync::Arc;

use rustelixir_dist::frame::PeerConfig;
use rustelixir_dist::{fast_path::wire_limits, FastPath, Peer, Server};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// xorshift64*: a small, seeded generator, so every run of a seed feeds the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const INTERESTING: [u32; 12] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF];

/// The frame bodies of a captured stream (ticks are empty bodies).
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bodies = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        bodies.push(data[pos + 4..pos + 4 + len].to_vec());
        pos += 4 + len;
    }
    bodies
}

/// The control message of a whole (header) body, decoded.
fn control_of(body: &[u8]) -> Option<Vec<Term>> {
    if body.get(..3)? != [131, 68, 0] {
        return None;
    }
    match &etf::decode::decode_at_with(body, 3, &mut etf::decode::TermBuilder, &etf::Limits::default()).ok()?.0 {
        Term::Tuple(items) => Some(items.clone()),
        _ => None,
    }
}

/// The node the corpus was sent to: the peer's name from the callers' pids, the server's
/// pid from the LINK the corpus makes to it; its server serves the built-ins and the
/// collections, with few workers and few calls in flight (a mutated `sleep` may sleep a day).
struct Corpus {
    peer: Arc<Peer>,
    server: Arc<Server>,
}

impl Corpus {
    fn new(bodies: &[Vec<u8>], max_message_size: usize) -> Self {
        let mut peer = None;
        let mut server_pid = None;
        for body in bodies {
            match control_of(body).as_deref() {
                Some([Term::Int(6), Term::Pid(from), ..]) => peer = Some(from.node.0.clone()),
                Some([Term::Int(1), _, to @ Term::Pid(_)]) => server_pid = Some(bytes(to)),
                _ => {}
            }
        }
        let config = PeerConfig {
            name: peer.expect("a REG_SEND in the corpus").into_bytes(),
            ..peer_config(max_message_size)
        };
        let peer = Arc::new(Peer::new(config, Box::new(Discard)));
        let server = Server::new(
            rustelixir_dist::ServerConfig {
                node: NODE.into(),
                creation: 3,
                pid: server_pid.expect("a LINK to the server in the corpus"),
                max_in_flight: 64,
                workers: 4,
                // Small enough that what mutated calls create and keep (their holders never
                // exit here) stays within the bound on live memory.
                max_resources: 20_000,
                max_holders: 100,
            },
            Box::new(|| {}),
        );
        for table in [&rustelixir_dist::builtins::BUILTINS, &rustelixir_dist::builtins::SLOW_BUILTINS, &rustelixir_collections::COLLECTIONS] {
            server.add_table(table).unwrap();
        }
        server.peer_up(peer.clone());
        Corpus { peer, server }
    }

    fn fast_path(&self) -> FastPath {
        FastPath::new(self.peer.clone(), Some(self.server.clone()))
    }
}

fn mutate(rng: &mut Rng, body: &mut Vec<u8>, donor: &[u8]) {
    if body.is_empty() {
        body.push(rng.next() as u8);
        return;
    }
    let at = rng.below(body.len());
    match rng.below(9) {
        0 => body[at] ^= 1 << rng.below(8),
        1 => body[at] = INTERESTING[rng.below(INTERESTING.len())] as u8,
        2 | 3 => {
            // A length or count field: 1, 2 or 4 bytes set to an interesting value.
            let width = [1, 2, 4][rng.below(3)];
            let value = INTERESTING[rng.below(INTERESTING.len())].to_be_bytes();
            let end = (at + width).min(body.len());
            let n = end - at;
            body[at..end].copy_from_slice(&value[4 - n..]);
        }
        4 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            body.splice(at..at, bytes);
        }
        5 => {
            let end = (at + 1 + rng.below(16)).min(body.len());
            body.drain(at..end);
        }
        6 => {
            let end = (at + 1 + rng.below(32)).min(body.len());
            let piece = body[at..end].to_vec();
            body.splice(end..end, piece);
        }
        7 => lengthen_atom(rng, body),
        _ => {
            // A splice: this body's start, another's end.
            let from = rng.below(donor.len().max(1));
            body.truncate(at);
            body.extend_from_slice(&donor[from.min(donor.len())..]);
        }
    }
}

/// One of the body's small atoms made long: 255 characters is the most a node may send,
/// and a name read from the wire may be written back (into a reply, or the stack of a
/// spawned process's exit), so lengths about that bound, in one- and two-byte characters.
/// (Bit flips and overwritten lengths alone almost never make one: a longer atom needs its
/// bytes too.)
fn lengthen_atom(rng: &mut Rng, body: &mut Vec<u8>) {
    let atoms: Vec<usize> = (0..body.len().saturating_sub(1))
        .filter(|&p| body[p] == etf::tags::SMALL_ATOM_UTF8_EXT && p + 2 + body[p + 1] as usize <= body.len())
        .collect();
    if atoms.is_empty() {
        return;
    }
    let at = atoms[rng.below(atoms.len())];
    let chars = [254, 255, 256, 300, 1000][rng.below(5)];
    let name = if rng.chance(2) { "a".repeat(chars) } else { "\u{e9}".repeat(chars) };
    let mut atom = vec![etf::tags::ATOM_UTF8_EXT];
    atom.extend_from_slice(&(name.len() as u16).to_be_bytes());
    atom.extend_from_slice(name.as_bytes());
    body.splice(at..at + 2 + body[at + 1] as usize, atom);
}

/// Every frame written is whole and makes whole messages, each with a control tuple. (The
/// payload of an `echo` reply is the peer's own argument, byte for byte, so a malformed
/// term the fast path only walked comes back as it came: not checked here.)
fn well_formed(out: &[u8]) {
    let mut receiver = FastPath::new(Arc::new(Peer::new(peer_config(1 << 30), Box::new(Discard))), None);
    let mut bodies = Vec::new();
    receiver.feed(out, &mut Vec::new(), &mut bodies).unwrap();
    assert_eq!(receiver.buffered() + receiver.open_sequences(), 0, "whole frames and messages only");
    for body in bodies {
        assert!(control_of(&body).is_some(), "a control tuple in {body:?}");
    }
}

/// Keeps the input that broke a property, for `replay`.
fn fail(case: usize, data: &[u8], what: String) -> ! {
    let path = std::env::temp_dir().join(format!("rustelixir-fuzz-case-{case}.bin"));
    std::fs::write(&path, data).unwrap();
    panic!("case {case}: {what} (input kept in {})", path.display());
}

/// Feeds one kept input (`RUSTELIXIR_FUZZ_REPLAY=path`) to the fast path, with a backtrace
/// at its largest allocation: `cargo test --test fuzz replay -- --ignored --nocapture`.
#[test]
#[ignore]
fn replay() {
    setup_collections();
    let data = std::fs::read(std::env::var("RUSTELIXIR_FUZZ_REPLAY").expect("RUSTELIXIR_FUZZ_REPLAY=path")).unwrap();
    let streams = [corpus("otp25.bin"), corpus("otp28.bin")];
    for stream in &streams {
        let mut fast = Corpus::new(stream, 1 << 20).fast_path();
        let (mut out, mut to_python) = (Vec::new(), Vec::new());
        let result = fast.feed(&data, &mut out, &mut to_python);
        println!("fed: {:?}; {} bytes out, {} to Python; largest allocation {}", result.err(), out.len(), to_python.len(), LARGEST.load(Ordering::Relaxed));
        for body in &to_python {
            let r = etf::decode::decode_at_with(body, 3, &mut etf::decode::TermBuilder, &wire_limits(1 << 20)).map(|_| ());
            println!("decoded: {r:?}; largest allocation {}", LARGEST.load(Ordering::Relaxed));
        }
    }
}

/// The collections' natives, under a buffer limit small enough that what mutated calls
/// create and keep (their holders never exit here) stays within the bound on live memory
/// (the resource limits are the server's: `max_resources`, `max_holders`).
fn setup_collections() {
    rustelixir_collections::set_max_total_buffer_bytes(8 << 20);
}

#[test]
fn mutated_real_frames() {
    setup_collections();
    let cases: usize = std::env::var("RUSTELIXIR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    let budget = Duration::from_secs(std::env::var("RUSTELIXIR_FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(150));
    let seed: u64 = std::env::var("RUSTELIXIR_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_F00D);
    let mut rng = Rng(seed | 1);
    let streams = [corpus("otp25.bin"), corpus("otp28.bin")];
    // Small enough that a mutated length passes it often, large enough for the corpus.
    let max_message_size = 1 << 20;
    let corpora: Vec<Corpus> = streams.iter().map(|s| Corpus::new(s, max_message_size)).collect();
    let limits = wire_limits(max_message_size);

    // The corpus, unmutated, is answered without error: the fuzzer starts from real traffic.
    for (stream, corpus) in streams.iter().zip(&corpora) {
        let mut fast = corpus.fast_path();
        let data: Vec<u8> = stream.iter().flat_map(|b| frame(b)).collect();
        let (out, _) = feed_in_pieces(&mut fast, &data, 4096);
        well_formed(&out);
        assert!(stats(&fast).0 > 10, "the corpus's calls are answered");
    }

    let started = Instant::now();
    let mut done = 0;
    let baseline = LIVE.load(Ordering::Relaxed);
    while done < cases && started.elapsed() < budget {
        let which = rng.below(2);
        let stream = &streams[which];
        let start = rng.below(stream.len());
        let run = 1 + rng.below(6);
        let mut bodies: Vec<Vec<u8>> = stream[start..(start + run).min(stream.len())].to_vec();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(bodies.len());
            let donor = stream[rng.below(stream.len())].clone();
            mutate(&mut rng, &mut bodies[i], &donor);
        }
        let mut data = Vec::new();
        for body in &bodies {
            if rng.chance(8) {
                // The length left as it was, or made up: the framing itself under test.
                let len = if rng.chance(2) { body.len() as u32 ^ (1 << rng.below(32)) } else { INTERESTING[rng.below(12)] };
                data.extend(len.to_be_bytes());
                data.extend_from_slice(body);
            } else {
                data.extend(frame(body));
            }
        }
        if rng.chance(16) {
            data.truncate(rng.below(data.len() + 1));
        }

        LARGEST.store(0, Ordering::Relaxed);
        {
            let mut fast = corpora[which].fast_path();
            let mut out = Vec::new();
            let mut to_python = Vec::new();
            let mut pos = 0;
            while pos < data.len() {
                let most = if rng.chance(4) { 16 } else { 70_000 };
                let piece = 1 + rng.below(most);
                let end = (pos + piece).min(data.len());
                let mut left = Vec::new();
                if fast.feed(&data[pos..end], &mut out, &mut left).is_err() {
                    break; // the connection would be closed: nothing more is read from it
                }
                to_python.extend(left);
                pos = end;
            }
            well_formed(&out);
            // What goes to Python is decoded there under the same limits: the decoder must
            // refuse or accept each of those bodies without panicking.
            for body in &to_python {
                if let Some(start) = [3usize, 1].into_iter().find(|&s| body.len() > s) {
                    let _ = etf::decode::decode_at_with(body, start, &mut etf::decode::TermBuilder, &limits);
                }
            }
        }
        let largest = LARGEST.load(Ordering::Relaxed);
        // The decoder's estimate bounds what a term may take once decoded (Rust `Term`s are
        // under it), the frame buffer the message size: nothing larger is ever needed.
        if largest > 2 * max_message_size + (1 << 20) {
            fail(done, &data, format!("an allocation of {largest} bytes for {} bytes of input", data.len()));
        }
        // The resource table may keep what a case made (a resource its holder never
        // releases), within its limits: allow for that, not for per-case growth.
        let live = LIVE.load(Ordering::Relaxed);
        if live > baseline + (64 << 20) {
            fail(done, &data, format!("{} bytes live after it", live - baseline));
        }
        done += 1;
    }
    println!("fuzz: {done} cases in {:.1} s (seed {seed:#x})", started.elapsed().as_secs_f64());
    assert!(done >= cases.min(10_000), "only {done} cases ran in the time budget");
}
