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

use etf::decode::{decode_at_with, Builder, Limits};
use etf::tags::*;
use etf::{DecodeError, Export, Fun, Port};
use std::vec::Drain;

use crate::registry;
use rustelixir_nif::NativeEntry;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

const PASS_THROUGH: u8 = 112;
const DIST_HEADER: u8 = 68;
const DIST_FRAG_HEADER: u8 = 69;
const DIST_FRAG_CONT: u8 = 70;
const REG_SEND: i64 = 6;
const MONITOR_P: i64 = 19;
const DEMONITOR_P: i64 = 20;
const MONITOR_P_EXIT: i64 = 21;
const PAYLOAD_MONITOR_P_EXIT: i64 = 28;
const SEND: u8 = 2;
const SEND_SENDER: u8 = 22;
const ALIAS_SEND: u8 = 33;

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

#[derive(Clone)]
pub struct Config {
    /// The peer's node name: the fast path answers only callers living on that node (a
    /// `From` forwarded from a third node is answered by Python, which routes by pid).
    pub peer_name: Vec<u8>,
    /// The registered name whose calls the fast path answers; None: every frame to Python.
    pub server_name: Option<Vec<u8>>,
    /// The server's pid, encoded without version byte: the sender of replies.
    pub server_pid: Vec<u8>,
    pub alias: bool,
    pub send_sender: bool,
    /// The peer offered FRAGMENTS: send a distribution header (and fragments when large).
    pub header: bool,
    pub max_message_size: usize,
    pub fragment_size: usize,
    /// Monitor references (encoded) of calls Python runs, whose DEMONITOR_P must reach
    /// Python: it cancels the call.
    pub watched: Arc<Mutex<HashSet<Vec<u8>>>>,
}

#[derive(Default)]
pub struct Stats {
    pub calls: u64,
    pub errors: u64,
    /// Messages over the size limit, discarded (their callers, if any, answered overloaded).
    pub oversized: u64,
}

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
    /// Report ticks as empty bodies among the others (keeping their order) rather than count them.
    pub ticks_as_frames: bool,
    pub config: Config,
    limits: Limits,
    buffer: Vec<u8>,
    /// Bytes still to come of an oversized frame being discarded.
    skipping: usize,
    pub stats: Stats,
    sequences: std::collections::HashMap<u64, Sequence>,
}

/// Walks a term without building anything, to find where it ends.
struct Skip;

impl Builder for Skip {
    type Value = ();
    type Error = DecodeError;
    fn int(&mut self, _: i64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn big_int(&mut self, _: bool, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn float(&mut self, _: f64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn atom(&mut self, _: &str) -> Result<(), DecodeError> {
        Ok(())
    }
    fn binary(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn bitstring(&mut self, _: &[u8], _: u8) -> Result<(), DecodeError> {
        Ok(())
    }
    fn pid(&mut self, _: &str, _: u32, _: u32, _: u32) -> Result<(), DecodeError> {
        Ok(())
    }
    fn port(&mut self, _: Port) -> Result<(), DecodeError> {
        Ok(())
    }
    fn reference(&mut self, _: &str, _: u32, _: &[u32]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn fun(&mut self, _: Fun) -> Result<(), DecodeError> {
        Ok(())
    }
    fn export(&mut self, _: Export) -> Result<(), DecodeError> {
        Ok(())
    }
    fn tuple(&mut self, _: Drain<'_, ()>) -> Result<(), DecodeError> {
        Ok(())
    }
    fn list(&mut self, _: Drain<'_, ()>, _: Option<()>) -> Result<(), DecodeError> {
        Ok(())
    }
    fn string(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn map(&mut self, _: Drain<'_, ()>, _: usize) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// Reads the bytes of one call as far as the fast path needs; `None` means "not ours, or
/// not well-formed: let Python look at it" (Python then answers or complains properly).
struct Reader<'a, 'l> {
    data: &'a [u8],
    pos: usize,
    limits: &'l Limits,
}

impl<'a> Reader<'a, '_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn version(&mut self, versioned: bool) -> Option<()> {
        if versioned {
            (self.byte()? == VERSION).then_some(())
        } else {
            Some(())
        }
    }

    fn tuple(&mut self) -> Option<usize> {
        match self.byte()? {
            SMALL_TUPLE_EXT => Some(self.byte()? as usize),
            LARGE_TUPLE_EXT => {
                let b = self.data.get(self.pos..self.pos + 4)?;
                self.pos += 4;
                Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
            }
            _ => None,
        }
    }

    fn small_int(&mut self) -> Option<i64> {
        match self.byte()? {
            SMALL_INTEGER_EXT => Some(self.byte()? as i64),
            INTEGER_EXT => {
                let b = self.data.get(self.pos..self.pos + 4)?;
                self.pos += 4;
                Some(i32::from_be_bytes(b.try_into().ok()?) as i64)
            }
            _ => None,
        }
    }

    /// An atom's name; legacy Latin-1 atoms only when ASCII (so the bytes are its UTF-8).
    fn atom(&mut self) -> Option<&'a [u8]> {
        let tag = self.byte()?;
        let len = match tag {
            SMALL_ATOM_UTF8_EXT | SMALL_ATOM_EXT => self.byte()? as usize,
            ATOM_UTF8_EXT | ATOM_EXT => {
                let b = self.data.get(self.pos..self.pos + 2)?;
                self.pos += 2;
                u16::from_be_bytes([b[0], b[1]]) as usize
            }
            _ => return None,
        };
        let name = self.data.get(self.pos..self.pos + len)?;
        self.pos += len;
        if (tag == SMALL_ATOM_EXT || tag == ATOM_EXT) && !name.is_ascii() {
            return None;
        }
        Some(name)
    }

    /// The bytes of the next term, whatever it is (a compressed term only comes whole, at
    /// the top: one inside a message is left to Python, which refuses it).
    fn term(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        if matches!(self.data.get(start), Some(&COMPRESSED) | Some(&VERSION)) {
            return None;
        }
        let (_, end) = decode_at_with(self.data, start, &mut Skip, self.limits).ok()?;
        self.pos = end;
        Some(&self.data[start..end])
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }
}

/// The `From` of a `$gen_call`: who to answer, and how.
struct Caller<'a> {
    pid: &'a [u8],
    tag: &'a [u8],
    alias: Option<&'a [u8]>,
}

/// What the fast path found in a call it answers.
struct Call<'a> {
    caller: Caller<'a>,
    native: &'static NativeEntry,
    args: Vec<&'a [u8]>,
}

/// A frame body that is a fragment of a message (its first, or a later one).
fn is_fragment(body: &[u8]) -> bool {
    matches!(body, [VERSION, DIST_FRAG_HEADER | DIST_FRAG_CONT, ..])
}

/// Where the terms of a frame body start, and whether each has its version byte.
fn terms_start(body: &[u8]) -> Option<(usize, bool)> {
    match body {
        [PASS_THROUGH, VERSION, ..] => Some((1, true)),
        [VERSION, DIST_HEADER, 0, ..] => Some((3, false)),
        _ => None,
    }
}

impl FastPath {
    pub fn new(config: Config) -> Self {
        FastPath {
            sequences_bytes: 0,
            ticks_as_frames: false,
            limits: wire_limits(config.max_message_size),
            config,
            buffer: Vec::new(),
            skipping: 0,
            stats: Stats::default(),
            sequences: Default::default(),
        }
    }

    /// Takes bytes from the socket. Replies it could make go to `out` (whole frames, ready
    /// to write); frame bodies for Python to `to_python`; returns the number of ticks seen.
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
            if len > self.config.max_message_size {
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
                        self.config.max_message_size
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
                if self.ticks_as_frames {
                    to_python.push(Vec::new());
                } else {
                    *ticks += 1;
                }
            } else if is_fragment(body) {
                if let Some(whole) = self.fragment(body, out)? {
                    if !self.answer(&whole, out) {
                        to_python.push(whole);
                    }
                }
            } else if !self.answer(body, out) {
                to_python.push(body.to_vec());
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
            let mut whole = Vec::with_capacity(3 + content.len());
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
            let over = self.sequences_bytes + content.len() > self.config.max_message_size;
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
    fn refuse(&mut self, prefix: &[u8], out: &mut Vec<u8>) -> bool {
        self.stats.oversized += 1;
        if !refusal(&self.config, &self.limits, prefix, out) {
            return false;
        }
        self.stats.calls += 1;
        self.stats.errors += 1;
        true
    }

    /// True when the frame was dealt with here.
    fn answer(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(server) = self.config.server_name.as_deref() else { return false };
        let Some((start, versioned)) = terms_start(body) else { return false };
        let mut r = Reader { data: body, pos: start, limits: &self.limits };
        let parsed = (|| {
            r.version(versioned)?;
            let arity = r.tuple()?;
            let op = r.small_int()?;
            if op == MONITOR_P_EXIT || op == PAYLOAD_MONITOR_P_EXIT {
                // A resource holder the node monitors has exited (or a forgery: ignored).
                let from_proc = r.term()?;
                if r.term()? != self.config.server_pid.as_slice() {
                    return None;
                }
                let reference = r.term()?;
                let (term, _) = decode_at_with(reference, 0, &mut etf::decode::TermBuilder, &Limits::default()).ok()?;
                let etf::Term::Ref(reference) = &term else { return None };
                let exit = rustelixir_nif::resource::monitor_down(reference, from_proc, &self.config.peer_name);
                return (exit != rustelixir_nif::resource::MonitorExit::Unknown).then_some(None);
            }
            if arity != 4 {
                return None;
            }
            match op {
                op @ (MONITOR_P | DEMONITOR_P) => {
                    // A caller's monitor of the server, for the length of one call: the
                    // server lives as long as the connection, so there is nothing to keep,
                    // unless Python runs that call and must hear that its caller gave up.
                    r.term()?;
                    if r.atom()? != server {
                        return None;
                    }
                    let reference = r.term()?;
                    if op == DEMONITOR_P && self.config.watched.lock().unwrap().contains(reference) {
                        return None;
                    }
                    (r.pos == body.len()).then_some(None)
                }
                REG_SEND => {
                    r.term()?;
                    r.term()?;
                    if r.atom()? != server {
                        return None;
                    }
                    r.version(versioned)?;
                    let call = gen_call(&mut r, &self.config.peer_name)?;
                    (r.pos == body.len()).then_some(Some(call))
                }
                _ => None,
            }
        })();
        match parsed {
            None => false,
            Some(None) => true,
            Some(Some(call)) => {
                self.reply(&call, out);
                true
            }
        }
    }

    fn reply(&mut self, call: &Call<'_>, out: &mut Vec<u8>) {
        let (reply, touched) = rustelixir_nif::resource::with_caller(Some(call.caller.pid), || {
            rustelixir_nif::call_entry(call.native, &call.args, None)
        });
        if touched {
            // The caller may have just become a holder: monitor it, before the reply.
            if let Some(holder) = rustelixir_nif::resource::canonical_holder(call.caller.pid) {
                if let Some(monitor) = rustelixir_nif::resource::take_monitor_for(&holder) {
                    let mut control = vec![SMALL_TUPLE_EXT, 4, SMALL_INTEGER_EXT, MONITOR_P as u8];
                    control.extend_from_slice(&self.config.server_pid);
                    control.extend_from_slice(call.caller.pid);
                    let _ = etf::encode::put_reference(&mut control, &monitor);
                    write_message(&self.config, &control, &[], out);
                }
            }
        }
        self.stats.calls += 1;
        if reply.starts_with(&[SMALL_TUPLE_EXT, 2, SMALL_ATOM_UTF8_EXT, 5, b'e', b'r', b'r', b'o', b'r']) {
            self.stats.errors += 1;
        }
        write_reply(&self.config, &call.caller, &reply, out);
    }
}

/// The caller of a message over the size limit, of which `prefix` is the start, answered
/// `{error, overloaded}` when the message is a `$gen_call` to the server from a process
/// on the peer node; false otherwise (nothing written).
pub fn refusal(config: &Config, limits: &Limits, prefix: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(server) = config.server_name.as_deref() else { return false };
    let Some((start, versioned)) = terms_start(prefix) else { return false };
    let mut r = Reader { data: prefix, pos: start, limits };
    let caller = (|| {
        r.version(versioned)?;
        if r.tuple()? != 4 || r.small_int()? != REG_SEND {
            return None;
        }
        r.term()?;
        r.term()?;
        if r.atom()? != server {
            return None;
        }
        r.version(versioned)?;
        call_header(&mut r, &config.peer_name)
    })();
    let Some(caller) = caller else { return false };
    let mut reply = Vec::with_capacity(24);
    rustelixir_nif::write_overloaded(&mut reply);
    write_reply(config, &caller, &reply, out);
    true
}

/// `{'$gen_call', {Caller, Tag}, ...`: the caller, when it lives on the peer node (a `From`
/// forwarded from a third node is answered by Python, which routes by pid).
fn call_header<'a>(r: &mut Reader<'a, '_>, peer_name: &[u8]) -> Option<Caller<'a>> {
    if r.tuple()? != 3 || r.atom()? != b"$gen_call" || r.tuple()? != 2 {
        return None;
    }
    let caller_at = r.pos;
    if !matches!(r.peek()?, NEW_PID_EXT | PID_EXT) {
        return None;
    }
    r.byte()?;
    if r.atom()? != peer_name {
        return None;
    }
    r.pos = caller_at;
    let pid = r.term()?;
    let tag_start = r.pos;
    let alias = alias_in_tag(r);
    r.pos = tag_start;
    let tag = r.term()?;
    Some(Caller { pid, tag, alias })
}

/// `{'$gen_call', {Caller, Tag}, {fun, args...} | fun}` for a quick built-in native.
fn gen_call<'a>(r: &mut Reader<'a, '_>, peer_name: &[u8]) -> Option<Call<'a>> {
    let caller = call_header(r, peer_name)?;
    let (name, args) = match r.peek()? {
        SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
            let n = r.tuple()?;
            if n == 0 {
                return None;
            }
            let name = r.atom()?;
            // The arity comes from the wire: the arguments are collected as they are
            // found, never room made for as many as it claims.
            let mut args = Vec::new();
            for _ in 1..n {
                args.push(r.term()?);
            }
            (name, args)
        }
        _ => (r.atom()?, Vec::new()),
    };
    let native = if name == b"release" && args.len() == 1 {
        &crate::builtins::RELEASE
    } else {
        registry::find(name, args.len()).filter(|e| !e.is_slow())?
    };
    Some(Call { caller, native, args })
}

/// The alias reference of an OTP 24+ tag `[alias | Ref]`.
fn alias_in_tag<'a>(r: &mut Reader<'a, '_>) -> Option<&'a [u8]> {
    if r.byte()? != LIST_EXT {
        return None;
    }
    let b = r.data.get(r.pos..r.pos + 4)?;
    r.pos += 4;
    if u32::from_be_bytes(b.try_into().ok()?) != 1 || r.atom()? != b"alias" {
        return None;
    }
    if r.peek()? != NEWER_REFERENCE_EXT {
        return None;
    }
    r.term()
}

/// `{Tag, Reply}` to a caller: by ALIAS_SEND when the peer offered ALIAS and the tag carries
/// one, else SEND_SENDER or SEND to its pid.
fn write_reply(config: &Config, caller: &Caller<'_>, reply: &[u8], out: &mut Vec<u8>) {
    let mut message = Vec::with_capacity(reply.len() + caller.tag.len() + 4);
    message.extend_from_slice(&[SMALL_TUPLE_EXT, 2]);
    message.extend_from_slice(caller.tag);
    message.extend_from_slice(reply);
    let mut control = Vec::with_capacity(64);
    match (config.alias, caller.alias) {
        (true, Some(alias)) => {
            control.extend_from_slice(&[SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, ALIAS_SEND]);
            control.extend_from_slice(&config.server_pid);
            control.extend_from_slice(alias);
        }
        _ if config.send_sender => {
            control.extend_from_slice(&[SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, SEND_SENDER]);
            control.extend_from_slice(&config.server_pid);
            control.extend_from_slice(caller.pid);
        }
        _ => {
            control.extend_from_slice(&[SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, SEND]);
            etf::encode::put_atom(&mut control, "").unwrap();
            control.extend_from_slice(caller.pid);
        }
    }
    write_message(config, &control, &message, out);
}

/// One message (control + payload, both without version bytes) as frames: a distribution
/// header for a peer with FRAGMENTS (fragments when large), else pass-through.
pub fn write_message(config: &Config, control: &[u8], message: &[u8], out: &mut Vec<u8>) {
    if !config.header {
        // An empty `message`: a control message without payload.
        let len = 1 + 1 + control.len() + if message.is_empty() { 0 } else { 1 + message.len() };
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(&[PASS_THROUGH, VERSION]);
        out.extend_from_slice(control);
        if !message.is_empty() {
            out.push(VERSION);
            out.extend_from_slice(message);
        }
        return;
    }
    let size = control.len() + message.len();
    if size <= config.fragment_size {
        out.reserve(7 + size);
        out.extend_from_slice(&((3 + size) as u32).to_be_bytes());
        out.extend_from_slice(&[VERSION, DIST_HEADER, 0]);
        out.extend_from_slice(control);
        out.extend_from_slice(message);
        return;
    }
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let count = size.div_ceil(config.fragment_size);
    out.reserve(size + count * 24);
    let mut remaining_control = control;
    let mut remaining_message = message;
    for index in 0..count {
        let fragment = (count - index) as u64;
        let chunk = config.fragment_size.min(remaining_control.len() + remaining_message.len());
        let header_len = if index == 0 { 19 } else { 18 };
        out.extend_from_slice(&((header_len + chunk) as u32).to_be_bytes());
        out.push(VERSION);
        out.push(if index == 0 { DIST_FRAG_HEADER } else { DIST_FRAG_CONT });
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&fragment.to_be_bytes());
        if index == 0 {
            out.push(0);
        }
        let from_control = chunk.min(remaining_control.len());
        out.extend_from_slice(&remaining_control[..from_control]);
        remaining_control = &remaining_control[from_control..];
        let from_message = chunk - from_control;
        out.extend_from_slice(&remaining_message[..from_message]);
        remaining_message = &remaining_message[from_message..];
    }
}
