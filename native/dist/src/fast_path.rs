//! The distribution fast path, with no Python in it: cuts a connection's bytes into frames
//! and answers the common case, a `gen_server:call` to the `rustelixir` server asking for a
//! quick Rust native, straight from the bytes: the arguments are never turned into Python
//! objects, the reply is encoded into the output buffer, and the caller's monitor and
//! demonitor signals to the server are absorbed. Every other frame goes to Python whole.
//!
//! A frame is a 4-byte big-endian length and a body (an empty body is a tick). Bodies we
//! answer are either pass-through (112, then each term with its version byte) or start with
//! a distribution header with no atom-cache references (131 68 0, terms without version).
//!
//! Everything here reads bytes from a peer that may be hostile: a count or length from the
//! wire sizes nothing before it is checked against what remains, terms are walked under
//! the node's limits (`wire_limits`), and a message over `max_message_size` (one frame, or
//! a fragmented message growing past it) is discarded as it streams in, its caller answered
//! `{error, overloaded}` when it is a call to the server: the connection, and every other
//! process on the peer node, goes on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use etf::decode::{decode_at_with, Limits};
use etf::tags::VERSION;

use crate::contract::{self, Message};
use crate::control::{DEMONITOR_P, MONITOR_P, MONITOR_P_EXIT, PAYLOAD_MONITOR_P_EXIT, REG_SEND, SPAWN_REQUEST, SPAWN_REQUEST_TT};
use crate::frame::{is_fragment, terms_start, DIST_FRAG_HEADER, DIST_HEADER};
use crate::reader::Reader;
use crate::server::{Peer, Server};

/// The limits every term from a peer is decoded under: a message may take at most
/// `max_message_size` bytes on the wire, inflated (a compressed term), or once decoded (plus
/// `DECODER_ALLOWANCE`, so that however small the limit, the smallest messages decode).
pub fn wire_limits(max_message_size: usize) -> Limits {
    Limits {
        max_uncompressed_size: max_message_size,
        max_memory: max_message_size.saturating_add(DECODER_ALLOWANCE),
        ..Limits::default()
    }
}

/// What decoding any message costs before its first value: the decoder's first stacks.
const DECODER_ALLOWANCE: usize = 64 * 1024;

/// Body bytes of an oversized message read before it is refused: enough to find the caller
/// of a `$gen_call` (control message, `From`) in any message OTP sends.
const REFUSAL_PREFIX: usize = 64 * 1024;

/// The peer broke the protocol (fragments out of order, ...): close the connection.
#[derive(Debug)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const MAX_OPEN_SEQUENCES: usize = 1024;

/// A fragmented message being put back together: the fragment id expected next (they
/// count down to 1) and the content so far, behind a distribution header. A message that
/// grew past the limit is `discarding`: its body is gone, its later fragments are checked
/// for order and dropped.
struct Sequence {
    next: u64,
    body: Vec<u8>,
    discarding: bool,
}

pub struct FastPath {
    /// Bytes held by fragmented messages not yet complete (bounded by max_message_size).
    sequences_bytes: usize,
    pub peer: Arc<Peer>,
    /// The node's server, when it serves natives: the calls to it are answered here.
    pub server: Option<Arc<Server>>,
    limits: Limits,
    buffer: Vec<u8>,
    /// Bytes still to come of an oversized frame being discarded.
    skipping: usize,
    /// Messages over the size limit discarded on this connection.
    pub oversized: u64,
    /// The memory of the last fragmented message answered here, for the next one.
    spare: Vec<u8>,
    sequences: std::collections::HashMap<u64, Sequence>,
}

impl FastPath {
    pub fn new(peer: Arc<Peer>, server: Option<Arc<Server>>) -> Self {
        FastPath {
            sequences_bytes: 0,
            limits: wire_limits(peer.config.max_message_size),
            peer,
            server,
            buffer: Vec::new(),
            skipping: 0,
            oversized: 0,
            spare: Vec::new(),
            sequences: Default::default(),
        }
    }

    /// Lets go of the memory kept for the next fragmented message.
    pub fn release_spare(&mut self) {
        self.spare = Vec::new();
    }

    fn max_message_size(&self) -> usize {
        self.peer.config.max_message_size
    }

    /// Takes bytes from the socket. Replies it could make go to `out` (whole frames, ready
    /// to write); frame bodies for Python to `to_python` (once one is there, every later one
    /// too); returns the number of ticks seen.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>, to_python: &mut Vec<Vec<u8>>) -> Result<usize, FrameError> {
        if self.skipping > 0 {
            let skipped = self.skipping.min(data.len());
            self.skipping -= skipped;
            data = &data[skipped..];
        }
        let mut ticks = 0;
        if self.buffer.is_empty() {
            let used = self.frames(data, out, to_python, &mut ticks)?;
            self.buffer.extend_from_slice(&data[used..]);
        } else {
            self.buffer.extend_from_slice(data);
            let buffer = std::mem::take(&mut self.buffer);
            let used = self.frames(&buffer, out, to_python, &mut ticks);
            self.buffer = buffer;
            let used = used?;
            self.buffer.drain(..used);
        }
        Ok(ticks)
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Fragmented messages begun and not yet complete.
    pub fn open_sequences(&self) -> usize {
        self.sequences.len()
    }

    fn frames(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        to_python: &mut Vec<Vec<u8>>,
        ticks: &mut usize,
    ) -> Result<usize, FrameError> {
        let mut pos = 0;
        while data.len() - pos >= 4 {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            let available = data.len() - pos - 4;
            if len > self.max_message_size() {
                // Read no more of it than it takes to find its caller; the rest is skipped
                // as it arrives, never held.
                if available < len.min(REFUSAL_PREFIX) {
                    break;
                }
                let prefix = &data[pos + 4..pos + 4 + len.min(REFUSAL_PREFIX)];
                if is_fragment(prefix) {
                    // No BEAM makes a fragment larger than its fragment size, far below any limit.
                    return Err(FrameError(format!(
                        "fragment frame of {len} bytes, over the limit of {}",
                        self.max_message_size()
                    )));
                }
                self.refuse(prefix, out);
                let here = available.min(len);
                self.skipping = len - here;
                pos += 4 + here;
                continue;
            }
            if available < len {
                break;
            }
            let body = &data[pos + 4..pos + 4 + len];
            pos += 4 + len;
            if len == 0 {
                *ticks += 1;
            } else if is_fragment(body) {
                if let Some(mut whole) = self.fragment(body, out)? {
                    self.peer.config.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                    if !to_python.is_empty() || !self.answer(&whole, out) {
                        to_python.push(whole);
                    } else if whole.capacity() > self.spare.capacity() {
                        // Answered: its memory serves the next fragmented message.
                        whole.clear();
                        self.spare = whole;
                    }
                }
            } else {
                self.peer.config.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                if !to_python.is_empty() || !self.answer(body, out) {
                    // Behind a frame left to Python, every frame goes to Python too: frames
                    // are handled in order, and the earlier one may close the connection.
                    to_python.push(body.to_vec());
                }
            }
        }
        Ok(pos)
    }

    /// Puts fragmented messages back together: returns the whole message (as a frame body
    /// with a distribution header) when its last fragment arrives. A message that would pass
    /// the size limit, alone or with the others still open, is discarded from then on.
    fn fragment(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<Option<Vec<u8>>, FrameError> {
        let bad = |m: String| Err(FrameError(m));
        let first = body[1] == DIST_FRAG_HEADER;
        let header_len = if first { 19 } else { 18 };
        if body.len() < header_len {
            return bad("truncated fragment header".into());
        }
        let sequence = u64::from_be_bytes(body[2..10].try_into().unwrap());
        let id = u64::from_be_bytes(body[10..18].try_into().unwrap());
        let content = &body[header_len..];
        if id == 0 {
            return bad(format!("fragment id 0 in sequence {sequence}"));
        }
        let mut seq = if first {
            if body[18] != 0 {
                return bad(format!("fragment header with {} atom-cache references (none negotiated)", body[18]));
            }
            let mut whole = std::mem::take(&mut self.spare);
            whole.reserve(3 + content.len());
            whole.extend_from_slice(&[VERSION, DIST_HEADER, 0]);
            if id == 1 {
                whole.extend_from_slice(content);
                return Ok(Some(whole));
            }
            if self.sequences.len() >= MAX_OPEN_SEQUENCES {
                return bad(format!("more than {MAX_OPEN_SEQUENCES} fragmented messages at once"));
            }
            if self.sequences.contains_key(&sequence) {
                return bad(format!("fragment sequence {sequence} started twice"));
            }
            self.sequences_bytes += whole.len();
            Sequence { next: id, body: whole, discarding: false }
        } else {
            let Some(seq) = self.sequences.remove(&sequence) else {
                return bad(format!("fragment {id} of unknown sequence {sequence}"));
            };
            if id != seq.next {
                return bad(format!("fragment {id} of sequence {sequence}, expected {}", seq.next));
            }
            seq
        };
        if !seq.discarding {
            // All unfinished messages together (this one's bytes among them) stay within the
            // limit, so a peer cannot hold many of them half sent either.
            let over = self.sequences_bytes + content.len() > self.max_message_size();
            let keep = if over { REFUSAL_PREFIX.saturating_sub(seq.body.len()).min(content.len()) } else { content.len() };
            seq.body.extend_from_slice(&content[..keep]);
            self.sequences_bytes += keep;
            if over {
                self.refuse(&seq.body[..seq.body.len().min(REFUSAL_PREFIX)], out);
                self.sequences_bytes -= seq.body.len();
                seq.body = Vec::new();
                seq.discarding = true;
            }
        }
        if id > 1 {
            seq.next = id - 1;
            self.sequences.insert(sequence, seq);
            return Ok(None);
        }
        self.sequences_bytes -= seq.body.len();
        Ok((!seq.discarding).then_some(seq.body))
    }

    /// A message over the size limit, of which `prefix` is the start: counted, and when it is
    /// a call to the server its caller is answered `{error, overloaded}` (what it asked can
    /// never be answered; it need not wait for its timeout, nor its node lose the connection).
    fn refuse(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        self.oversized += 1;
        if let Some(server) = &self.server {
            server.refuse(&self.peer, &self.limits, prefix, out);
        }
    }

    /// True when the frame was dealt with here.
    fn answer(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(server) = self.server.as_ref() else { return false };
        let Some((start, versioned)) = terms_start(body) else { return false };
        let mut r = Reader::new(body, start, &self.limits);
        let server_pid = server.config.pid.as_slice();
        let found = (|| {
            r.version(versioned)?;
            let arity = r.tuple()?;
            let op = r.small_int()?;
            if op == MONITOR_P_EXIT as i64 || op == PAYLOAD_MONITOR_P_EXIT as i64 {
                // A resource holder the node monitors has exited (or a forgery: ignored).
                let from_proc = r.term()?;
                if r.term()? != server_pid {
                    return None;
                }
                let reference = r.term()?;
                let (term, _) = decode_at_with(reference, 0, &mut etf::decode::TermBuilder, &Limits::default()).ok()?;
                let etf::Term::Ref(reference) = &term else { return None };
                // The server monitors nothing else: an exit naming no monitor of the table is
                // dropped here too.
                server.resources.monitor_down(reference, from_proc, &self.peer.config.name);
                if op == PAYLOAD_MONITOR_P_EXIT as i64 {
                    r.version(versioned)?;
                }
                r.term()?; // the reason
                return r.at_end().then_some(Routed::Done);
            }
            if op == SPAWN_REQUEST as i64 || op == SPAWN_REQUEST_TT as i64 {
                return contract::spawn(&mut r, arity, versioned).map(Routed::Spawn);
            }
            if arity != 4 {
                return None;
            }
            match op as u8 {
                op @ (MONITOR_P | DEMONITOR_P) => {
                    r.term()?;
                    if op == DEMONITOR_P && r.peek() == Some(etf::tags::NEW_PID_EXT) {
                        // A caller gives up on a process spawned for it (erpc's timeout),
                        // or demonitors one of Python's processes.
                        r.pid()?;
                        let reference = r.term()?;
                        return r.at_end().then_some(Routed::DemonitorSpawned(reference));
                    }
                    // A caller's monitor of the server, for the length of one call: the
                    // server lives as long as the node, so there is nothing to keep, unless
                    // the call is in flight and its caller gives up.
                    if r.atom()? != contract::SERVER_NAME.as_bytes() {
                        return None;
                    }
                    let reference = r.term()?;
                    if !r.at_end() {
                        return None;
                    }
                    Some(if op == DEMONITOR_P { Routed::Demonitor(reference) } else { Routed::Done })
                }
                REG_SEND => {
                    let sender = r.term()?;
                    r.term()?;
                    if r.atom()? != contract::SERVER_NAME.as_bytes() {
                        return None;
                    }
                    r.version(versioned)?;
                    let message = contract::message(&mut r)?;
                    r.at_end().then_some(Routed::Message(sender, message))
                }
                _ => None,
            }
        })();
        match found {
            None => false,
            Some(Routed::Done) => true,
            Some(Routed::Demonitor(reference)) => {
                server.demonitor(reference, &self.peer.config.name);
                true
            }
            Some(Routed::DemonitorSpawned(reference)) => server.demonitor(reference, &self.peer.config.name),
            Some(Routed::Spawn(spawn)) => {
                server.clone().spawn(&self.peer, spawn, out);
                true
            }
            Some(Routed::Message(sender, message)) => {
                server.clone().handle(&self.peer, Some(sender), message, out);
                true
            }
        }
    }
}

/// Where `answer` found a frame to go.
enum Routed<'a> {
    Done,
    Demonitor(&'a [u8]),
    /// A DEMONITOR_P of a pid: answered here when it names a spawned process's monitor.
    DemonitorSpawned(&'a [u8]),
    Spawn(contract::Spawn<'a>),
    Message(&'a [u8], Message<'a>),
}

impl Server {
    /// The caller of a message over the size limit, of which `prefix` is the start (a frame
    /// body), answered `{error, overloaded}` when the message is a `$gen_call` to the server;
    /// false otherwise (nothing written). Counted as a call and an error.
    pub fn refuse(&self, peer: &Arc<Peer>, limits: &Limits, prefix: &[u8], out: &mut Vec<u8>) -> bool {
        self.stats.oversized.fetch_add(1, Ordering::Relaxed);
        let Some((start, versioned)) = terms_start(prefix) else { return false };
        let mut r = Reader::new(prefix, start, limits);
        let call = (|| {
            r.version(versioned)?;
            if r.tuple()? != 4 || r.small_int()? != REG_SEND as i64 {
                return None;
            }
            r.term()?;
            r.term()?;
            if r.atom()? != contract::SERVER_NAME.as_bytes() {
                return None;
            }
            r.version(versioned)?;
            contract::call_header(&mut r)
        })();
        let Some((caller, node)) = call else { return false };
        let mut reply = Vec::with_capacity(24);
        rustelixir_nif::reply::write_error(&mut reply, rustelixir_nif::reply::Reason::Overloaded);
        self.answered(&reply);
        self.reply_to(peer, node, caller, &reply, Some(out));
        true
    }
}
