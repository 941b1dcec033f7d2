//! A connection to a peer node after the handshake, owned by two Rust threads, so neither a
//! busy native, the GIL, the event loop nor a peer that stops reading can stall the node:
//!
//! - the reader reads the socket, answers the calls to the node's server (`fast_path`,
//!   `server`) and the monitors the server owes, queues the other
//!   frames for Python and wakes it by one byte on a pipe it watches (`loop.add_reader`);
//!   it watches for silence (net_ticktime), and stops reading while Python is behind (so
//!   TCP slows the peer down instead of the node's memory growing);
//! - the writer drains one outgoing queue (fast-path replies and Python's messages, whole
//!   messages each, so they never interleave), sends a tick when there was nothing to send
//!   for a quarter of net_ticktime, and drops a peer that takes nothing for net_ticktime.
//!
//! Python never blocks on the socket: `send` only queues, and refuses past a bound.
//!
//! Over TLS (`-proto_dist inet_tls`) the same threads carry the connection: the session the
//! handshake made is the link's, the reader decrypts what it reads and whoever writes
//! encrypts what it writes, so the fast path, ticks and backpressure work as over TCP.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fast_path::{wire_limits, FastPath, FrameError};
use crate::frame::{PeerConfig, PeerCounters, TICK};
use crate::server::{Peer, Server, Sink};
use crate::tls::TlsSession;

/// The reader's buffer, as it starts and as it returns to a second after a burst.
const READ_BUFFER: usize = 256 * 1024;
/// Frames queued for Python past which the reader stops reading.
const INBOX_HIGH: usize = 64 << 20;
/// How long the reader keeps looking for the peer's next bytes, giving up the CPU between
/// looks, before it sleeps in `read`. Calls that stream in are then read without a thread
/// wake-up each: on a virtual machine a sleep and a wake-up cost more than a quick call
/// (at 64 callers they were 0.6 context switches and a third of the node's CPU per call).
const READ_SPIN: Duration = Duration::from_micros(50);
/// Plaintext encrypted at once before its records are written: a large message goes out
/// as it is encrypted, never held whole a second time as records.
const TLS_BATCH: usize = 64 * 1024;

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    ticks: usize,
    closed: Option<String>,
    notified: bool,
    /// Python took frames and has not said it has handled them: the reader reads no more
    /// until it has (a frame it handles may close the connection, and what follows it on
    /// the wire must not be answered before).
    handling: bool,
}

#[derive(Default)]
struct Outbox {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    /// Bytes of the first chunk already sent (by a sender that wrote part of it at once).
    front_sent: usize,
    /// TLS records wait to be written (a sender's the socket did not take at once, or the
    /// reader's session made some): the writer thread writes them.
    flush: bool,
}

/// How the bytes go on and off the wire.
enum Wire {
    Plain,
    /// Through the connection's one TLS session: the reader decrypts and the writers
    /// encrypt under its lock; records are made and written in one order (under the write
    /// lock), as TLS numbers them.
    Tls(Mutex<TlsSession>),
}

struct Shared {
    stream: TcpStream,
    wire: Wire,
    /// Held by whoever writes to the socket (the writer thread, or a sender writing at once),
    /// taken before the outbox lock. It holds the TLS records made and not yet written,
    /// which its next holder writes before anything else (over TCP: always empty).
    write_lock: Mutex<Vec<u8>>,
    inbox: Mutex<Inbox>,
    inbox_space: Condvar,
    outbox: Mutex<Outbox>,
    outbox_changed: Condvar,
    /// Bytes queued to send past which the reader waits (fast-path replies) and Python's
    /// sends are refused (the peer is not reading).
    outbox_limit: usize,
    notify: Mutex<Option<File>>,
    closing: AtomicBool,
    /// The connection's traffic (its config's, shared with the framer and the fast path).
    counters: Arc<PeerCounters>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn push_inbox(&self, frames: Vec<Vec<u8>>, ticks: usize, closed: Option<String>) {
        let wake = {
            let mut inbox = lock(&self.inbox);
            inbox.bytes += frames.iter().map(Vec::len).sum::<usize>();
            inbox.frames.extend(frames);
            inbox.ticks += ticks;
            if closed.is_some() && inbox.closed.is_none() {
                inbox.closed = closed;
            }
            let wake = !inbox.notified && (!inbox.frames.is_empty() || inbox.closed.is_some());
            if wake {
                inbox.notified = true;
            }
            wake
        };
        if wake {
            if let Some(notify) = lock(&self.notify).as_mut() {
                let _ = notify.write(&[1]);
            }
        }
    }

    /// Sends a whole message (or several): at once, without blocking, when nothing is queued
    /// and nobody is writing (the common case: no thread hop on the way out), the rest
    /// queued for the writer thread. `wait`: block while the queue is over its limit (the
    /// reader's backpressure); otherwise refuse.
    fn send(&self, mut data: Vec<u8>, wait: bool) -> Result<(), String> {
        self.send_buf(&mut data, wait)
    }

    /// `send` of a buffer the caller keeps: emptied (its capacity kept for the next
    /// message, so a large reply does not fault in fresh pages every time) when it all went
    /// at once, else taken for the writer thread.
    fn send_buf(&self, data: &mut Vec<u8>, wait: bool) -> Result<(), String> {
        if let Ok(mut unsent) = self.write_lock.try_lock() {
            let idle = lock(&self.outbox).chunks.is_empty();
            if idle {
                let sent = self.write_now(&mut unsent, &[data]);
                if sent == data.len() {
                    data.clear();
                } else {
                    // The rest is the writer's, from where the socket stopped taking it (no copy).
                    self.queue_first(std::mem::take(data), sent);
                }
                return Ok(());
            }
        }
        self.push_outbox(std::mem::take(data), wait)
    }

    /// `send` of frames given as slices, for the connection's reader: written from where
    /// they lie when nobody else is writing and nothing waits (the rest, if the socket takes
    /// only part, copied for the writer), else copied and queued (waiting, as the reader's
    /// own replies do, while the queue is over its bound).
    fn send_slices(&self, slices: &[&[u8]]) -> Result<(), String> {
        if let Ok(mut unsent) = self.write_lock.try_lock() {
            if lock(&self.outbox).chunks.is_empty() {
                let total: usize = slices.iter().map(|s| s.len()).sum();
                let sent = self.write_now(&mut unsent, slices);
                if sent == total {
                    return Ok(());
                }
                let mut rest = Vec::with_capacity(total - sent);
                let mut skip = sent;
                for slice in slices {
                    let from = skip.min(slice.len());
                    skip -= from;
                    rest.extend_from_slice(&slice[from..]);
                }
                self.queue_first(rest, 0);
                return Ok(());
            }
        }
        self.push_outbox(slices.concat(), true)
    }

    /// Writes `slices` without blocking, as far as the socket takes them; how many of their
    /// bytes went (over TLS: were encrypted, the records the socket did not take left in
    /// `unsent` for the writer thread). The caller holds the write lock (`unsent`).
    fn write_now(&self, unsent: &mut Vec<u8>, slices: &[&[u8]]) -> usize {
        let Wire::Tls(session) = &self.wire else { return self.send_vectored_now(slices) };
        let mut taken = 0;
        if self.flush_now(unsent) {
            taken = in_batches(slices, |piece| {
                lock(session).encrypt(piece, unsent);
                self.flush_now(unsent)
            });
        }
        if !unsent.is_empty() {
            self.wake_writer_to_flush();
        }
        taken
    }

    /// Writes the records in `unsent` without blocking, as far as the socket takes them;
    /// true when they all went.
    fn flush_now(&self, unsent: &mut Vec<u8>) -> bool {
        if !unsent.is_empty() {
            let sent = self.send_vectored_now(&[unsent]);
            unsent.drain(..sent);
        }
        unsent.is_empty()
    }

    /// TLS records wait to be written: the writer thread writes them (now, not at the next
    /// message or tick).
    fn wake_writer_to_flush(&self) {
        lock(&self.outbox).flush = true;
        self.outbox_changed.notify_all();
    }

    /// Non-blocking vectored sends until the socket takes no more; how many bytes went.
    fn send_vectored_now(&self, slices: &[&[u8]]) -> usize {
        const IOV_MAX: usize = 1024;
        let fd = self.stream.as_raw_fd();
        let mut sent = 0;
        let mut first = 0; // the first slice not wholly sent
        let mut offset = 0; // bytes of it sent
        while first < slices.len() {
            let iov: Vec<libc::iovec> = slices[first..]
                .iter()
                .take(IOV_MAX)
                .enumerate()
                .map(|(i, s)| {
                    let s = if i == 0 { &s[offset..] } else { s };
                    libc::iovec { iov_base: s.as_ptr() as *mut libc::c_void, iov_len: s.len() }
                })
                .collect();
            // SAFETY: a zeroed msghdr is valid; it points at `iov`, alive for the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iov.len() as _;
            // SAFETY: a valid socket and live buffers; MSG_DONTWAIT never blocks.
            let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if n <= 0 {
                break; // full, interrupted or failed: the writer thread takes over (and sees errors)
            }
            let mut n = n as usize;
            sent += n;
            self.counters.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            while n > 0 && first < slices.len() {
                let left = slices[first].len() - offset;
                if n >= left {
                    n -= left;
                    first += 1;
                    offset = 0;
                } else {
                    offset += n;
                    n = 0;
                }
            }
            while first < slices.len() && slices[first].len() == offset {
                first += 1;
                offset = 0;
            }
        }
        sent
    }

    /// Hands the writer the rest of a message a sender began writing (the outbox was empty
    /// and the sender held the write lock): `chunk` from its byte `sent` on.
    fn queue_first(&self, chunk: Vec<u8>, sent: usize) {
        let mut out = lock(&self.outbox);
        out.bytes += chunk.len() - sent;
        out.front_sent = sent;
        out.chunks.push_front(chunk);
        self.outbox_changed.notify_all();
    }

    fn push_outbox(&self, data: Vec<u8>, wait: bool) -> Result<(), String> {
        let mut out = lock(&self.outbox);
        while out.bytes > self.outbox_limit {
            if !wait {
                return Err(format!(
                    "{} bytes already queued to a peer that does not read them",
                    out.bytes
                ));
            }
            if self.closing.load(Ordering::Relaxed) {
                return Err("closed".into());
            }
            out = self.outbox_changed.wait_timeout(out, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
        }
        out.bytes += data.len();
        out.chunks.push_back(data);
        self.outbox_changed.notify_all();
        Ok(())
    }

    /// Stops both threads (once) and tells Python why.
    fn close(&self, reason: String) {
        if !self.closing.swap(true, Ordering::Relaxed) {
            let _ = self.stream.shutdown(Shutdown::Both);
            self.push_inbox(Vec::new(), 0, Some(reason));
        }
        self.outbox_changed.notify_all();
        self.inbox_space.notify_all();
    }
}

/// Frames for the peer, from anyone (the server's replies, Python's messages).
struct LinkSink(Arc<Shared>);

impl Sink for LinkSink {
    fn send(&self, frames: Vec<u8>) -> Result<(), String> {
        if self.0.closing.load(Ordering::Relaxed) {
            return Err("connection closed".into());
        }
        self.0.send(frames, false)
    }

    fn send_vectored(&self, slices: &[&[u8]]) -> Result<(), String> {
        if self.0.closing.load(Ordering::Relaxed) {
            return Err("connection closed".into());
        }
        self.0.send_slices(slices)
    }
}

/// One peer's connection after the handshake, owned by its two threads.
pub struct Link {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    server: Option<Arc<Server>>,
    threads: Vec<JoinHandle<()>>,
}

impl Link {
    /// Takes over the connected socket and starts the threads. `leftover` is what arrived
    /// after the handshake (plaintext, over TLS); `notify` the write end of a pipe Python
    /// watches for frames the link leaves to it. A peer silent for `ticktime`, or not taking
    /// what we send for as long, is dropped; a tick goes out whenever nothing was sent for a
    /// quarter of it. With `tls`, the connection's session: everything goes through it
    /// (records it holds unwritten, as the handshake's last message may be, go out first).
    pub fn start(
        stream: TcpStream,
        leftover: Vec<u8>,
        notify: File,
        config: PeerConfig,
        server: Option<Arc<Server>>,
        ticktime: Duration,
        tls: Option<TlsSession>,
    ) -> std::io::Result<Link> {
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let interval = (ticktime / 4).max(Duration::from_millis(10));
        let reader_stream = stream.try_clone()?;
        reader_stream.set_read_timeout(Some(interval))?;
        let writer_stream = stream.try_clone()?;
        writer_stream.set_write_timeout(Some(interval))?;
        let flush = tls.as_ref().is_some_and(TlsSession::wants_write);
        let shared = Arc::new(Shared {
            stream,
            wire: tls.map_or(Wire::Plain, |session| Wire::Tls(Mutex::new(session))),
            write_lock: Mutex::new(Vec::new()),
            inbox: Mutex::new(Inbox::default()),
            inbox_space: Condvar::new(),
            outbox: Mutex::new(Outbox { flush, ..Outbox::default() }),
            outbox_changed: Condvar::new(),
            outbox_limit: config.max_message_size.saturating_mul(2).max(64 << 20),
            notify: Mutex::new(Some(notify)),
            closing: AtomicBool::new(false),
            counters: config.counters.clone(),
        });
        let peer = Arc::new(Peer::new(config, Box::new(LinkSink(shared.clone()))));
        if let Some(server) = &server {
            server.peer_up(peer.clone());
        }
        let fast = FastPath::new(peer.clone(), server.clone());
        let s1 = shared.clone();
        let reader = std::thread::Builder::new()
            .name("rustelixir-read".into())
            .spawn(move || read_loop(reader_stream, s1, fast, leftover, ticktime))?;
        let s2 = shared.clone();
        let writer = std::thread::Builder::new()
            .name("rustelixir-write".into())
            .spawn(move || write_loop(writer_stream, s2, interval, ticktime))?;
        Ok(Link { shared, peer, server, threads: vec![reader, writer] })
    }

    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }

    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Relaxed)
    }

    /// One message for the peer (control and payload encoded without version bytes; an
    /// empty payload: none), framed here; never blocks. An error: the peer does not read
    /// what it is sent (close the connection), or the connection is closed.
    pub fn send_message(&self, control: &[u8], payload: &[u8]) -> Result<(), String> {
        self.peer.send_message(control, payload)
    }

    /// A message that could not be decoded within the node's limits (`body`, a frame body):
    /// when it is a call to the server its caller is answered `{error, overloaded}` and this
    /// returns true.
    pub fn refuse(&self, body: &[u8]) -> Result<bool, String> {
        let Some(server) = &self.server else { return Ok(false) };
        let mut out = Vec::new();
        let limits = wire_limits(self.peer.config.max_message_size);
        if !server.refuse(&self.peer, &limits, body, &mut out) {
            return Ok(false);
        }
        self.peer.send_frames(out)?;
        Ok(true)
    }

    /// What the reader left to Python: (frame bodies, ticks seen, why it closed or None).
    pub fn take(&self) -> (Vec<Vec<u8>>, usize, Option<String>) {
        let taken = {
            let mut inbox = lock(&self.shared.inbox);
            inbox.notified = false;
            let frames: Vec<Vec<u8>> = inbox.frames.drain(..).collect();
            inbox.handling |= !frames.is_empty();
            inbox.bytes = 0;
            let ticks = std::mem::take(&mut inbox.ticks);
            (frames, ticks, inbox.closed.clone())
        };
        self.shared.inbox_space.notify_all();
        taken
    }

    /// (bytes in, bytes out, messages in, messages out, frames waiting for Python).
    pub fn traffic(&self) -> (u64, u64, u64, u64, usize) {
        let c = &self.shared.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let waiting = lock(&self.shared.inbox).frames.len();
        (load(&c.bytes_in), load(&c.bytes_out), load(&c.messages_in), load(&c.messages_out), waiting)
    }

    /// Python has handled the frames it took: the reader goes on.
    pub fn handled(&self) {
        lock(&self.shared.inbox).handling = false;
        self.shared.inbox_space.notify_all();
    }

    /// Closes the connection: stops both threads, lets go of every descriptor, and tells the
    /// server the peer is gone.
    pub fn close(&mut self) {
        self.shared.close("closed by this node".into());
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        lock(&self.shared.notify).take();
        if let Some(server) = self.server.take() {
            server.peer_down(&self.peer);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.close("dropped".into());
        if let Some(server) = self.server.take() {
            server.peer_down(&self.peer);
        }
    }
}

fn read_loop(mut stream: TcpStream, shared: Arc<Shared>, mut fast: FastPath, leftover: Vec<u8>, ticktime: Duration) {
    let mut buf = vec![0u8; READ_BUFFER];
    // Over TLS: what the records read carried.
    let mut plaintext = Vec::new();
    let mut out = Vec::new();
    let mut to_python = Vec::new();
    let mut last_read = Instant::now();
    let mut last_full = Instant::now();
    let mut pending = (!leftover.is_empty()).then_some(leftover);
    let mut peer_closed = false;
    let reason = loop {
        if shared.closing.load(Ordering::Relaxed) {
            return;
        }
        if peer_closed {
            break "connection closed by peer".to_string();
        }
        let mut n = 0; // bytes read into `buf` this time
        let data: &[u8] = if let Some(p) = pending.as_deref() {
            p
        } else {
            match read_next(&mut stream, &mut buf) {
                Ok(0) => break "connection closed by peer".to_string(),
                Ok(read) => {
                    n = read;
                    shared.counters.bytes_in.fetch_add(read as u64, Ordering::Relaxed);
                    match &shared.wire {
                        Wire::Plain => &buf[..n],
                        Wire::Tls(session) => {
                            plaintext.clear();
                            let (received, wants_write) = {
                                let mut session = lock(session);
                                let received = session.receive(&buf[..n], &mut plaintext);
                                (received, session.wants_write())
                            };
                            if wants_write {
                                shared.wake_writer_to_flush(); // the alert or key update it made
                            }
                            match received {
                                Ok(received) => peer_closed = received.closed,
                                Err(e) => break format!("protocol error: TLS: {e}"),
                            }
                            last_read = Instant::now();
                            if plaintext.is_empty() {
                                continue; // a record not whole yet (or no data in it)
                            }
                            &plaintext
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    if last_read.elapsed() > ticktime {
                        break format!("no traffic for {} s (net_ticktime)", ticktime.as_secs());
                    }
                    release_idle(&mut buf, &mut plaintext, &mut out, &mut fast, last_full);
                    continue;
                }
                Err(e) => break format!("connection error: {e}"),
            }
        };
        last_read = Instant::now();
        // A bug of ours in the fast path must end this connection, not leave it unread with
        // its thread gone.
        let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fast.feed(data, &mut out, &mut to_python)))
            .unwrap_or_else(|_| Err(FrameError("internal error in the fast path (please report it)".into())));
        pending = None;
        match fed {
            Ok(ticks) => {
                if out.len() > READ_BUFFER {
                    last_full = Instant::now(); // a large reply: its buffer stays warm a while
                }
                // The replies to what one read brought go out in one write, before anything
                // Python handles. (Held for the next read too, they gained little and could
                // wait behind a stream of bytes, or behind a message a native's thread sent.)
                if !out.is_empty() && shared.send_buf(&mut out, true).is_err() {
                    return;
                }
                if !to_python.is_empty() || ticks > 0 {
                    shared.push_inbox(std::mem::take(&mut to_python), ticks, None);
                    // Python has frames to handle first (or is behind): read on once it has.
                    let mut inbox = lock(&shared.inbox);
                    while (inbox.bytes > INBOX_HIGH || inbox.handling || !inbox.frames.is_empty())
                        && !shared.closing.load(Ordering::Relaxed)
                    {
                        inbox = shared
                            .inbox_space
                            .wait_timeout(inbox, Duration::from_millis(100))
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                        last_read = Instant::now();
                    }
                }
            }
            Err(e) => break format!("protocol error: {e}"),
        }
        if buf.len() == n {
            last_full = Instant::now();
            if n < 16 * 1024 * 1024 {
                buf.resize(n * 2, 0); // the peer sends faster than we read: read more at once
            }
        } else {
            release_idle(&mut buf, &mut plaintext, &mut out, &mut fast, last_full);
        }
    };
    shared.close(reason);
}

/// The peer's next bytes into `buf`: the reader looks for them for `READ_SPIN`, yielding
/// the CPU between looks, and then sleeps in `read` (which times out after a tick
/// interval).
fn read_next(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let fd = stream.as_raw_fd();
    let started = Instant::now();
    loop {
        // SAFETY: a valid socket and a live buffer; MSG_DONTWAIT never blocks.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::WouldBlock {
            return Err(e);
        }
        if started.elapsed() >= READ_SPIN {
            return stream.read(buf);
        }
        // SAFETY: no arguments; it only gives the CPU to another thread that is ready to run.
        unsafe { libc::sched_yield() };
    }
}

/// No burst for a second: a connection does not keep the megabytes a large message needed
/// (but one that sends large messages one after another keeps its buffers warm: fresh ones
/// would fault in every page again).
fn release_idle(buf: &mut Vec<u8>, plaintext: &mut Vec<u8>, out: &mut Vec<u8>, fast: &mut FastPath, last_full: Instant) {
    if last_full.elapsed() <= Duration::from_secs(1) {
        return;
    }
    if buf.len() > READ_BUFFER {
        buf.truncate(READ_BUFFER);
        buf.shrink_to_fit();
    }
    if plaintext.capacity() > READ_BUFFER {
        *plaintext = Vec::new();
    }
    // (Never while it holds replies not written yet.)
    if out.is_empty() && out.capacity() > READ_BUFFER {
        *out = Vec::new();
    }
    fast.release_spare();
}

fn write_loop(mut stream: TcpStream, shared: Arc<Shared>, interval: Duration, ticktime: Duration) {
    let mut last_write = Instant::now();
    loop {
        {
            // Wait for something to send, or for a tick to be due.
            let mut out = lock(&shared.outbox);
            while out.chunks.is_empty() && !out.flush && !shared.closing.load(Ordering::Relaxed) {
                let waited = interval.saturating_sub(last_write.elapsed());
                if waited.is_zero() {
                    break;
                }
                out = shared.outbox_changed.wait_timeout(out, waited).unwrap_or_else(|e| e.into_inner()).0;
            }
        }
        if shared.closing.load(Ordering::Relaxed) {
            return;
        }
        let mut unsent = lock(&shared.write_lock);
        let (batch, front_sent, flush): (Vec<Vec<u8>>, usize, bool) = {
            let mut out = lock(&shared.outbox);
            out.bytes = 0;
            let batch = out.chunks.drain(..).collect();
            shared.outbox_changed.notify_all();
            (batch, std::mem::take(&mut out.front_sent), std::mem::take(&mut out.flush))
        };
        let tick_due = last_write.elapsed() >= interval;
        if batch.is_empty() && !flush && !tick_due {
            continue; // a sender wrote it all at once meanwhile
        }
        let batch = if batch.is_empty() && tick_due { vec![TICK.to_vec()] } else { batch };
        let written = match &shared.wire {
            Wire::Plain => batch
                .iter()
                .enumerate()
                .try_for_each(|(i, chunk)| write_all(&mut stream, &shared, &chunk[if i == 0 { front_sent } else { 0 }..], ticktime)),
            Wire::Tls(session) => write_records(&mut stream, &shared, session, &mut unsent, &batch, front_sent, ticktime),
        };
        match written {
            Ok(()) => last_write = Instant::now(),
            Err(Some(reason)) => return shared.close(reason),
            Err(None) => return, // closing already
        }
    }
}

/// Over TLS: the records waiting (a sender's, and those the reader's session made), then
/// `batch` (from byte `front_sent` of its first chunk) encrypted a batch at a time, each
/// written before the next is made.
fn write_records(
    stream: &mut TcpStream,
    shared: &Shared,
    session: &Mutex<TlsSession>,
    unsent: &mut Vec<u8>,
    batch: &[Vec<u8>],
    front_sent: usize,
    ticktime: Duration,
) -> Result<(), Option<String>> {
    lock(session).take_output(unsent);
    write_all(stream, shared, unsent, ticktime)?;
    unsent.clear();
    let slices: Vec<&[u8]> = batch.iter().enumerate().map(|(i, chunk)| &chunk[if i == 0 { front_sent } else { 0 }..]).collect();
    let mut failed = None;
    in_batches(&slices, |piece| {
        lock(session).encrypt(piece, unsent);
        let written = write_all(stream, shared, unsent, ticktime);
        unsent.clear();
        failed = written.err();
        failed.is_none()
    });
    failed.map_or(Ok(()), Err)
}

/// Hands `encrypt` the bytes of `slices`, in order, in pieces of at most TLS_BATCH bytes,
/// small slices gathered into one piece: each piece becomes records of its own, and a
/// message's header or a short message as a record of its own would cost the peer a
/// record's work for a few bytes (OTP's TLS distribution reads a 1 MiB reply three times
/// slower so). Long slices go in place, uncopied. Stops when `encrypt` says false; returns
/// how many bytes of `slices` it was handed.
fn in_batches(slices: &[&[u8]], mut encrypt: impl FnMut(&[u8]) -> bool) -> usize {
    let mut gathered: Vec<u8> = Vec::new();
    let mut taken = 0;
    for slice in slices {
        let mut rest = *slice;
        while !rest.is_empty() {
            let piece = if gathered.is_empty() && rest.len() >= TLS_BATCH {
                let (piece, tail) = rest.split_at(TLS_BATCH);
                rest = tail;
                piece
            } else {
                let n = (TLS_BATCH - gathered.len()).min(rest.len());
                gathered.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if gathered.len() < TLS_BATCH {
                    continue;
                }
                &gathered[..]
            };
            taken += piece.len();
            if !encrypt(piece) {
                return taken;
            }
            gathered.clear();
        }
    }
    if !gathered.is_empty() {
        taken += gathered.len();
        encrypt(&gathered);
    }
    taken
}

/// Writes all of `bytes`, blocking a tick interval at a time. `Err(Some(why))`: the
/// connection must close; `Err(None)`: it is closing already.
fn write_all(stream: &mut TcpStream, shared: &Shared, bytes: &[u8], ticktime: Duration) -> Result<(), Option<String>> {
    let mut written = 0;
    let mut stalled_since = Instant::now();
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(Some("connection closed while writing".into())),
            Ok(n) => {
                written += n;
                shared.counters.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                stalled_since = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if shared.closing.load(Ordering::Relaxed) {
                    return Err(None);
                }
                if stalled_since.elapsed() > ticktime {
                    return Err(Some(format!("protocol error: the peer took nothing we sent for {} s", ticktime.as_secs())));
                }
            }
            Err(e) => return Err(Some(format!("write error: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{in_batches, TLS_BATCH};

    #[test]
    fn small_slices_are_gathered_and_long_ones_cut_into_full_batches() {
        let header = vec![1u8; 30];
        let body = vec![2u8; 3 * TLS_BATCH + 5];
        let tail = vec![3u8; 7];
        let slices: Vec<&[u8]> = vec![&header, &body, &tail, &header];
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        let taken = in_batches(&slices, |piece| {
            pieces.push(piece.to_vec());
            true
        });
        assert_eq!(taken, slices.iter().map(|s| s.len()).sum::<usize>());
        assert_eq!(pieces.concat(), slices.concat(), "the bytes, in order");
        assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= TLS_BATCH));
        // As few pieces as the bytes allow: all full but the last.
        assert_eq!(pieces.len(), taken.div_ceil(TLS_BATCH));
        // Many short messages make one piece, not one each.
        let short: Vec<&[u8]> = std::iter::repeat(&tail[..]).take(100).collect();
        let mut count = 0;
        in_batches(&short, |_| {
            count += 1;
            true
        });
        assert_eq!(count, 1);
    }

    #[test]
    fn a_refused_piece_stops_the_batches_and_says_what_was_taken() {
        let body = vec![9u8; 2 * TLS_BATCH + 1];
        let mut calls = 0;
        let taken = in_batches(&[&body[..]], |_| {
            calls += 1;
            false
        });
        assert_eq!((calls, taken), (1, TLS_BATCH));
    }
}
