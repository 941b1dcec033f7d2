//! The node's server, registered as `rustelixir`: a value owned by the node (no statics),
//! shared by every connection. It answers the call contract (shared/DESIGN.md section 1)
//! for every caller on every connection: the reserved requests here; a quick Rust native
//! inline on the connection's thread; a slow one on the server's worker pool; a Python
//! native by handing Python a job (native, argument terms, ticket) and writing the reply
//! Python returns by ticket. Replies always leave through the caller's connection, framed
//! there (`frame`), so no reply is ever written in another language.
//!
//! A call that does not answer at once is "in flight" under a ticket until it does; its
//! caller giving up (DEMONITOR_P for the call's monitor, or its node disconnecting) sets the
//! call's cancellation flag, and its reply is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Instant;

use etf::encode::{put_atom, put_int, put_list_header, put_map_header, put_nil, put_tuple_header};
use etf::Term;
use rustelixir_nif::reply::{self, Reason};
use rustelixir_nif::resource::{self, Limits, ResourceTable};
use rustelixir_nif::host::{Messenger, HOST_BADARG, HOST_NOCONNECTION, HOST_OK};
use rustelixir_nif::{CallInfo, NativeEntry, NativeTable};

use crate::contract::{self, Message, Request};
use crate::control;
use crate::frame::{self, Caller, PeerConfig};
use crate::pool::Pool;
use crate::registry::{Native, PythonNative, Registry};
use crate::runtime::{Runtime, Task};
use crate::stats::NativeStats;

/// Where a connection's frames go out.
pub trait Sink: Send + Sync {
    /// Queues whole frames; never blocks. An error: the connection is gone or not reading.
    fn send(&self, frames: Vec<u8>) -> Result<(), String>;

    /// Whole frames given as consecutive slices: written from there when the connection is
    /// idle, what the socket does not take at once copied and queued.
    fn send_vectored(&self, slices: &[&[u8]]) -> Result<(), String> {
        self.send(slices.concat())
    }
}

/// Replies from this size on are written from the native's buffer in one vectored write.
const IN_PLACE: usize = 256 * 1024;

/// One connected peer, as the server sees it: what it takes, and how to reach it.
pub struct Peer {
    pub config: PeerConfig,
    pub(crate) sink: Box<dyn Sink>,
}

impl Peer {
    pub fn new(config: PeerConfig, sink: Box<dyn Sink>) -> Self {
        Peer { config, sink }
    }

    pub fn send_frames(&self, frames: Vec<u8>) -> Result<(), String> {
        self.sink.send(frames)
    }

    /// One message (control and payload encoded without version bytes; empty payload: none).
    pub fn send_message(&self, control: &[u8], payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(16 + control.len() + payload.len());
        frame::write_message(&self.config, control, payload, &mut out);
        self.send_frames(out)
    }
}

pub struct ServerConfig {
    /// This node's name and creation.
    pub node: String,
    pub creation: u32,
    /// The server's pid, encoded without version byte: the sender of its replies.
    pub pid: Vec<u8>,
    /// Calls in flight (slow Rust natives and Python natives) past which a new one is
    /// answered `{error, overloaded}`.
    pub max_in_flight: usize,
    /// Threads of the worker pool.
    pub workers: usize,
    /// Live resources, and holders of one resource, past which the resource table answers
    /// `{error, overloaded}`.
    pub max_resources: usize,
    pub max_holders: usize,
}

/// The counters `:info` reports.
#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub cancelled: AtomicU64,
    /// Messages over the size limit, discarded (their callers, if any, answered overloaded).
    pub oversized: AtomicU64,
    /// Calls answered `{error, overloaded}` (a limit of the node was hit).
    pub overloaded: AtomicU64,
}

/// A Python native to run, for Python to take.
pub struct Job {
    pub ticket: u64,
    /// The index Python registered the native under.
    pub index: u32,
    /// Each argument's bytes (no version byte).
    pub args: Vec<Vec<u8>>,
    /// The caller (or a cast's sender), encoded: it holds the resources the native uses.
    pub caller: Option<Vec<u8>>,
    /// The call's reply tag, encoded (none for a cast): what the native's stream items carry.
    pub tag: Option<Vec<u8>>,
    pub cancel: Arc<AtomicBool>,
}

pub enum JobEvent {
    Run(Job),
    /// The caller of this ticket's call gave up: cancel what runs it.
    Cancel(u64),
}

/// Runs a slow Python native's job on a pool thread: its reply, or None (cancelled).
pub type PythonRunner = Arc<dyn Fn(&Job) -> Option<Vec<u8>> + Send + Sync>;

/// Where a call's reply goes once it is ready.
struct ReplyTo {
    peer: Arc<Peer>,
    pid: Vec<u8>,
    tag: Vec<u8>,
    alias: Option<Vec<u8>>,
    spawned: Option<SpawnedProcess>,
}

/// `frame::Spawned`, owned: a spawned process whose native is in flight.
struct SpawnedProcess {
    pid: Vec<u8>,
    id: Vec<u8>,
    result: Option<Vec<u8>>,
    stack: Vec<u8>,
    monitor: bool,
    link: bool,
}

impl SpawnedProcess {
    fn of(s: &frame::Spawned<'_>) -> Self {
        SpawnedProcess {
            pid: s.pid.to_vec(),
            id: s.id.to_vec(),
            result: s.result.map(<[u8]>::to_vec),
            stack: s.stack.to_vec(),
            monitor: s.monitor,
            link: s.link,
        }
    }

    fn borrow(&self) -> frame::Spawned<'_> {
        frame::Spawned {
            pid: &self.pid,
            id: &self.id,
            result: self.result.as_deref(),
            stack: &self.stack,
            monitor: self.monitor,
            link: self.link,
        }
    }
}

struct InFlight {
    cancel: Arc<AtomicBool>,
    reply_to: Option<ReplyTo>,
    /// The node whose disconnection abandons the call.
    node: Option<Vec<u8>>,
    monitor: Option<Vec<u8>>,
    /// The caller (or a cast's sender) and its node: it may have become a holder.
    caller: Option<(Vec<u8>, Vec<u8>)>,
    python: bool,
    /// When it started, and the native's statistics (None: a reload).
    started: Instant,
    stats: Option<&'static NativeStats>,
}

#[derive(Default)]
struct Calls {
    by_ticket: HashMap<u64, InFlight>,
    by_monitor: HashMap<Vec<u8>, u64>,
    by_node: HashMap<Vec<u8>, HashSet<u64>>,
    /// Processes spawned linked to their asker, by their pid (canonical bytes).
    by_linked_spawn: HashMap<Vec<u8>, u64>,
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<JobEvent>,
    notified: bool,
}

pub struct Server {
    pub config: ServerConfig,
    pub stats: Stats,
    /// The node's resource table: every native reaches it through the host of its call.
    pub resources: ResourceTable,
    registry: RwLock<Registry>,
    started: Instant,
    next_ticket: AtomicU64,
    calls: Mutex<Calls>,
    pool: Pool,
    peers: RwLock<HashMap<Vec<u8>, Arc<Peer>>>,
    jobs: Mutex<Jobs>,
    python_runner: RwLock<Option<PythonRunner>>,
    reloader: RwLock<Option<u32>>,
    /// Polls async natives' tasks.
    runtime: Runtime,
    /// Wakes Python when jobs are queued.
    wake: Box<dyn Fn() + Send + Sync>,
    /// The processes spawned for SPAWN_REQUESTs so far: their pids' numbers.
    spawned: AtomicU64,
    /// How natives' messages reach `send_to` (holds the server weakly: a sender a native
    /// keeps after the node stopped sends nothing).
    messenger: Arc<dyn Messenger>,
}

struct ServerMessenger(Weak<Server>);

impl Messenger for ServerMessenger {
    fn send(&self, to: &[u8], message: &[u8]) -> i32 {
        self.0.upgrade().map_or(HOST_NOCONNECTION, |server| server.send_to(to, message))
    }
    fn monitor(&self, pid: &[u8], reference: &[u8]) -> i32 {
        self.0.upgrade().map_or(HOST_NOCONNECTION, |server| server.control_to(pid, reference, control::monitor_p))
    }
    fn demonitor(&self, pid: &[u8], reference: &[u8]) -> i32 {
        self.0.upgrade().map_or(HOST_NOCONNECTION, |server| server.control_to(pid, reference, control::demonitor_p))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who asked, and over which connection: what a reply and a holder's monitor need.
#[derive(Clone, Copy)]
struct From<'a> {
    peer: &'a Arc<Peer>,
    /// The caller's pid and node (for a cast, its sender's).
    pid: Option<(&'a [u8], &'a [u8])>,
    caller: Option<Caller<'a>>,
}

impl Server {
    pub fn new(config: ServerConfig, wake: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        let limits = Limits { max_live: config.max_resources, max_holders: config.max_holders };
        Arc::new_cyclic(|me| Server {
            messenger: Arc::new(ServerMessenger(me.clone())),
            resources: ResourceTable::new(&config.node, config.creation, limits),
            pool: Pool::new(config.workers),
            config,
            stats: Stats::default(),
            registry: RwLock::default(),
            started: Instant::now(),
            next_ticket: AtomicU64::new(1),
            calls: Mutex::default(),
            peers: RwLock::default(),
            jobs: Mutex::default(),
            python_runner: RwLock::default(),
            reloader: RwLock::default(),
            runtime: Runtime::default(),
            wake,
            spawned: AtomicU64::new(0),
        })
    }

    /// Sends `message` to the process `to` (both encoded, no version byte) from the server's
    /// pid, over the connection to `to`'s node: a `HOST_*` status. The message is checked to
    /// be one whole term first (a malformed one would make the peer drop the connection).
    pub fn send_to(&self, to: &[u8], message: &[u8]) -> i32 {
        let limits = etf::Limits::default();
        let mut pid = crate::reader::Reader::new(to, 0, &limits);
        let Some((_, node)) = pid.pid().filter(|_| pid.at_end()) else { return HOST_BADARG };
        let mut term = crate::reader::Reader::new(message, 0, &limits);
        if term.term().is_none() || !term.at_end() {
            return HOST_BADARG;
        }
        let Some(peer) = self.peer(node) else { return HOST_NOCONNECTION };
        let mut control = Vec::with_capacity(64);
        frame::send_control(&peer.config, &self.config.pid, to, &mut control);
        match peer.send_message(&control, message) {
            Ok(()) => HOST_OK,
            Err(_) => HOST_NOCONNECTION,
        }
    }

    /// A MONITOR_P or DEMONITOR_P (`make(from, to, reference)`) from the server's pid to the
    /// process `pid`, over the connection to its node: a `HOST_*` status.
    fn control_to(&self, pid: &[u8], reference: &[u8], make: fn(&[u8], &[u8], &[u8]) -> Vec<u8>) -> i32 {
        let Some(node) = pid_node(pid) else { return HOST_BADARG };
        let Some(peer) = self.peer(&node) else { return HOST_NOCONNECTION };
        match peer.send_message(&make(&self.config.pid, pid, reference), &[]) {
            Ok(()) => HOST_OK,
            Err(_) => HOST_NOCONNECTION,
        }
    }

    /// What a native's call on this server knows of it: its caller, its reply tag, where its
    /// messages go.
    fn call_info<'a>(&'a self, caller: Option<&'a [u8]>, tag: Option<&'a [u8]>) -> CallInfo<'a> {
        CallInfo { caller, tag, messenger: Some(&self.messenger), spawn: None }
    }

    // --- Natives ----------------------------------------------------------------------------

    pub fn add_table(&self, table: &'static NativeTable) -> Result<Vec<(String, u32, bool)>, String> {
        self.registry.write().unwrap().add_table(table)
    }

    /// Serves `module`'s natives in place of what it served before (see
    /// `Registry::set_module`): at start-up, and when the module is reloaded.
    pub fn set_module(
        &self,
        module: &str,
        tables: &[&'static NativeTable],
        python: &[PythonNative],
    ) -> Result<Vec<(String, u32, bool)>, String> {
        self.registry.write().unwrap().set_module(module, tables, python)
    }

    /// The Python native (by the index Python knows it by) that answers `{reload, Module}`
    /// on the worker pool: it loads the module's new build and calls `set_module`.
    pub fn set_reloader(&self, index: u32) {
        *self.reloader.write().unwrap() = Some(index);
    }

    /// Who runs slow Python natives on the pool: given the job, it returns the reply (or
    /// None: no reply, the call was cancelled).
    pub fn set_python_runner(&self, runner: PythonRunner) {
        *self.python_runner.write().unwrap() = Some(runner);
    }

    pub fn listing(&self) -> Vec<(String, u32)> {
        self.registry.read().unwrap().listing()
    }

    pub fn find(&self, name: &[u8], arity: usize) -> Option<Native> {
        self.registry.read().unwrap().find(name, arity)
    }

    /// Every native served now and its statistics.
    pub fn native_stats(&self) -> Vec<(String, u32, &'static NativeStats)> {
        self.registry.read().unwrap().stats()
    }

    fn find_counted(&self, name: &[u8], arity: usize) -> Option<(Native, &'static NativeStats)> {
        self.registry.read().unwrap().find_counted(name, arity)
    }

    // --- Peers ------------------------------------------------------------------------------

    /// A connection is up: replies and monitors for processes of its node go through it.
    pub fn peer_up(&self, peer: Arc<Peer>) {
        self.peers.write().unwrap().insert(peer.config.name.clone(), peer);
    }

    /// A connection is gone: its processes hold nothing any more, and the calls they made
    /// are abandoned (as if each caller had given up).
    pub fn peer_down(&self, peer: &Arc<Peer>) {
        {
            let mut peers = self.peers.write().unwrap();
            if peers.get(&peer.config.name).is_some_and(|p| Arc::ptr_eq(p, peer)) {
                peers.remove(&peer.config.name);
            }
        }
        self.resources.node_down(&String::from_utf8_lossy(&peer.config.name));
        let tickets: Vec<u64> = lock(&self.calls).by_node.remove(&peer.config.name).into_iter().flatten().collect();
        for ticket in tickets {
            self.cancel(ticket);
        }
    }

    pub fn peer(&self, node: &[u8]) -> Option<Arc<Peer>> {
        self.peers.read().unwrap().get(node).cloned()
    }

    pub fn peer_names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self.peers.read().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    pub fn in_flight(&self) -> usize {
        lock(&self.calls).by_ticket.len()
    }

    /// Stops the worker pool and cancels every call in flight.
    pub fn close(&self) {
        let tickets: Vec<u64> = lock(&self.calls).by_ticket.keys().copied().collect();
        for ticket in tickets {
            self.cancel(ticket);
        }
        self.pool.close();
        self.runtime.close();
    }

    // --- Requests ---------------------------------------------------------------------------

    /// A gen_server message to the server from `sender` (REG_SEND's From) over `peer`.
    /// Replies to callers on `peer` are appended to `out`, in order; others go out through
    /// their own connection.
    pub fn handle(self: &Arc<Self>, peer: &Arc<Peer>, sender: Option<&[u8]>, message: Message<'_>, out: &mut Vec<u8>) {
        match message {
            Message::Call { caller, node, request } => {
                let from = From { peer, pid: Some((caller.pid, node)), caller: Some(caller) };
                self.request(from, request, out);
            }
            Message::Cast(request) => {
                // A cast has no reply, but its sender (REG_SEND carries it) holds what it makes.
                let limits = etf::Limits::default();
                let sender = sender.and_then(|s| crate::reader::Reader::new(s, 0, &limits).pid());
                self.request(From { peer, pid: sender, caller: None }, request, out)
            }
            Message::Other => {}
        }
    }

    /// A gen_server message to the server that reached the node some other way than the
    /// link's reading in place (Python decoded it: to the server's pid, or an encoding the
    /// link does not read in place), as `message`'s bytes (no version byte), from `sender`,
    /// over the connection to `peer_name`.
    pub fn handle_bytes(self: &Arc<Self>, peer_name: &[u8], sender: Option<&[u8]>, message: &[u8]) {
        let Some(peer) = self.peer(peer_name) else { return };
        let limits = etf::Limits::default();
        let mut r = crate::reader::Reader::new(message, 0, &limits);
        let Some(message) = crate::contract::message(&mut r) else { return };
        let mut out = Vec::new();
        self.handle(&peer, sender, message, &mut out);
        if !out.is_empty() {
            let _ = peer.send_frames(out);
        }
    }

    /// A SPAWN_REQUEST that reached the node some other way than the link's reading in
    /// place: its control tuple and argument list (no version bytes), over the connection to
    /// `peer_name`. False: it is not well-formed (the peer broke the protocol).
    pub fn spawn_bytes(self: &Arc<Self>, peer_name: &[u8], message: &[u8]) -> bool {
        let Some(peer) = self.peer(peer_name) else { return true };
        let limits = crate::fast_path::wire_limits(peer.config.max_message_size);
        let mut r = crate::reader::Reader::new(message, 0, &limits);
        let Some(arity) = r.tuple().filter(|_| r.small_int().is_some()) else { return false };
        let Some(spawn) = contract::spawn(&mut r, arity, false) else { return false };
        let mut out = Vec::new();
        self.spawn(&peer, spawn, &mut out);
        let _ = peer.send_frames(out);
        true
    }

    /// A distributed spawn (`erpc:call`, `erpc:cast`, `rpc:call`, `spawn_request`): a
    /// process of this node is made for it (SPAWN_REPLY), runs the native the request names,
    /// and exits with its result as `erpc` reads it; its natives are `rustelixir`'s (every
    /// native and the reserved requests) and each served module's own.
    pub fn spawn(self: &Arc<Self>, peer: &Arc<Peer>, spawn: contract::Spawn<'_>, out: &mut Vec<u8>) {
        let pid = self.new_pid();
        let flags = if spawn.monitor { control::SPAWN_MONITORED } else { 0 } | if spawn.link { control::SPAWN_LINKED } else { 0 };
        frame::write_message(&peer.config, &control::spawn_reply(spawn.id, spawn.from, flags, &pid), &[], out);
        let (result, module, function, args) = match contract::spawn_work(&spawn) {
            contract::SpawnWork::Call { result, module, function, args } => (Some(result), module, function, args),
            contract::SpawnWork::Run { module, function, args } => (None, module, function, args),
        };
        let mut stack = Vec::with_capacity(16 + module.len() + function.len());
        put_list_header(&mut stack, 1).expect("one frame");
        put_tuple_header(&mut stack, 4).expect("a frame");
        for name in [module, function] {
            put_atom(&mut stack, &String::from_utf8_lossy(name)).expect("an atom read from the wire");
        }
        put_int(&mut stack, args.len() as i64);
        put_nil(&mut stack);
        put_nil(&mut stack);
        let spawned = frame::Spawned { pid: &pid, id: spawn.id, result, stack: &stack, monitor: spawn.monitor, link: spawn.link };
        let request = if module == contract::SERVER_NAME.as_bytes() {
            Some(contract::classify(function, args))
        } else if self.registry.read().unwrap().serves(module, function, args.len()) {
            Some(Request::Native { name: function, args })
        } else {
            None
        };
        // Whether it is answered here, on this thread; None: nothing runs it (undef).
        let inline = match &request {
            None => None,
            Some(Request::Native { name, args }) => self.find(name, args.len()).map(|n| matches!(n, Native::Quick(_))),
            Some(Request::Reload(_)) => Some(false),
            Some(_) => Some(true),
        };
        match (request, inline) {
            (Some(request), Some(inline)) => {
                if !inline {
                    // The process's exit may be sent from another thread before `out` leaves:
                    // its SPAWN_REPLY goes first (a DOWN before it would be dropped by the
                    // asker's node, and the asker would wait forever).
                    let _ = peer.send_frames(std::mem::take(out));
                }
                let caller = Caller { pid: spawn.from, tag: spawn.id, alias: None, spawned: Some(spawned) };
                let from = From { peer, pid: Some((spawn.from, spawn.from_node)), caller: Some(caller) };
                return self.request(from, request, out);
            }
            _ => {}
        }
        let mut head = Vec::new();
        frame::write_spawn_exit(&peer.config, &mut head, spawn.from, spawned, frame::SpawnExit::Undef, out);
    }

    /// A new pid of this node for a spawned process: the server's own, renumbered (serial
    /// 1 and up: the Python side numbers its processes with serial 0).
    fn new_pid(&self) -> Vec<u8> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let mut pid = self.config.pid.clone();
        let at = pid.len() - 12; // NEW_PID_EXT: ..., ID, Serial, Creation (4 bytes each)
        pid[at..at + 4].copy_from_slice(&((n & 0x7FFF) as u32).to_be_bytes());
        pid[at + 4..at + 8].copy_from_slice(&(1 + ((n >> 15) % 0x1FFF) as u32).to_be_bytes());
        pid
    }

    fn request(self: &Arc<Self>, from: From<'_>, request: Request<'_>, out: &mut Vec<u8>) {
        let mut reply = Vec::with_capacity(64);
        let reply = &mut reply;
        match request {
            Request::Native { name, args } => match self.find_counted(name, args.len()) {
                None => reply::write_error(
                    reply,
                    Reason::Undef { name: &String::from_utf8_lossy(name), arity: args.len() },
                ),
                Some((Native::Quick(entry), stats)) => return self.quick(from, entry, stats, &args, out),
                Some((native, stats)) => {
                    if self.start(from, native, Some(stats), &args) {
                        return;
                    }
                    reply::write_error(reply, Reason::Overloaded);
                    stats.record(Instant::now(), reply);
                }
            },
            Request::Functions => {
                let listing = self.listing();
                reply::write_ok_head(reply);
                put_list_header(reply, listing.len()).expect("a listing fits");
                for (name, arity) in &listing {
                    put_tuple_header(reply, 2).expect("a pair");
                    put_atom(reply, name).expect("a native's name is an atom");
                    put_int(reply, *arity as i64);
                }
                put_nil(reply);
            }
            Request::Info => {
                reply::write_ok_head(reply);
                self.write_info(reply);
            }
            Request::Release(reference) => {
                let holder = from.pid.and_then(|(pid, _)| resource::canonical_holder(pid));
                let released = match (decode_reference(reference), holder) {
                    (Some(r), Some(holder)) => self.resources.release(&r, &holder),
                    _ => false,
                };
                if released {
                    reply::write_ok_head(reply);
                    put_atom(reply, "ok").expect("short atom");
                } else {
                    reply::write_error(reply, Reason::BadResource(reference));
                }
            }
            Request::Share(reference, pid) => self.share(from, reference, pid, reply, out),
            Request::ResourceInfo(reference) => match decode_reference(reference).and_then(|r| self.resources.info(&r)) {
                Some((kind, holders, size)) => {
                    reply::write_ok_head(reply);
                    put_map_header(reply, 3).expect("a small map");
                    put_atom(reply, "type").expect("short atom");
                    put_atom(reply, kind).expect("a type name is an atom");
                    put_atom(reply, "holders").expect("short atom");
                    put_list_header(reply, holders.len()).expect("holders fit");
                    holders.iter().for_each(|h| reply.extend_from_slice(h));
                    put_nil(reply);
                    put_atom(reply, "size").expect("short atom");
                    put_int(reply, size as i64);
                }
                None => reply::write_error(reply, Reason::BadResource(reference)),
            },
            Request::Reload(module) => match *self.reloader.read().unwrap() {
                Some(index) => {
                    if self.start(from, Native::PythonSlow(index), None, &[module]) {
                        return;
                    }
                    reply::write_error(reply, Reason::Overloaded);
                }
                None => reply::write_error(reply, Reason::BadRequest("this server reloads no modules")),
            },
            Request::Bad(message) => reply::write_error(reply, Reason::BadRequest(&message)),
        }
        self.answered(reply);
        if let (Some(caller), Some((_, node))) = (from.caller, from.pid) {
            self.reply_to(from.peer, node, caller, reply, Some(out));
        }
    }

    /// A quick native, run here; its reply framed straight from the native's buffer.
    fn quick(&self, from: From<'_>, entry: &'static NativeEntry, stats: &NativeStats, args: &[&[u8]], out: &mut Vec<u8>) {
        let started = Instant::now();
        let caller = from.pid.map(|(pid, _)| pid);
        let mark = out.len();
        let mut replied = false;
        let tag = from.caller.map(|c| c.tag);
        let ((), touched) = self.resources.with_host(&self.call_info(caller, tag), |host| {
            rustelixir_nif::call_entry_with(entry, args, None, host, &mut |reply| {
                if !std::mem::replace(&mut replied, true) {
                    self.answered(reply);
                    stats.record(started, reply);
                    if let (Some(caller), Some((_, node))) = (from.caller, from.pid) {
                        // Nothing of this connection's waits in `out` (it would go out
                        // after): a large reply is written from the native's own buffer.
                        if reply.len() >= IN_PLACE && out.is_empty() && node == from.peer.config.name.as_slice() {
                            self.reply_in_place(from.peer, caller, reply);
                        } else {
                            self.reply_to(from.peer, node, caller, reply, Some(out));
                        }
                    }
                }
            })
        });
        if touched {
            // The caller may have just become a holder: its monitor goes before the reply.
            let mut monitor = Vec::new();
            self.monitor_holder(from, &mut monitor);
            out.splice(mark..mark, monitor);
        }
    }

    pub(crate) fn answered(&self, reply: &[u8]) {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        if reply::is_error(reply) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            if reply::error_tag(reply) == Some(b"overloaded") {
                self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `{Tag, Reply}` to a caller on `node`: appended to `out` when it lives on `via`'s node,
    /// else sent through its own node's connection (dropped when there is none: the caller
    /// is gone with it).
    pub(crate) fn reply_to(&self, via: &Arc<Peer>, node: &[u8], caller: Caller<'_>, reply: &[u8], out: Option<&mut Vec<u8>>) {
        let mut head = Vec::with_capacity(64);
        let pid = &self.config.pid;
        match (node == via.config.name.as_slice(), out) {
            (true, Some(out)) => frame::write_reply(&via.config, &mut head, pid, caller, reply, out),
            (same, _) => {
                let Some(peer) = (if same { Some(via.clone()) } else { self.peer(node) }) else { return };
                let mut frames = Vec::with_capacity(reply.len() + 128);
                frame::write_reply(&peer.config, &mut head, pid, caller, reply, &mut frames);
                let _ = peer.send_frames(frames);
            }
        }
    }

    /// A large reply to a caller on `via`, written from where it lies (one vectored write;
    /// only what the socket does not take at once is copied).
    fn reply_in_place(&self, via: &Arc<Peer>, caller: Caller<'_>, reply: &[u8]) {
        let mut head = Vec::with_capacity(64);
        let mut slices = frame::Slices::default();
        frame::write_reply(&via.config, &mut head, &self.config.pid, caller, reply, &mut slices);
        let _ = via.sink.send_vectored(&slices.slices());
    }

    /// After a call that may have made the caller a holder: the MONITOR_P the node owes it,
    /// before the reply. A holder whose node cannot be reached holds nothing.
    fn monitor_holder(&self, from: From<'_>, out: &mut Vec<u8>) {
        if let Some((pid, node)) = from.pid {
            self.monitor(from.peer, pid, node, Some(out));
        }
    }

    fn monitor(&self, via: &Arc<Peer>, pid: &[u8], node: &[u8], out: Option<&mut Vec<u8>>) {
        let Some(holder) = resource::canonical_holder(pid) else { return };
        let Some(monitor) = self.resources.take_monitor_for(&holder) else { return };
        let control = control::monitor_p(&self.config.pid, pid, &resource::encoded_reference(&monitor));
        if node == via.config.name.as_slice() {
            match out {
                Some(out) => frame::write_message(&via.config, &control, &[], out),
                None => {
                    let _ = via.send_message(&control, &[]);
                }
            }
        } else if let Some(peer) = self.peer(node) {
            let _ = peer.send_message(&control, &[]);
        } else {
            self.resources.node_down(&String::from_utf8_lossy(node));
        }
    }

    fn share(&self, from: From<'_>, reference: &[u8], pid: &[u8], reply: &mut Vec<u8>, out: &mut Vec<u8>) {
        let Some(r) = decode_reference(reference) else {
            return reply::write_error(reply, Reason::BadResource(reference));
        };
        let limits = etf::Limits::default();
        let mut reader = crate::reader::Reader::new(pid, 0, &limits);
        let Some((pid, node)) = reader.pid() else {
            return reply::write_error(reply, Reason::BadArg { index: 2, message: "expected a pid" });
        };
        let ours = node == self.config.node.as_bytes();
        if !ours && self.peer(node).is_none() {
            let message = format!("{} is not connected to this node", String::from_utf8_lossy(node));
            return reply::write_error(reply, Reason::BadArg { index: 2, message: &message });
        }
        let Some(holder) = resource::canonical_holder(pid) else {
            return reply::write_error(reply, Reason::BadArg { index: 2, message: "expected a pid" });
        };
        match self.resources.share(&r, &holder) {
            Ok(()) => {
                if !ours {
                    self.monitor(from.peer, pid, node, Some(out));
                }
                reply::write_ok_head(reply);
                put_atom(reply, "ok").expect("short atom");
            }
            Err(true) => reply::write_error(reply, Reason::BadResource(reference)),
            Err(false) => reply::write_error(reply, Reason::Overloaded),
        }
    }

    // --- Calls in flight --------------------------------------------------------------------

    /// Starts a slow Rust native on the pool, or hands a Python native to Python; false when
    /// the calls in flight are as many as they may be.
    fn start(self: &Arc<Self>, from: From<'_>, native: Native, stats: Option<&'static NativeStats>, args: &[&[u8]]) -> bool {
        let cancel = Arc::new(AtomicBool::new(false));
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let reply_to = from.caller.map(|c| ReplyTo {
            peer: from.peer.clone(),
            pid: c.pid.to_vec(),
            tag: c.tag.to_vec(),
            alias: c.alias.map(<[u8]>::to_vec),
            spawned: c.spawned.as_ref().map(SpawnedProcess::of),
        });
        // Casts go on when their sender's node goes: nobody waits for them, and what they do
        // may be their point. A call is abandoned with its caller's node, or when that node
        // is not connected (no reply could reach it), with the connection it came on.
        let node = from.caller.and(from.pid).map(|(_, node)| {
            if node == from.peer.config.name.as_slice() || self.peer(node).is_some() {
                node.to_vec()
            } else {
                from.peer.config.name.clone()
            }
        });
        let monitor = from.caller.and_then(|c| c.monitor()).map(<[u8]>::to_vec);
        let linked_spawn = from.caller.and_then(|c| c.spawned).filter(|s| s.link).and_then(|s| resource::canonical_holder(s.pid));
        let caller = from.pid.map(|(pid, node)| (pid.to_vec(), node.to_vec()));
        {
            let mut calls = lock(&self.calls);
            if calls.by_ticket.len() >= self.config.max_in_flight {
                return false;
            }
            if let Some(m) = &monitor {
                calls.by_monitor.insert(m.clone(), ticket);
            }
            if let Some(n) = &node {
                calls.by_node.entry(n.clone()).or_default().insert(ticket);
            }
            if let Some(pid) = linked_spawn {
                calls.by_linked_spawn.insert(pid, ticket);
            }
            // Only the event loop's jobs hear of a cancellation (an async native's task is
            // cancelled); the others see their flag.
            let python = matches!(native, Native::Python(_));
            let started = Instant::now();
            let call = InFlight { cancel: cancel.clone(), reply_to, node, monitor, caller: caller.clone(), python, started, stats };
            calls.by_ticket.insert(ticket, call);
        }
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        let tag = from.caller.map(|c| c.tag.to_vec());
        match native {
            Native::Slow(entry) => {
                let server = self.clone();
                let caller = caller.map(|c| c.0);
                self.pool.run(move || server.run_slow(ticket, entry, args, caller, tag, cancel));
            }
            Native::Async(entry) => self.start_async(ticket, entry, &args, caller.map(|c| c.0), tag, cancel),
            Native::Python(index) => {
                let job = Job { ticket, index, args, caller: caller.map(|c| c.0), tag, cancel };
                self.push_job(JobEvent::Run(job));
            }
            Native::PythonSlow(index) => {
                let job = Job { ticket, index, args, caller: caller.map(|c| c.0), tag, cancel };
                let server = self.clone();
                self.pool.run(move || server.run_python_slow(job));
            }
            Native::Quick(_) => unreachable!("quick natives run inline"),
        }
        true
    }

    /// An async native: its entry makes the task here (or answers at once: a wrong
    /// argument), and the runtime polls it.
    fn start_async(
        self: &Arc<Self>,
        ticket: u64,
        entry: &'static NativeEntry,
        args: &[Vec<u8>],
        caller: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
        cancel: Arc<AtomicBool>,
    ) {
        let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let spawned = std::cell::Cell::new(false);
        let spawn = |task: rustelixir_nif::AsyncTask| {
            let task = Task { task, caller: caller.clone(), tag: tag.clone(), cancel: cancel.clone() };
            match self.runtime.spawn(self, ticket, task) {
                Ok(()) => {
                    spawned.set(true);
                    HOST_OK
                }
                Err(task) => {
                    // The crate keeps (and drops) its task, and answers that it cannot run.
                    let _ = task.give_back();
                    HOST_NOCONNECTION
                }
            }
        };
        let info = CallInfo { spawn: Some(&spawn), ..self.call_info(caller.as_deref(), tag.as_deref()) };
        let (reply, _) = self.resources.with_host(&info, |host| rustelixir_nif::call_entry(entry, &slices, Some(&cancel), host));
        if !spawned.get() {
            self.complete(ticket, Some(reply));
        }
    }

    /// Polls an async native's task (`poll` given the host of its call).
    pub(crate) fn poll_task(&self, task: &Task, poll: impl FnOnce(&rustelixir_nif::Host) -> bool) -> bool {
        self.resources.with_host(&self.call_info(task.caller.as_deref(), task.tag.as_deref()), poll).0
    }

    fn run_slow(
        &self,
        ticket: u64,
        entry: &'static NativeEntry,
        args: Vec<Vec<u8>>,
        caller: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
        cancel: Arc<AtomicBool>,
    ) {
        if cancel.load(Ordering::Relaxed) {
            return self.complete(ticket, None); // its caller went away while it waited for a worker
        }
        let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let (reply, _) = self
            .resources
            .with_host(&self.call_info(caller.as_deref(), tag.as_deref()), |host| {
                rustelixir_nif::call_entry(entry, &slices, Some(&cancel), host)
            });
        self.complete(ticket, Some(reply));
    }

    fn run_python_slow(&self, job: Job) {
        if job.cancel.load(Ordering::Relaxed) {
            return self.complete(job.ticket, None); // its caller went away while it waited for a worker
        }
        let runner = self.python_runner.read().unwrap().clone();
        let reply = runner.and_then(|run| run(&job));
        self.complete(job.ticket, reply);
    }

    fn push_job(&self, event: JobEvent) {
        let wake = {
            let mut jobs = lock(&self.jobs);
            jobs.queue.push_back(event);
            !std::mem::replace(&mut jobs.notified, true)
        };
        if wake {
            (self.wake)();
        }
    }

    /// What Python is to do: jobs to run and tickets to cancel, in order.
    pub fn take_jobs(&self) -> Vec<JobEvent> {
        let mut jobs = lock(&self.jobs);
        jobs.notified = false;
        jobs.queue.drain(..).collect()
    }

    /// A call in flight is done: `reply` (`{ok, _}` or `{error, _}`) goes to its caller,
    /// unless it gave up; `None`: it never ran.
    pub fn complete(&self, ticket: u64, reply: Option<Vec<u8>>) {
        let Some(call) = ({
            let mut calls = lock(&self.calls);
            let call = calls.by_ticket.remove(&ticket);
            if let Some(call) = &call {
                if let Some(m) = &call.monitor {
                    calls.by_monitor.remove(m);
                }
                if let Some(spawned) = call.reply_to.as_ref().and_then(|to| to.spawned.as_ref()).filter(|s| s.link) {
                    if let Some(pid) = resource::canonical_holder(&spawned.pid) {
                        calls.by_linked_spawn.remove(&pid);
                    }
                }
                if let Some(n) = &call.node {
                    if let Some(set) = calls.by_node.get_mut(n) {
                        set.remove(&ticket);
                        if set.is_empty() {
                            calls.by_node.remove(n);
                        }
                    }
                }
            }
            call
        }) else {
            return;
        };
        if let Some((pid, node)) = &call.caller {
            let via = call.reply_to.as_ref().map(|r| r.peer.clone()).or_else(|| self.peer(node));
            match via {
                Some(via) => self.monitor(&via, pid, node, None),
                None => self.resources.node_down(&String::from_utf8_lossy(node)),
            }
        }
        let Some(reply) = reply else { return };
        if call.cancel.load(Ordering::Relaxed) {
            return; // the caller is gone; so is the reply
        }
        self.answered(&reply);
        if let Some(stats) = call.stats {
            stats.record(call.started, &reply);
        }
        if let Some(to) = &call.reply_to {
            let spawned = to.spawned.as_ref().map(SpawnedProcess::borrow);
            let caller = Caller { pid: &to.pid, tag: &to.tag, alias: to.alias.as_deref(), spawned };
            let node = pid_node(&to.pid).unwrap_or_default();
            self.reply_to(&to.peer, &node, caller, &reply, None);
        }
    }

    /// The caller of the call behind monitor `reference` (encoded) gave up: a DEMONITOR_P,
    /// read on the connection to `peer_name`. False when no call in flight has that monitor,
    /// or the call is not that node's: a node speaks for its own callers only (another
    /// peer that names a caller's monitor must not cancel its call).
    pub fn demonitor(&self, reference: &[u8], peer_name: &[u8]) -> bool {
        let ticket = {
            let calls = lock(&self.calls);
            calls.by_monitor.get(reference).copied().filter(|ticket| {
                calls.by_ticket.get(ticket).is_some_and(|call| {
                    call.node.as_deref() == Some(peer_name)
                        || call.reply_to.as_ref().is_some_and(|to| to.peer.config.name == peer_name)
                })
            })
        };
        ticket.inspect(|&ticket| self.cancel(ticket)).is_some()
    }

    /// A link's exit signal (EXIT, not `normal`) from `from` to `to`, read on the
    /// connection to `peer_name`: when `to` is a process spawned linked to `from` (whose
    /// native still runs) and `from` is of that node, the asker is gone and so is the
    /// process (it does not trap exits): its call is cancelled, as a DEMONITOR_P cancels
    /// one. False when it names no such process.
    pub fn link_exit(&self, from: &[u8], to: &[u8], peer_name: &[u8]) -> bool {
        let (Some(from), Some(to)) = (resource::canonical_holder(from), resource::canonical_holder(to)) else { return false };
        let ticket = {
            let calls = lock(&self.calls);
            calls.by_linked_spawn.get(&to).copied().filter(|ticket| {
                calls.by_ticket.get(ticket).and_then(|call| call.reply_to.as_ref()).is_some_and(|to| {
                    to.peer.config.name == peer_name && resource::canonical_holder(&to.pid).as_ref() == Some(&from)
                })
            })
        };
        ticket.inspect(|&ticket| self.cancel(ticket)).is_some()
    }

    fn cancel(&self, ticket: u64) {
        let python = {
            let calls = lock(&self.calls);
            let Some(call) = calls.by_ticket.get(&ticket) else { return };
            if call.cancel.swap(true, Ordering::Relaxed) {
                return;
            }
            call.python
        };
        self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        if python {
            self.push_job(JobEvent::Cancel(ticket));
        } else if self.runtime.cancel(ticket) {
            self.complete(ticket, None); // an async native's task, dropped
        }
    }

    // --- :info ------------------------------------------------------------------------------

    fn write_info(&self, out: &mut Vec<u8>) {
        let s = &self.stats;
        let counts = self.resources.counts();
        let (live, created, freed) =
            counts.iter().fold((0, 0, 0), |(l, c, f), (_, live, created, freed)| (l + live, c + created, f + freed));
        let int = |out: &mut Vec<u8>, key: &str, v: u64| {
            put_atom(out, key).expect("short atom");
            put_int(out, v.min(i64::MAX as u64) as i64);
        };
        put_map_header(out, 12).expect("a small map");
        put_atom(out, "version").expect("short atom");
        etf::encode::put_binary(out, env!("CARGO_PKG_VERSION").as_bytes()).expect("short");
        put_atom(out, "node").expect("short atom");
        put_atom(out, &self.config.node).expect("a node name is an atom");
        put_atom(out, "pid").expect("short atom");
        out.extend_from_slice(&self.config.pid);
        int(out, "calls", s.calls.load(Ordering::Relaxed));
        int(out, "errors", s.errors.load(Ordering::Relaxed));
        int(out, "cancelled", s.cancelled.load(Ordering::Relaxed));
        int(out, "oversized", s.oversized.load(Ordering::Relaxed));
        int(out, "in_flight", self.in_flight() as u64);
        put_atom(out, "peers").expect("short atom");
        let peers = self.peer_names();
        put_list_header(out, peers.len()).expect("peers fit");
        for p in &peers {
            put_atom(out, &String::from_utf8_lossy(p)).expect("a node name is an atom");
        }
        put_nil(out);
        int(out, "uptime_ms", self.started.elapsed().as_millis() as u64);
        put_atom(out, "resources").expect("short atom");
        put_map_header(out, 6).expect("a small map");
        int(out, "live", live);
        int(out, "created", created);
        int(out, "freed", freed);
        put_atom(out, "by_type").expect("short atom");
        put_map_header(out, counts.len()).expect("types fit");
        for (kind, live, created, freed) in &counts {
            put_atom(out, kind).expect("a type name is an atom");
            put_map_header(out, 3).expect("a small map");
            int(out, "live", *live);
            int(out, "created", *created);
            int(out, "freed", *freed);
        }
        int(out, "holders", self.resources.holder_count() as u64);
        int(out, "forged_exits", self.resources.forged_exits());
        self.write_native_stats(out);
    }

    /// `natives: %{add: %{calls: n, errors: n, p50_us: x, p99_us: y}, ...}`: every native
    /// served, by name (`:"name/arity"` for a name served at several arities); the
    /// latencies over the recent window (`stats::WINDOW` to twice that), nil without calls.
    fn write_native_stats(&self, out: &mut Vec<u8>) {
        let natives = self.native_stats();
        let keyed: Vec<(String, &NativeStats)> = natives
            .iter()
            .map(|(name, arity, stats)| {
                let shared = natives.iter().filter(|(n, _, _)| n == name).count() > 1;
                (if shared { format!("{name}/{arity}") } else { name.clone() }, *stats)
            })
            .filter(|(key, _)| key.chars().count() <= 255) // a name of 250 characters at two arities: left out
            .collect();
        put_atom(out, "natives").expect("short atom");
        put_map_header(out, keyed.len()).expect("natives fit");
        for (key, stats) in &keyed {
            put_atom(out, key).expect("at most 255 characters");
            let summary = stats.summary();
            put_map_header(out, 4).expect("a small map");
            for (field, value) in [
                ("calls", Some(summary.calls)),
                ("errors", Some(summary.errors)),
                ("p50_us", summary.p50_us),
                ("p99_us", summary.p99_us),
            ] {
                put_atom(out, field).expect("short atom");
                match value {
                    Some(v) => put_int(out, v.min(i64::MAX as u64) as i64),
                    None => put_atom(out, "nil").expect("short atom"),
                }
            }
        }
    }
}

fn decode_reference(bytes: &[u8]) -> Option<etf::Reference> {
    match etf::decode::decode_at_with(bytes, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()) {
        Ok((term, _)) => match &term {
            Term::Ref(r) => Some((**r).clone()),
            _ => None,
        },
        Err(_) => None,
    }
}

/// The node name in a pid's bytes.
fn pid_node(pid: &[u8]) -> Option<Vec<u8>> {
    let limits = etf::Limits::default();
    crate::reader::Reader::new(pid, 0, &limits).pid().map(|(_, node)| node.to_vec())
}
