//! Write rustelixir natives in Rust, Rustler-style: ordinary typed functions and one
//! registration line.
//!
//! ```ignore
//! fn add(a: i64, b: i64) -> i64 { a + b }
//! fn divide(a: f64, b: f64) -> Result<f64, String> {
//!     if b == 0.0 { Err("division by zero".into()) } else { Ok(a / b) }
//! }
//! fn crunch(data: Vec<u8>) -> usize { /* long work */ data.len() }
//!
//! rustelixir_nif::natives!(NATIVES = [quick add, quick divide, slow crunch]);
//! ```
//!
//! Arguments are decoded from the caller's terms through [`Decoder`] (a wrong type is
//! `{:error, {:badarg, index, message}}`), results encoded through [`Encoder`]: a `T` is
//! `{:ok, T}`, a `Result<T, E>` is `{:ok, T}` or `{:error, E}`, a panic is
//! `{:error, {:panic, message}}`. `quick` natives run inline on the connection's thread;
//! `slow` ones on the node's worker pool, where [`cancelled`] tells them the caller gave up.
//!
//! The table is plain C ABI data (`NativeTable`): a crate built as its own Python extension
//! exposes its address, and the node calls the natives without Python objects or the GIL.

mod convert;
pub mod host;
mod message;
pub mod reply;
pub mod resource;
pub mod task;

pub use convert::{kind, ArgError, Decoder, Encoder, IoData, Items, ListIterator, MapIterator};
pub use rustelixir_derive::{
    native, NifException, NifMap, NifRecord, NifStruct, NifTaggedEnum, NifTuple, NifUnitEnum, NifUntaggedEnum,
};

// The derives' code names this crate `::rustelixir_nif`, in this crate too.
extern crate self as rustelixir_nif;

/// What the derives' generated code calls (not an API of its own).
#[doc(hidden)]
pub mod derive_support;
pub use host::{Found, Host, Messenger, RefParts, ResourceType};
pub use message::{caller, emit, make_ref, send, sender, spawn, SendError, Sender, STREAM_TAG};
pub use resource::{CallInfo, Resource, ResourceArc, ResourceTable};
pub use task::{sleep, AsyncTask};
pub use etf;
pub use etf::{Atom, Pid, Reference, Term};

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// "RUSTELIX": marks a [`NativeTable`] so the node can check an address it was given.
pub const MAGIC: u64 = 0x5255_5354_454c_4958;
/// Bumped when the layout of the C ABI types below (and `host`'s) changes. 2: the host
/// table passed with every call (`CallFrame::host`); 3: messages from natives (the host's
/// `tag`, `send` and senders) and resource monitors; 4: what a native says of itself
/// (`NativeEntry::meta`) and async natives (`FLAG_ASYNC`, `Host::spawn`).
pub const ABI_VERSION: u32 = 4;
/// [`NativeEntry::flags`]: the native may take long; run it on the worker pool.
pub const FLAG_SLOW: u32 = 1;
/// [`NativeEntry::flags`]: an `async fn`: its call hands the node a task (`Host::spawn`)
/// instead of writing its reply.
pub const FLAG_ASYNC: u32 = 2;

/// Bytes lent across the C ABI.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slice {
    pub ptr: *const u8,
    pub len: usize,
}

impl Slice {
    pub fn new(bytes: &[u8]) -> Self {
        Slice { ptr: bytes.as_ptr(), len: bytes.len() }
    }
    /// A static string's bytes (for the tables' constant metadata).
    pub const fn of_str(s: &'static str) -> Self {
        Slice { ptr: s.as_ptr(), len: s.len() }
    }
    /// # Safety
    /// `ptr` must point to `len` readable bytes for the lifetime chosen.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// One call, as the node hands it to a native: the arguments (each one term in the
/// External Term Format, without version byte), where to write the reply term, the call's
/// cancellation flag, and the host through which the native calls back into the node.
#[repr(C)]
pub struct CallFrame {
    pub args: *const Slice,
    pub nargs: usize,
    pub out: *mut std::ffi::c_void,
    pub write: extern "C" fn(out: *mut std::ffi::c_void, ptr: *const u8, len: usize),
    /// Null when the call cannot be cancelled (quick natives).
    pub cancelled: *const AtomicBool,
    /// The node's side of the call: its resource table, the caller (`host::Host`).
    pub host: *const Host,
}

#[repr(C)]
pub struct NativeEntry {
    pub name: *const u8,
    pub name_len: usize,
    pub arity: u32,
    pub flags: u32,
    /// Writes the whole reply term (`{ok, V}` or `{error, R}`) through the frame; never
    /// unwinds.
    pub call: extern "C" fn(frame: *const CallFrame),
    /// What the native says of itself (a `#[native]` function), or null.
    pub meta: *const NativeMeta,
}

/// A native's description, from its Rust signature and doc comment (static strings).
#[repr(C)]
pub struct NativeMeta {
    pub doc: Slice,
    /// The Rust result type, as written (`Result<u64,BadArg>`).
    pub returns: Slice,
    pub args: *const ArgMeta,
    pub nargs: usize,
}

/// An argument: its name and its Rust type, as written (`Vec<u8>`).
#[repr(C)]
pub struct ArgMeta {
    pub name: Slice,
    pub ty: Slice,
}

// Immutable statics made by `#[native]`.
unsafe impl Sync for NativeMeta {}
unsafe impl Sync for ArgMeta {}

/// A native's description as owned strings (`NativeEntry::describe`).
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    pub doc: String,
    pub returns: String,
    /// (name, Rust type) of each argument.
    pub args: Vec<(String, String)>,
}

impl NativeEntry {
    pub fn name(&self) -> &str {
        // SAFETY: entries are made by `natives!` from string literals.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.name, self.name_len)) }
    }
    pub fn is_slow(&self) -> bool {
        self.flags & FLAG_SLOW != 0
    }
    pub fn is_async(&self) -> bool {
        self.flags & FLAG_ASYNC != 0
    }

    /// What the native says of itself, if it was declared with `#[native]`.
    pub fn describe(&self) -> Option<Description> {
        // SAFETY: `meta` is null or points at a `#[native]`'s static description.
        let meta = unsafe { self.meta.as_ref()? };
        let text = |s: &Slice| unsafe { String::from_utf8_lossy(s.as_bytes()).into_owned() };
        let args = if meta.nargs == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(meta.args, meta.nargs) } };
        Some(Description {
            doc: text(&meta.doc),
            returns: text(&meta.returns),
            args: args.iter().map(|a| (text(&a.name), text(&a.ty))).collect(),
        })
    }
}

#[repr(C)]
pub struct NativeTable {
    pub magic: u64,
    pub abi_version: u32,
    pub count: usize,
    pub entries: *const NativeEntry,
}

// The tables are immutable statics pointing at other statics.
unsafe impl Sync for NativeTable {}
unsafe impl Sync for NativeEntry {}

impl NativeTable {
    pub fn entries(&self) -> &[NativeEntry] {
        // SAFETY: `natives!` points `entries` at a static array of `count` entries.
        unsafe { std::slice::from_raw_parts(self.entries, self.count) }
    }

    /// The table at `address`, if it is one this node understands.
    ///
    /// # Safety
    /// `address` must be the address of a live `NativeTable` (or of readable memory).
    pub unsafe fn from_address<'a>(address: usize) -> Result<&'a NativeTable, String> {
        if address == 0 || address % std::mem::align_of::<NativeTable>() != 0 {
            return Err(format!("{address:#x} is not the address of a native table"));
        }
        let table = &*(address as *const NativeTable);
        if table.magic != MAGIC {
            return Err("not a rustelixir native table (bad magic)".into());
        }
        if table.abi_version != ABI_VERSION {
            return Err(format!(
                "native table built for ABI {} but this node speaks ABI {ABI_VERSION}: rebuild the crate",
                table.abi_version
            ));
        }
        Ok(table)
    }
}

/// Calls a native with arguments given as ETF slices, through `host` (the node's: see
/// `ResourceTable::with_host`), returning the reply term's bytes.
pub fn call_entry(entry: &NativeEntry, args: &[&[u8]], cancelled: Option<&AtomicBool>, host: &Host) -> Vec<u8> {
    let mut out = Vec::new();
    call_entry_into(entry, args, cancelled, host, &mut out);
    out
}

/// `call_entry`, the reply appended to `out`.
pub fn call_entry_into(entry: &NativeEntry, args: &[&[u8]], cancelled: Option<&AtomicBool>, host: &Host, out: &mut Vec<u8>) {
    call_entry_with(entry, args, cancelled, host, &mut |reply| out.extend_from_slice(reply));
}

/// Calls a native, handing its reply term's bytes to `on_reply` straight from the native's
/// own buffer (so that the caller can frame it without another copy).
pub fn call_entry_with(
    entry: &NativeEntry,
    args: &[&[u8]],
    cancelled: Option<&AtomicBool>,
    host: &Host,
    on_reply: &mut dyn FnMut(&[u8]),
) {
    extern "C" fn write(out: *mut std::ffi::c_void, ptr: *const u8, len: usize) {
        // SAFETY: `out` is the `&mut dyn FnMut` below, `ptr`/`len` a slice the native owns
        // for the call.
        let on_reply = unsafe { &mut *(out as *mut &mut dyn FnMut(&[u8])) };
        let reply = unsafe { Slice { ptr, len }.as_bytes() };
        // Nothing may unwind out of an `extern "C"` function.
        let _ = catch_unwind(AssertUnwindSafe(|| on_reply(reply)));
    }
    let slices: Vec<Slice> = args.iter().map(|a| Slice::new(a)).collect();
    let mut on_reply: &mut dyn FnMut(&[u8]) = on_reply;
    let frame = CallFrame {
        args: slices.as_ptr(),
        nargs: slices.len(),
        out: &mut on_reply as *mut &mut dyn FnMut(&[u8]) as *mut std::ffi::c_void,
        write,
        cancelled: cancelled.map_or(std::ptr::null(), |c| c as *const AtomicBool),
        host,
    };
    (entry.call)(&frame);
}

/// Runs `f` with this thread's reply buffer (empty), kept between calls up to a bound, so
/// that a large reply does not fault in fresh memory on every call.
pub fn with_reply_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    const KEPT: usize = 8 << 20;
    thread_local! {
        static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }
    let mut buffer = BUFFER.with(Cell::take);
    buffer.clear();
    let result = f(&mut buffer);
    if buffer.capacity() <= KEPT {
        buffer.clear();
        BUFFER.with(|b| b.set(buffer));
    }
    result
}

// --- Inside a native ---------------------------------------------------------------------

thread_local! {
    static CURRENT: Cell<*const AtomicBool> = const { Cell::new(std::ptr::null()) };
}

/// True once the caller of the running (slow) native has given up: it timed out or died.
/// A native doing long work should check it now and then and return early; its reply is
/// dropped anyway.
pub fn cancelled() -> bool {
    CURRENT.with(|c| {
        let p = c.get();
        // SAFETY: set by `run` for the duration of the call, from the frame's live flag.
        !p.is_null() && unsafe { (*p).load(Ordering::Relaxed) }
    })
}

/// A native's argument `index` (1-based) is not acceptable: return `Err(BadArg::new(2,
/// "offset 10 is past the end"))` and the caller gets `{:error, {:badarg, 2, message}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BadArg {
    pub index: usize,
    pub message: String,
}

impl BadArg {
    pub fn new(index: usize, message: impl Into<String>) -> Self {
        BadArg { index, message: message.into() }
    }
}

impl Encoder for BadArg {
    fn encode(&self, out: &mut Vec<u8>) {
        reply::write_reason(out, reply::Reason::BadArg { index: self.index, message: &self.message });
    }
}

/// What a native returns: `T` (`{:ok, T}`) or `Result<T, E>` (`{:ok, T}` / `{:error, E}`).
pub trait IntoReply {
    fn write_reply(self, out: &mut Vec<u8>);
}

impl<T: Encoder> IntoReply for T {
    fn write_reply(self, out: &mut Vec<u8>) {
        reply::write_ok_head(out);
        self.encode(out);
    }
}

impl<T: Encoder, E: Encoder> IntoReply for Result<T, E> {
    fn write_reply(self, out: &mut Vec<u8>) {
        match self {
            Ok(v) => {
                reply::write_ok_head(out);
                v.encode(out);
            }
            Err(e) => {
                reply::write_error_head(out);
                e.encode(out);
            }
        }
    }
}

/// `{error, {badarg, Index, <<Message>>}}`
pub fn write_badarg(out: &mut Vec<u8>, index: usize, message: &str) {
    reply::write_error(out, reply::Reason::BadArg { index, message });
}

/// `{error, {badresource, Ref}}`
pub fn write_badresource(out: &mut Vec<u8>, reference: &Reference) {
    let mut term = Vec::with_capacity(32);
    etf::encode::put_reference(&mut term, reference).expect("a valid reference");
    reply::write_error(out, reply::Reason::BadResource(&term));
}

/// `{error, overloaded}`: a configured limit was hit.
pub fn write_overloaded(out: &mut Vec<u8>) {
    reply::write_error(out, reply::Reason::Overloaded);
}

/// `{error, {panic, <<Message>>}}`
pub fn write_panic(out: &mut Vec<u8>, message: &str) {
    reply::write_error(out, reply::Reason::Panic(message));
}

pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "native panicked".into())
}

/// Argument `index` (1-based) as a `T`; if it is not one, its error reply is written to
/// `out` and there is none.
#[doc(hidden)]
pub fn decode_arg<T: Decoder>(bytes: &[u8], index: usize, out: &mut Vec<u8>) -> Option<T> {
    match T::decode_bytes(bytes) {
        Ok(v) => Some(v),
        Err(ArgError::BadArg(message)) => {
            write_badarg(out, index, &message);
            None
        }
        Err(ArgError::BadResource(r)) => {
            write_badresource(out, &r);
            None
        }
    }
}

/// A function usable as a native: implemented for `Fn(A1, ..., An) -> R` (n up to 8) with
/// every `Ai: Decoder` and `R: IntoReply`.
pub trait NifFn<Args> {
    const ARITY: u32;
    fn invoke(&self, args: &[&[u8]], out: &mut Vec<u8>);
}

macro_rules! impl_async_nif_fn {
    ($n:expr; $($a:ident $i:tt),*) => {
        impl<F, Fut, R, $($a),*> AsyncNifFn<($($a,)*)> for F
        where
            F: Fn($($a),*) -> Fut,
            Fut: std::future::Future<Output = R> + Send + 'static,
            R: IntoReply,
            $($a: Decoder,)*
        {
            const ARITY: u32 = $n;
            #[allow(unused_variables, non_snake_case)]
            fn start(&self, args: &[&[u8]], out: &mut Vec<u8>) -> Option<task::ReplyFuture> {
                $( let $a = decode_arg::<$a>(args[$i], $i + 1, out)?; )*
                let future = (self)($($a),*);
                Some(Box::pin(async move {
                    let mut reply = Vec::new();
                    future.await.write_reply(&mut reply);
                    reply
                }))
            }
        }
    };
}

macro_rules! impl_nif_fn {
    ($n:expr; $($a:ident $i:tt),*) => {
        impl<F, R, $($a),*> NifFn<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R,
            R: IntoReply,
            $($a: Decoder,)*
        {
            const ARITY: u32 = $n;
            #[allow(unused_variables, non_snake_case)]
            fn invoke(&self, args: &[&[u8]], out: &mut Vec<u8>) {
                $( let Some($a) = decode_arg::<$a>(args[$i], $i + 1, out) else { return }; )*
                (self)($($a),*).write_reply(out)
            }
        }
        impl_async_nif_fn!($n; $($a $i),*);
    };
}

impl_nif_fn!(0;);
impl_nif_fn!(1; A1 0);
impl_nif_fn!(2; A1 0, A2 1);
impl_nif_fn!(3; A1 0, A2 1, A3 2);
impl_nif_fn!(4; A1 0, A2 1, A3 2, A4 3);
impl_nif_fn!(5; A1 0, A2 1, A3 2, A4 3, A5 4);
impl_nif_fn!(6; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5);
impl_nif_fn!(7; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6);
impl_nif_fn!(8; A1 0, A2 1, A3 2, A4 3, A5 4, A6 5, A7 6, A8 7);

pub const fn arity_of<F: NifFn<A>, A>(_f: &F) -> u32 {
    F::ARITY
}

/// An `async fn` usable as a native (n up to 8 arguments, each `Decoder`, its output
/// `IntoReply`, its future `Send + 'static`).
pub trait AsyncNifFn<Args> {
    const ARITY: u32;
    /// Decodes the arguments and makes the native's future (its reply term when it is
    /// done); a wrong argument writes its badarg to `out` and makes none.
    fn start(&self, args: &[&[u8]], out: &mut Vec<u8>) -> Option<task::ReplyFuture>;
}

pub const fn async_arity_of<F: AsyncNifFn<A>, A>(_f: &F) -> u32 {
    F::ARITY
}

/// The body of an async native's entry point: decode, make the future, hand the node its
/// task; a wrong argument, a panic or a node that takes no task is the reply at once.
///
/// # Safety
/// `frame` must be a valid frame from the node.
pub unsafe fn run_async<F: AsyncNifFn<A>, A>(f: &F, frame: *const CallFrame) {
    let frame = &*frame;
    let args: Vec<&[u8]> = (0..frame.nargs).map(|i| (*frame.args.add(i)).as_bytes()).collect();
    let mut out = Vec::new();
    let started = host::with_current(frame.host, || {
        catch_unwind(AssertUnwindSafe(|| {
            if args.len() != F::ARITY as usize {
                write_badarg(&mut out, 0, "wrong number of arguments");
                None
            } else {
                f.start(&args, &mut out)
            }
        }))
    });
    match started {
        Ok(Some(future)) => {
            let task = task::AsyncTask::new(future);
            let (pointer, drop_task) = (task.task, task.drop);
            // SAFETY: the host of this call; on success the node owns the task.
            if ((*frame.host).spawn)(frame.host, task) == host::HOST_OK {
                return;
            }
            drop_task(pointer);
            write_panic(&mut out, "this node runs no async natives");
        }
        Ok(None) => {}
        Err(panic) => {
            out.clear();
            write_panic(&mut out, &panic_message(&*panic));
        }
    }
    (frame.write)(frame.out, out.as_ptr(), out.len());
}

/// The body of every generated entry point: decode, call, encode, catch panics, write.
///
/// # Safety
/// `frame` must be a valid frame from the node (or from [`call_entry`]).
pub unsafe fn run<F: NifFn<A>, A>(f: &F, frame: *const CallFrame) {
    run_with(frame, F::ARITY, |args, out| f.invoke(args, out))
}

/// `run` with the arguments decoded and the native called by `invoke` (what `#[native]`
/// generates when an argument borrows from the call's bytes).
///
/// # Safety
/// As `run`.
#[doc(hidden)]
pub unsafe fn run_with(frame: *const CallFrame, arity: u32, invoke: impl FnOnce(&[&[u8]], &mut Vec<u8>)) {
    let frame = &*frame;
    let args: Vec<&[u8]> = (0..frame.nargs).map(|i| (*frame.args.add(i)).as_bytes()).collect();
    with_reply_buffer(|out| {
        let previous = CURRENT.with(|c| c.replace(frame.cancelled));
        // This copy of the crate's current host: `ResourceArc` in the native goes through it.
        let result = host::with_current(frame.host, || {
            catch_unwind(AssertUnwindSafe(|| {
                if args.len() != arity as usize {
                    write_badarg(out, 0, "wrong number of arguments");
                } else {
                    invoke(&args, out);
                }
            }))
        });
        CURRENT.with(|c| c.set(previous));
        if let Err(panic) = result {
            out.clear();
            write_panic(out, &panic_message(&*panic));
        }
        (frame.write)(frame.out, out.as_ptr(), out.len());
    })
}

/// A binary argument's bytes where they lie in the call (no copy): what a `#[native]`
/// argument of type `&[u8]` gets. A wrong argument's badarg is written to `out`.
#[doc(hidden)]
pub fn borrow_bytes<'a>(term: &'a [u8], index: usize, out: &mut Vec<u8>) -> Option<&'a [u8]> {
    match term {
        [etf::tags::BINARY_EXT, a, b, c, d, rest @ ..] if u32::from_be_bytes([*a, *b, *c, *d]) as usize == rest.len() => Some(rest),
        _ => {
            // Not a plain binary: say what it is, as any other argument would.
            match <Term as Decoder>::decode_bytes(term) {
                Ok(other) => write_badarg(out, index, &format!("expected a binary, got {}", kind(&other))),
                Err(ArgError::BadArg(message)) => write_badarg(out, index, &message),
                Err(ArgError::BadResource(r)) => write_badresource(out, &r),
            }
            None
        }
    }
}

/// `borrow_bytes`, checked to be UTF-8: a `#[native]` argument of type `&str`.
#[doc(hidden)]
pub fn borrow_str<'a>(term: &'a [u8], index: usize, out: &mut Vec<u8>) -> Option<&'a str> {
    let bytes = borrow_bytes(term, index, out)?;
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            write_badarg(out, index, "expected a UTF-8 binary");
            None
        }
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __native_entry {
    (quick $name:ident $($erlang:literal)?) => {
        $crate::__native_entry!(@entry 0, $name $($erlang)?)
    };
    (slow $name:ident $($erlang:literal)?) => {
        $crate::__native_entry!(@entry $crate::FLAG_SLOW, $name $($erlang)?)
    };
    // A `#[native]` function: its entry is made by the attribute.
    ($name:ident) => {
        $name::ENTRY
    };
    (@entry $flags:expr, $name:ident $($erlang:literal)?) => {
        $crate::NativeEntry {
            name: $crate::__native_entry!(@name $name $($erlang)?).as_ptr(),
            name_len: $crate::__native_entry!(@name $name $($erlang)?).len(),
            arity: $crate::arity_of(&$name),
            flags: $flags,
            call: {
                extern "C" fn entry(frame: *const $crate::CallFrame) {
                    // SAFETY: the node calls with a valid frame.
                    unsafe { $crate::run(&$name, frame) }
                }
                entry
            },
            meta: ::core::ptr::null(),
        }
    };
    (@name $name:ident) => {
        stringify!($name)
    };
    (@name $name:ident $erlang:literal) => {
        $erlang
    };
}

/// Declares the native table `NAME`. Each native is listed as `quick f` (run inline on the
/// connection's thread) or `slow f` (on the worker pool), called by its own name (`{:f,
/// ...}`) unless `as "name"` gives another (`quick is_valid as "valid?"`), or by name alone
/// when it was declared with `#[native]` (which also records its argument names, types and
/// docs for wrapper generators):
///
/// ```ignore
/// natives!(NATIVES = [quick add, slow crunch, quick is_valid as "valid?", described]);
/// ```
#[macro_export]
macro_rules! natives {
    ($table:ident = [ $( $first:ident $($second:ident)? $(as $erlang:literal)? ),* $(,)? ]) => {
        pub static $table: $crate::NativeTable = {
            const ENTRIES: &[$crate::NativeEntry] = &[
                $( $crate::__native_entry!($first $($second)? $($erlang)?) ),*
            ];
            $crate::NativeTable {
                magic: $crate::MAGIC,
                abi_version: $crate::ABI_VERSION,
                count: ENTRIES.len(),
                entries: ENTRIES.as_ptr(),
            }
        };
    };
}

/// The `#[pymodule]` of a crate of natives built as its own Python extension: a module
/// `$module` exposing the table's address as `__rustelixir_natives__` (what
/// `rustelixir serve --module` looks for). The crate depends on `pyo3`.
///
/// ```ignore
/// natives!(NATIVES = [quick add]);
/// python_module!(my_natives, NATIVES);
/// ```
#[macro_export]
macro_rules! python_module {
    ($module:ident, $table:ident) => {
        #[pyo3::pymodule]
        fn $module(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
            use pyo3::types::PyModuleMethods;
            // The node finds the natives through this address (a C ABI table: no Python,
            // no GIL on calls).
            m.add("__rustelixir_natives__", &$table as *const $crate::NativeTable as usize)?;
            Ok(())
        }
    };
}
