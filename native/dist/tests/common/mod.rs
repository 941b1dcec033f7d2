//! Frames as a BEAM peer sends them, a fast path to feed them to, and the replies read back.
#![allow(dead_code)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use etf::{Atom, Pid, Reference, Term};
use rustelixir_dist::frame::PeerConfig;
use rustelixir_dist::server::Sink;
use rustelixir_dist::{builtins, FastPath, Peer, Server, ServerConfig};

pub const PEER: &str = "client@127.0.0.1";
pub const NODE: &str = "py@127.0.0.1";

pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::new(name))
}

pub fn caller() -> Pid {
    Pid { node: Atom::new(PEER), id: 90, serial: 0, creation: 5 }
}

pub fn server_pid() -> Pid {
    Pid { node: Atom::new(NODE), id: 1, serial: 0, creation: 3 }
}

pub fn monitor_ref(n: u32) -> Reference {
    Reference { node: Atom::new(PEER), creation: 5, ids: vec![n, 7, 9] }
}

/// A term's bytes without the version byte.
pub fn bytes(term: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    etf::encode::encode_into(term, &mut out).unwrap();
    out
}

/// What a peer on PEER takes: distribution headers, aliases.
pub fn peer_config(max_message_size: usize) -> PeerConfig {
    PeerConfig {
        name: PEER.as_bytes().to_vec(),
        alias: true,
        send_sender: true,
        header: true,
        max_message_size,
        fragment_size: 64 * 1024,
        counters: Default::default(),
    }
}

/// Frames sent to a peer outside the fast path's own output (replies of calls that ran
/// elsewhere), kept for the test to read.
#[derive(Clone, Default)]
pub struct Sent(pub Arc<Mutex<Vec<u8>>>);

impl Sink for Sent {
    fn send(&self, frames: Vec<u8>) -> Result<(), String> {
        self.0.lock().unwrap().extend(frames);
        Ok(())
    }
}

/// Frames sent and forgotten.
pub struct Discard;

impl Sink for Discard {
    fn send(&self, _: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

impl Sent {
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A server of node NODE with the built-in natives (and `tables`), waking nobody.
pub fn server_with(tables: &[&'static rustelixir_nif::NativeTable]) -> Arc<Server> {
    let config = ServerConfig {
        node: NODE.into(),
        creation: 3,
        pid: bytes(&Term::from(server_pid())),
        max_in_flight: 10_000,
        workers: 8,
        max_resources: 1_000_000,
        max_holders: 10_000,
    };
    let server = Server::new(config, Box::new(|| {}));
    for table in [&builtins::BUILTINS, &builtins::SLOW_BUILTINS].into_iter().chain(tables.iter().copied()) {
        server.add_table(table).unwrap();
    }
    server
}

/// A fast path for a connection to PEER, its server's natives the built-ins and `tables`;
/// what it sends outside its output goes to the returned `Sent`.
pub fn fast_path_with(max_message_size: usize, tables: &[&'static rustelixir_nif::NativeTable]) -> (FastPath, Sent) {
    let sent = Sent::default();
    let peer = Arc::new(Peer::new(peer_config(max_message_size), Box::new(sent.clone())));
    let server = server_with(tables);
    server.peer_up(peer.clone());
    (FastPath::new(peer, Some(server)), sent)
}

pub fn fast_path(max_message_size: usize) -> FastPath {
    fast_path_with(max_message_size, &[]).0
}

/// (calls answered, of which errors, messages discarded for their size) by the fast
/// path's server.
pub fn stats(fast: &FastPath) -> (u64, u64, u64) {
    let s = &fast.server.as_ref().expect("a server").stats;
    (s.calls.load(Ordering::Relaxed), s.errors.load(Ordering::Relaxed), s.oversized.load(Ordering::Relaxed))
}

/// A frame: its 4-byte length, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A message body behind a distribution header (no atom-cache references).
pub fn header_body(control: &Term, payload: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![131, 68, 0];
    body.extend(bytes(control));
    if let Some(p) = payload {
        body.extend_from_slice(p);
    }
    body
}

/// `{'$gen_call', {Caller, [alias | Mref]}, Request}` to `rustelixir`, whole (header body);
/// `request` given as its bytes so tests can make them anything.
pub fn gen_call_body(request: &[u8], mref: u32) -> Vec<u8> {
    let control = Term::Tuple(vec![Term::Int(6), Term::from(caller()), atom(""), atom("rustelixir")]);
    let mut payload = vec![104, 3];
    payload.extend(bytes(&atom("$gen_call")));
    payload.extend([104, 2]);
    payload.extend(bytes(&Term::from(caller())));
    payload.extend(bytes(&Term::improper_list(vec![atom("alias")], Term::from(monitor_ref(mref)))));
    payload.extend_from_slice(request);
    header_body(&control, Some(&payload))
}

pub fn call_frame(request: &Term, mref: u32) -> Vec<u8> {
    frame(&gen_call_body(&bytes(request), mref))
}

/// A whole message body (131 68 0 ...) as the fragment frames OTP would send, `size`
/// content bytes each.
pub fn fragments(body: &[u8], size: usize, sequence: u64) -> Vec<Vec<u8>> {
    let content = &body[3..];
    let chunks: Vec<&[u8]> = content.chunks(size).collect();
    let count = chunks.len() as u64;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let id = count - i as u64;
            let mut b = vec![131, if i == 0 { 69 } else { 70 }];
            b.extend(sequence.to_be_bytes());
            b.extend(id.to_be_bytes());
            if i == 0 {
                b.push(0);
            }
            b.extend_from_slice(chunk);
            frame(&b)
        })
        .collect()
}

/// The messages in the fast path's output: (control, payload) of each, fragments joined
/// (by a fast path that answers nothing, as the peer's side would).
pub fn messages(out: &[u8]) -> Vec<(Term, Option<Term>)> {
    let peer = Arc::new(Peer::new(peer_config(1 << 30), Box::new(Sent::default())));
    let mut receiver = FastPath::new(peer, None);
    let mut bodies = Vec::new();
    receiver.feed(out, &mut Vec::new(), &mut bodies).unwrap();
    assert_eq!(receiver.buffered() + receiver.open_sequences(), 0, "whole frames and messages only");
    let limits = etf::Limits::default();
    bodies
        .iter()
        .map(|body| {
            assert_eq!(&body[..3], &[131, 68, 0], "a message behind a distribution header");
            let (control, end) = etf::decode::decode_at_with(body, 3, &mut etf::decode::TermBuilder, &limits).unwrap();
            let payload = (end < body.len()).then(|| {
                let (p, end2) = etf::decode::decode_at_with(body, end, &mut etf::decode::TermBuilder, &limits).unwrap();
                assert_eq!(end2, body.len());
                p
            });
            (control, payload)
        })
        .collect()
}

/// The replies in the fast path's output, as (alias ref words, reply term).
pub fn replies(out: &[u8]) -> Vec<(Vec<u32>, Term)> {
    messages(out)
        .into_iter()
        .filter_map(|(control, payload)| match (&control, &payload) {
            (Term::Tuple(c), Some(Term::Tuple(p))) if c.first() == Some(&Term::Int(33)) && p.len() == 2 => {
                let Term::Ref(alias) = &c[2] else { panic!("an alias") };
                Some((alias.ids.clone(), p[1].clone()))
            }
            _ => None,
        })
        .collect()
}

pub fn ok(value: Term) -> Term {
    Term::Tuple(vec![atom("ok"), value])
}

pub fn overloaded() -> Term {
    Term::Tuple(vec![atom("error"), atom("overloaded")])
}

/// Feeds `data` in pieces of `piece` bytes, as a socket might deliver it, Python taking
/// what is left to it after each (as the link hands it over).
pub fn feed_in_pieces(fast: &mut FastPath, data: &[u8], piece: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        let mut left = Vec::new();
        fast.feed(chunk, &mut out, &mut left).unwrap();
        to_python.extend(left);
    }
    (out, to_python)
}
