//! Messages from natives: to the caller or to any process, during the call through its host,
//! after it (from any thread) through a [`Sender`]. The node sends them from its server
//! process, over the connection to the destination's node.
//!
//! ```ignore
//! fn count_to(n: u64) -> u64 {
//!     for i in 1..=n {
//!         let _ = rustelixir_nif::emit(&i); // {rustelixir_stream, Tag, I} to the caller
//!     }
//!     n
//! }
//! fn later(ms: u64) -> rustelixir_nif::Atom {
//!     rustelixir_nif::spawn(move || { std::thread::sleep(Duration::from_millis(ms)); "done" });
//!     rustelixir_nif::Atom::new("started") // the caller gets "done" as a message afterwards
//! }
//! ```

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use etf::{Atom, Pid, Reference, Term};

use crate::convert::{Decoder, Encoder};
use crate::host::{self, Host, HOST_NOCONNECTION, HOST_OK};
use crate::{panic_message, reply, Slice};

pub use crate::reply::STREAM_TAG;

/// Why a message did not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Not inside a native's call (and not through a [`Sender`]): there is no node to send it.
    NoCall,
    /// The call has no caller to send to (a cast without sender), or no tag to stream with
    /// (a cast).
    NoCaller,
    /// The node refused it: the destination is not a pid or the message not a term.
    BadArg,
    /// The destination's node is not connected: the message is dropped, as Erlang drops one
    /// to a process that is gone.
    NoConnection,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::NoCall => "no native call is running on this thread",
            SendError::NoCaller => "the call has no caller",
            SendError::BadArg => "not a pid, or not a term",
            SendError::NoConnection => "the destination's node is not connected",
        })
    }
}

impl std::error::Error for SendError {}

fn status(code: i32) -> Result<(), SendError> {
    match code {
        HOST_OK => Ok(()),
        HOST_NOCONNECTION => Err(SendError::NoConnection),
        _ => Err(SendError::BadArg), // HOST_BADARG
    }
}

fn running_host<'a>() -> Result<&'a Host, SendError> {
    host::current_host().ok_or(SendError::NoCall)
}

fn encoded(message: &(impl Encoder + ?Sized)) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    message.encode(&mut out);
    out
}

fn encoded_pid(pid: &Pid) -> Result<Vec<u8>, SendError> {
    let mut out = Vec::with_capacity(32);
    etf::encode::put_pid(&mut out, pid).map_err(|_| SendError::BadArg)?;
    Ok(out)
}

fn stream_item(tag: &[u8], item: &(impl Encoder + ?Sized)) -> Result<Vec<u8>, SendError> {
    if tag.is_empty() {
        return Err(SendError::NoCaller);
    }
    let mut out = Vec::with_capacity(64 + tag.len());
    reply::write_stream_head(&mut out, tag);
    item.encode(&mut out);
    Ok(out)
}

pub(crate) fn decode_pid(bytes: &[u8]) -> Option<Pid> {
    Term::decode_bytes(bytes).ok().and_then(|t| t.as_pid().cloned())
}

/// The pid of the running native's caller (of a cast, its sender), if it has one.
pub fn caller() -> Option<Pid> {
    let host = host::current_host()?;
    // SAFETY: the host's slices live for the call.
    decode_pid(unsafe { host.caller.as_bytes() })
}

/// Sends `message` to `to` from the node's server process, during a native's call.
pub fn send(to: &Pid, message: &(impl Encoder + ?Sized)) -> Result<(), SendError> {
    let host = running_host()?;
    let (to, message) = (encoded_pid(to)?, encoded(message));
    // SAFETY: the host of the running call, slices alive for the call.
    status(unsafe { (host.send)(host, Slice::new(&to), Slice::new(&message)) })
}

/// Streams `item` to the running native's caller: the message `{rustelixir_stream, Tag,
/// Item}`, `Tag` the call's reply tag (`RustElixir.stream/4` turns them into a stream
/// that ends with the call's reply). Items go in order, all before the reply.
pub fn emit(item: &(impl Encoder + ?Sized)) -> Result<(), SendError> {
    let host = running_host()?;
    // SAFETY: the host's slices live for the call.
    let (caller, tag) = unsafe { (host.caller.as_bytes(), host.tag.as_bytes()) };
    if caller.is_empty() {
        return Err(SendError::NoCaller);
    }
    let message = stream_item(tag, item)?;
    // SAFETY: as in `send`.
    status(unsafe { (host.send)(host, Slice::new(caller), Slice::new(&message)) })
}

/// A new reference of the node running the native (unique: random id words, as the
/// node's own), for tagging messages.
pub fn make_ref() -> Reference {
    let host = host::current_host().expect("make_ref outside a native's call: a reference is made by the node running it");
    // SAFETY: the host's node name is UTF-8, alive for the call.
    let node = unsafe { String::from_utf8_lossy(host.node.as_bytes()).into_owned() };
    Reference { node: Atom(node), creation: host.creation, ids: crate::resource::random_ids().to_vec() }
}

/// Sends messages after the call that made it returned, from any thread: what a native
/// hands to the thread or task that finishes its work. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<SenderHandle>,
}

struct SenderHandle {
    handle: *const c_void,
    send: unsafe extern "C" fn(*const c_void, Slice, Slice) -> i32,
    drop: unsafe extern "C" fn(*const c_void),
    caller: Vec<u8>,
    tag: Vec<u8>,
}

// The node's sender handle is an `Arc<dyn Messenger>` (Send + Sync) behind a pointer.
unsafe impl Send for SenderHandle {}
unsafe impl Sync for SenderHandle {}

impl Drop for SenderHandle {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: a handle the node gave, dropped once.
            unsafe { (self.drop)(self.handle) }
        }
    }
}

/// A [`Sender`] for the running native's call (its caller and tag go with it). Panics
/// outside a native's call.
pub fn sender() -> Sender {
    let host = host::current_host().expect("sender outside a native's call: it sends through the node running the native");
    // SAFETY: the host of the running call; its slices live for the call.
    unsafe {
        Sender {
            inner: Arc::new(SenderHandle {
                handle: (host.sender)(host),
                send: host.sender_send,
                drop: host.sender_drop,
                caller: host.caller.as_bytes().to_vec(),
                tag: host.tag.as_bytes().to_vec(),
            }),
        }
    }
}

impl Sender {
    fn send_raw(&self, to: &[u8], message: &[u8]) -> Result<(), SendError> {
        if self.inner.handle.is_null() {
            return Err(SendError::NoConnection);
        }
        // SAFETY: a live handle of the node, slices alive for the call.
        status(unsafe { (self.inner.send)(self.inner.handle, Slice::new(to), Slice::new(message)) })
    }

    /// The caller of the call the sender was made in.
    pub fn caller(&self) -> Option<Pid> {
        decode_pid(&self.inner.caller)
    }

    /// `message` to `to`.
    pub fn send(&self, to: &Pid, message: &(impl Encoder + ?Sized)) -> Result<(), SendError> {
        self.send_raw(&encoded_pid(to)?, &encoded(message))
    }

    /// `message` to the caller of the call the sender was made in.
    pub fn send_to_caller(&self, message: &(impl Encoder + ?Sized)) -> Result<(), SendError> {
        if self.inner.caller.is_empty() {
            return Err(SendError::NoCaller);
        }
        self.send_raw(&self.inner.caller, &encoded(message))
    }

    /// A stream item to the caller (see [`emit`]); after the call returned, the caller's
    /// stream has ended, so this is for a call that is still running on another thread.
    pub fn emit(&self, item: &(impl Encoder + ?Sized)) -> Result<(), SendError> {
        if self.inner.caller.is_empty() {
            return Err(SendError::NoCaller);
        }
        self.send_raw(&self.inner.caller, &stream_item(&self.inner.tag, item)?)
    }
}

/// Runs `f` on a thread of its own, after the native returns if it takes longer; its value
/// goes to the native's caller as a message (a panic: `{error, {panic, Message}}`), as
/// `rustler::thread::spawn` does. Panics outside a native's call.
pub fn spawn<T: Encoder, F: FnOnce() -> T + Send + 'static>(f: F) -> std::thread::JoinHandle<()> {
    let sender = sender();
    std::thread::spawn(move || {
        let message = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => encoded(&value),
            Err(panic) => {
                let mut out = Vec::new();
                reply::write_error(&mut out, reply::Reason::Panic(&panic_message(&*panic)));
                out
            }
        };
        if !sender.inner.caller.is_empty() {
            let _ = sender.send_raw(&sender.inner.caller, &message);
        }
    })
}

impl Encoder for SendError {
    fn encode(&self, out: &mut Vec<u8>) {
        etf::encode::put_binary(out, self.to_string().as_bytes()).expect("short");
    }
}
