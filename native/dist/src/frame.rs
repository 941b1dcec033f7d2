//! Frames out, for every sender on a connection (fast-path replies, replies of natives that
//! ran elsewhere, Python's own messages): one framer, one fragment sequence counter.
//!
//! A frame is a 4-byte big-endian length and a body (an empty body is a tick). To a peer that
//! offered FRAGMENTS (every OTP 22+ node) a body starts with a distribution header with no
//! atom-cache references (131 68 0, the terms without version bytes), and a message larger
//! than the fragment size goes as fragments (131 69 first, 131 70 the rest, ids counting
//! down to 1); to others, pass-through bodies (112, then each term with its version byte).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etf::tags::{SMALL_INTEGER_EXT, SMALL_TUPLE_EXT, VERSION};

use crate::control;

pub const PASS_THROUGH: u8 = 112;
pub const DIST_HEADER: u8 = 68;
pub const DIST_FRAG_HEADER: u8 = 69;
pub const DIST_FRAG_CONT: u8 = 70;
pub const TICK: [u8; 4] = [0, 0, 0, 0];

/// What one peer takes, from the flags of its handshake, and the limits of its connection.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The peer's node name.
    pub name: Vec<u8>,
    pub alias: bool,
    pub send_sender: bool,
    /// The peer offered FRAGMENTS: send a distribution header (and fragments when large).
    pub header: bool,
    pub max_message_size: usize,
    pub fragment_size: usize,
    /// What crossed this connection, shared by every copy of the config (its reader, its
    /// writers, the server).
    pub counters: Arc<PeerCounters>,
}

/// A connection's traffic: bytes on the wire (TLS records included) and messages (a
/// fragmented one counted once; ticks not counted), each way.
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
}

/// A frame body that is a fragment of a message (its first, or a later one).
pub fn is_fragment(body: &[u8]) -> bool {
    matches!(body, [VERSION, DIST_FRAG_HEADER | DIST_FRAG_CONT, ..])
}

/// Where the terms of a whole message's frame body start, and whether each has its version
/// byte.
pub fn terms_start(body: &[u8]) -> Option<(usize, bool)> {
    match body {
        [PASS_THROUGH, VERSION, ..] => Some((1, true)),
        [VERSION, DIST_HEADER, 0, ..] => Some((3, false)),
        _ => None,
    }
}

/// The fragment sequences of every connection of this process: one counter, never reused.
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// One message (control + payload, both encoded without version bytes; an empty `payload`:
/// none) as frames appended to `out`.
pub fn write_message(peer: &PeerConfig, control: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    write_message_parts(peer, control, &[payload], out)
}

/// Where frames are written: every byte into one buffer (`Vec<u8>`), or the small heads into
/// a buffer and the message's own bytes borrowed, for one vectored write (`Slices`).
pub trait FrameOut<'a> {
    fn head(&mut self, bytes: &[u8]);
    fn body(&mut self, bytes: &'a [u8]);
    fn reserve(&mut self, _additional: usize) {}
}

impl<'a> FrameOut<'a> for Vec<u8> {
    fn head(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn body(&mut self, bytes: &'a [u8]) {
        self.extend_from_slice(bytes);
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

/// Frames as slices to write in order, without copying the message's bytes.
#[derive(Default)]
pub struct Slices<'a> {
    heads: Vec<u8>,
    segments: Vec<Segment<'a>>,
}

enum Segment<'a> {
    Head(usize, usize),
    Body(&'a [u8]),
}

impl<'a> FrameOut<'a> for Slices<'a> {
    fn head(&mut self, bytes: &[u8]) {
        let start = self.heads.len();
        self.heads.extend_from_slice(bytes);
        match self.segments.last_mut() {
            Some(Segment::Head(_, end)) if *end == start => *end = self.heads.len(),
            _ => self.segments.push(Segment::Head(start, self.heads.len())),
        }
    }
    fn body(&mut self, bytes: &'a [u8]) {
        if !bytes.is_empty() {
            self.segments.push(Segment::Body(bytes));
        }
    }
}

impl<'a> Slices<'a> {
    pub fn slices(&self) -> Vec<&[u8]> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Head(start, end) => &self.heads[*start..*end],
                Segment::Body(bytes) => *bytes,
            })
            .collect()
    }
}

/// `write_message` with the payload given as consecutive parts (so a reply is framed
/// without first being copied whole into one buffer).
pub fn write_message_parts<'a>(peer: &PeerConfig, control: &'a [u8], payload: &[&'a [u8]], out: &mut impl FrameOut<'a>) {
    peer.counters.messages_out.fetch_add(1, Ordering::Relaxed);
    let payload_len: usize = payload.iter().map(|p| p.len()).sum();
    if !peer.header {
        let len = 1 + 1 + control.len() + if payload_len == 0 { 0 } else { 1 + payload_len };
        out.reserve(4 + len);
        out.head(&(len as u32).to_be_bytes());
        out.head(&[PASS_THROUGH, VERSION]);
        out.body(control);
        if payload_len > 0 {
            out.head(&[VERSION]);
            payload.iter().for_each(|p| out.body(p));
        }
        return;
    }
    let size = control.len() + payload_len;
    let fragment_size = peer.fragment_size.max(1);
    if size <= fragment_size {
        out.reserve(7 + size);
        out.head(&((3 + size) as u32).to_be_bytes());
        out.head(&[VERSION, DIST_HEADER, 0]);
        out.body(control);
        payload.iter().for_each(|p| out.body(p));
        return;
    }
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let count = size.div_ceil(fragment_size);
    out.reserve(size + count * 22);
    let mut parts = std::iter::once(control).chain(payload.iter().copied()).filter(|p| !p.is_empty());
    let mut current: &'a [u8] = parts.next().unwrap_or(&[]);
    for index in 0..count {
        let fragment = (count - index) as u64;
        let chunk = fragment_size.min(size - index * fragment_size);
        let header_len = if index == 0 { 19 } else { 18 };
        out.head(&((header_len + chunk) as u32).to_be_bytes());
        out.head(&[VERSION, if index == 0 { DIST_FRAG_HEADER } else { DIST_FRAG_CONT }]);
        out.head(&sequence.to_be_bytes());
        out.head(&fragment.to_be_bytes());
        if index == 0 {
            out.head(&[0]);
        }
        let mut left = chunk;
        while left > 0 {
            if current.is_empty() {
                current = parts.next().expect("the parts hold `size` bytes");
            }
            let take = left.min(current.len());
            out.body(&current[..take]);
            current = &current[take..];
            left -= take;
        }
    }
}

/// The process a reply goes to: the `From` of a `$gen_call` (each part encoded, no version
/// byte): its pid, its tag, and the alias in an OTP 24+ tag `[alias | Ref]`.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub pid: &'a [u8],
    pub tag: &'a [u8],
    pub alias: Option<&'a [u8]>,
    /// Not a `$gen_call` but a process spawned for the caller (`erpc`): the reply is how
    /// that process exits.
    pub spawned: Option<Spawned<'a>>,
}

impl<'a> Caller<'a> {
    /// The reference whose DEMONITOR_P says the caller gave up: its alias, or the spawn
    /// request's id (the monitor of the process made for it).
    pub fn monitor(&self) -> Option<&'a [u8]> {
        self.spawned.map_or(self.alias, |s| s.monitor.then_some(s.id))
    }
}

/// A process the node made for a SPAWN_REQUEST (each part encoded, no version byte): it
/// lives as long as the one native it runs, and its exit reason is the native's result.
#[derive(Clone, Copy, Debug)]
pub struct Spawned<'a> {
    /// Its pid.
    pub pid: &'a [u8],
    /// The spawn request's id: the asker's monitor of the process.
    pub id: &'a [u8],
    /// `erpc:execute_call`'s reference: the exit reason is `{Result, return, Value}`, or
    /// `{Result, error, {rustelixir, Reason}, Stack}`. None: it exits `normal`, or
    /// `{{rustelixir, Reason}, Stack}` (a native's error).
    pub result: Option<&'a [u8]>,
    /// `[{Module, Function, Arity, []}]`: where an error's stack says it happened.
    pub stack: &'a [u8],
    pub monitor: bool,
    pub link: bool,
}

/// How a spawned process ends.
#[derive(Clone, Copy, Debug)]
pub enum SpawnExit<'a> {
    /// With the native's reply, `{ok, V}` or `{error, R}`.
    Reply(&'a [u8]),
    /// Its function does not exist here (as BEAM's `undef`).
    Undef,
}

/// The exit of `spawned` to the process that asked for it (`to`): PAYLOAD_MONITOR_P_EXIT
/// when it monitors it, PAYLOAD_EXIT when linked; the reason as `erpc` reads it.
pub fn write_spawn_exit<'a>(
    peer: &PeerConfig,
    head: &'a mut Vec<u8>,
    to: &'a [u8],
    spawned: Spawned<'a>,
    exit: SpawnExit<'a>,
    out: &mut impl FrameOut<'a>,
) {
    use etf::encode::put_atom;
    let atom = |head: &mut Vec<u8>, name: &str| put_atom(head, name).expect("short atom");
    head.clear();
    // The reason: [prefix, value, suffix], the value borrowed from the reply.
    let (value, error) = match exit {
        SpawnExit::Reply(reply) => match rustelixir_nif::reply::split(reply) {
            Ok(value) => (value, false),
            Err(reason) => (reason, true),
        },
        SpawnExit::Undef => (&[][..], true),
    };
    match (spawned.result, error) {
        (Some(result), false) => {
            head.extend_from_slice(&[SMALL_TUPLE_EXT, 3]);
            head.extend_from_slice(result);
            atom(head, "return");
        }
        (Some(result), true) => {
            head.extend_from_slice(&[SMALL_TUPLE_EXT, 4]);
            head.extend_from_slice(result);
            atom(head, "error");
        }
        (None, false) => atom(head, "normal"),
        (None, true) => head.extend_from_slice(&[SMALL_TUPLE_EXT, 2]),
    }
    match (exit, error) {
        (SpawnExit::Undef, _) => atom(head, "undef"),
        (_, true) => {
            head.extend_from_slice(&[SMALL_TUPLE_EXT, 2]);
            atom(head, crate::contract::SERVER_NAME);
        }
        _ => {}
    }
    let prefix_end = head.len();
    if error {
        head.extend_from_slice(spawned.stack);
    }
    let value = if spawned.result.is_none() && !error { &[][..] } else { value };
    let suffix_end = head.len();
    let signals = [(control::PAYLOAD_MONITOR_P_EXIT, spawned.monitor), (control::PAYLOAD_EXIT, spawned.link)];
    let mut ends = [0; 2];
    for (i, (op, wanted)) in signals.iter().enumerate() {
        if *wanted {
            let monitor = *op == control::PAYLOAD_MONITOR_P_EXIT;
            head.extend_from_slice(&[SMALL_TUPLE_EXT, if monitor { 4 } else { 3 }, SMALL_INTEGER_EXT, *op]);
            head.extend_from_slice(spawned.pid);
            head.extend_from_slice(to);
            if monitor {
                head.extend_from_slice(spawned.id);
            }
        }
        ends[i] = head.len();
    }
    let head: &'a [u8] = head;
    let reason = [&head[..prefix_end], value, &head[prefix_end..suffix_end]];
    let mut start = suffix_end;
    for end in ends {
        if end > start {
            write_message_parts(peer, &head[start..end], &reason, out);
        }
        start = end;
    }
}

/// `{Tag, Reply}` from `server_pid` to a caller on `peer`: by ALIAS_SEND when the peer
/// offered ALIAS and the tag carries one, else SEND_SENDER or SEND to its pid.
pub fn write_reply<'a>(
    peer: &PeerConfig,
    head: &'a mut Vec<u8>,
    server_pid: &[u8],
    caller: Caller<'a>,
    reply: &'a [u8],
    out: &mut impl FrameOut<'a>,
) {
    if let Some(spawned) = caller.spawned {
        return write_spawn_exit(peer, head, caller.pid, spawned, SpawnExit::Reply(reply), out);
    }
    reply_control(peer, server_pid, caller, head);
    write_message_parts(peer, head, &[&[SMALL_TUPLE_EXT, 2], caller.tag, reply], out);
}

/// The control message of a reply (see `write_reply`), into `head`.
fn reply_control(peer: &PeerConfig, server_pid: &[u8], caller: Caller<'_>, head: &mut Vec<u8>) {
    head.clear();
    match (peer.alias, caller.alias) {
        (true, Some(alias)) => {
            head.extend_from_slice(&[SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, control::ALIAS_SEND]);
            head.extend_from_slice(server_pid);
            head.extend_from_slice(alias);
        }
        _ => send_control(peer, server_pid, caller.pid, head),
    }
}

/// The control message of a message from `from` to the pid `to` (both encoded), appended to
/// `head`: SEND_SENDER when the peer offered it, else SEND.
pub fn send_control(peer: &PeerConfig, from: &[u8], to: &[u8], head: &mut Vec<u8>) {
    if peer.send_sender {
        head.extend_from_slice(&[SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, control::SEND_SENDER]);
        head.extend_from_slice(from);
    } else {
        head.extend_from_slice(&[SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, control::SEND]);
        etf::encode::put_atom(head, "").expect("empty atom");
    }
    head.extend_from_slice(to);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slices of a vectored write are the bytes of the buffered one, for every framing.
    #[test]
    fn slices_hold_the_same_frames_as_a_buffer() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        for header in [false, true] {
            for fragment_size in [1, 7, 1000, 65_536, 1 << 20] {
                let peer = PeerConfig {
                    name: b"a@b".to_vec(),
                    alias: true,
                    send_sender: true,
                    header,
                    max_message_size: 1 << 30,
                    fragment_size,
                    counters: Default::default(),
                };
                for (control, parts) in [(&b"ctl"[..], vec![&payload[..10], &payload[10..]]), (&b"c"[..], vec![]), (&b"xy"[..], vec![&payload[..5]])] {
                    let before = SEQUENCE.load(Ordering::Relaxed);
                    let mut buffered = Vec::new();
                    write_message_parts(&peer, control, &parts, &mut buffered);
                    let mut slices = Slices::default();
                    write_message_parts(&peer, control, &parts, &mut slices);
                    let vectored = slices.slices().concat();
                    // Fragmented messages take a sequence each: compare all but its 8 bytes.
                    if SEQUENCE.load(Ordering::Relaxed) == before {
                        assert_eq!(vectored, buffered);
                    } else {
                        assert_eq!(vectored.len(), buffered.len());
                        let differ = vectored.iter().zip(&buffered).filter(|(a, b)| a != b).count();
                        assert!(differ <= 8 * buffered.len().div_ceil(fragment_size + 18), "{differ} bytes differ");
                    }
                }
            }
        }
    }
}
