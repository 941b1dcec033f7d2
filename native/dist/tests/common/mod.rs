//! Frames as a BEAM peer sends them, a fast path to feed them to, and the replies read back.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Once};

use etf::{Atom, Pid, Reference, Term};
use rustelixir_dist::{builtins, registry, Config, FastPath};

pub const PEER: &str = "client@127.0.0.1";
pub const NODE: &str = "py@127.0.0.1";

pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        registry::register(&builtins::BUILTINS).unwrap();
        registry::register(&builtins::SLOW_BUILTINS).unwrap();
        rustelixir_nif::resource::set_identity(NODE, 3);
    });
}

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

pub fn config(max_message_size: usize) -> Config {
    Config {
        peer_name: PEER.as_bytes().to_vec(),
        server_name: Some(b"rustelixir".to_vec()),
        server_pid: bytes(&Term::from(server_pid())),
        alias: true,
        send_sender: true,
        header: true,
        max_message_size,
        fragment_size: 64 * 1024,
        watched: Arc::new(Mutex::new(HashSet::new())),
    }
}

pub fn fast_path(max_message_size: usize) -> FastPath {
    setup();
    FastPath::new(config(max_message_size))
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
    let mut receiver = FastPath::new(Config { server_name: None, ..config(1 << 30) });
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

/// Feeds `data` in pieces of `piece` bytes, as a socket might deliver it.
pub fn feed_in_pieces(fast: &mut FastPath, data: &[u8], piece: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        fast.feed(chunk, &mut out, &mut to_python).unwrap();
    }
    (out, to_python)
}
