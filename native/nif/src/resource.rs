//! Resource objects: native objects in a table keyed by references this node makes, held
//! by the BEAM processes that use them (shared/DESIGN.md section 2).
//!
//! A native returns `ResourceArc::new(value)`; its caller gets a plain reference and becomes
//! the object's first holder. Any process that passes the reference in a call becomes a
//! holder too; `{:share, ref, pid}` adds one, `{:release, ref}` removes the caller. The node
//! monitors every holder (MONITOR_P from its server); a holder's exit, or its node's
//! disconnect, removes it, and when the last holder is gone the object is dropped at once
//! (later calls: `{:error, {:badresource, ref}}`). References are random (see `new_ref`)
//! and an exit counts only from the holder itself, over its own node's connection
//! (`monitor_down`): a reference is as good as a capability, so neither can be forged.
//!
//! The table is a value, [`ResourceTable`], owned by the node's server (two servers, two
//! tables). Natives reach it only through the host of their call (`crate::host`): a crate
//! built as its own extension has its own copy of this code but never a table of its own.
//! [`ResourceArc`] is the natives' side; [`ResourceTable`] the node's.
//!
//! Locking: the objects are spread over shards, each behind its own lock, so calls on
//! different resources do not contend; an object's own state has its own lock inside it.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use etf::{Atom, Pid, Reference, Term};

use crate::convert::{kind, ArgError, Decoder, Encoder};
use crate::host::{
    self, Found, Host, Messenger, RefParts, ResourceType, HOST_BADARG, HOST_BADRESOURCE, HOST_NOCONNECTION, HOST_OK,
    HOST_OVERLOADED, HOST_WRONG_TYPE,
};
use crate::Slice;

/// A native type that can live in the resource table.
pub trait Resource: Send + Sync + 'static {
    /// The type's name in `:info` and in badarg messages ("expected a sorted_set").
    const TYPE_NAME: &'static str;

    /// Bytes this object holds, for `resource_info` (0 when unknown).
    fn size(&self) -> usize {
        0
    }

    /// A process this object monitors (`ResourceArc::monitor`) exited, or its node
    /// disconnected: called once per monitor, on a thread of the node that reads that
    /// node's connection (so keep it short), with a host (so `send` and resources work).
    /// Not called once the object is freed.
    fn down(&self, _pid: Pid, _monitor: Reference) {}
}

/// A holder: a BEAM pid, by its encoding (no version byte).
pub type Holder = Vec<u8>;

/// The resource's words (the reference's id words): the table's key.
type Key = Vec<u32>;

/// An object in the table: one count of it, and the functions of the crate that made it.
struct Entry {
    object: *const c_void,
    ty: &'static ResourceType,
    holders: HashSet<Holder>,
    /// The monitors it made (`watches` keys); boxed, as most resources make none and the
    /// table holds up to millions of entries (8 bytes each, not a Vec's 24).
    #[allow(clippy::box_collection)]
    monitors: Option<Box<Vec<Key>>>,
}

/// A process a resource monitors (`ResourceArc::monitor`), under a monitor reference.
struct Watch {
    resource: Key,
    pid: Holder,
    /// How the `down` of the resource sends (the node's, from the call that made it).
    messenger: Arc<dyn Messenger>,
}

impl Watch {
    /// Tells the watched process's node the monitor `monitor` is over (DEMONITOR_P).
    fn demonitor(&self, monitor: &Reference) {
        let encoded = encoded_reference(monitor);
        let _ = catch_unwind(AssertUnwindSafe(|| self.messenger.demonitor(&self.pid, &encoded)));
    }
}

/// A reference this node made (a resource's or a monitor's), in the External Term Format.
pub fn encoded_reference(reference: &Reference) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    etf::encode::put_reference(&mut out, reference).expect("a reference of this node");
    out
}

// The object is a `Resource` (Send + Sync) behind a counted pointer.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: the table's own count, given with the object to `create`.
        unsafe { (self.ty.release)(self.object) }
    }
}

#[derive(Default, Clone, Copy)]
pub struct TypeCounts {
    pub live: u64,
    pub created: u64,
    pub freed: u64,
}

/// Limits past which the table answers `:overloaded`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_live: usize,
    pub max_holders: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_live: 1_000_000, max_holders: 10_000 }
    }
}

struct HolderState {
    /// The monitor reference's words, once the monitor is made.
    monitor: Option<Key>,
    /// Whether the node has sent the MONITOR_P yet.
    monitor_sent: bool,
    resources: HashSet<Key>,
}

impl HolderState {
    fn new() -> Self {
        HolderState { monitor: None, monitor_sent: false, resources: HashSet::new() }
    }
}

const SHARDS: usize = 64;

/// The resource table of one node: references of that node to objects and their holders.
pub struct ResourceTable {
    node: String,
    creation: u32,
    live: AtomicUsize,
    forged_exits: AtomicU64,
    shards: Vec<RwLock<HashMap<Key, Entry>>>,
    holders: Mutex<HashMap<Holder, HolderState>>,
    monitors: Mutex<HashMap<Key, Holder>>,
    /// Processes resources monitor, by monitor reference.
    watches: Mutex<HashMap<Key, Watch>>,
    counts: Mutex<HashMap<&'static str, TypeCounts>>,
    limits: RwLock<Limits>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

// --- References -------------------------------------------------------------------------
//
// A reference to a resource is all it takes to use it (and to become its holder), and the
// monitor reference the node sends a holder is all it takes to end that hold: so none may
// be told from another. Every id word is random, from the operating system's CSPRNG: 18
// bits in the first word (as in BEAM's own references, whose first word has 18 significant
// bits: what every OTP 25-28 peer takes), 32 in each of the other two, 82 in all. Knowing any number of them says nothing of the
// next. The random bytes are drawn a block at a time, per thread, so that making a
// reference (on the hot path of every `create` call) costs no system call.

/// Random id words for 341 references, drawn at once (a 4 KiB read of the OS's CSPRNG).
const POOL_WORDS: usize = 3 * 341;

struct RandomPool {
    words: [u32; POOL_WORDS],
    used: usize,
}

thread_local! {
    static POOL: RefCell<RandomPool> = const { RefCell::new(RandomPool { words: [0; POOL_WORDS], used: POOL_WORDS }) };
}

/// Three random id words for a reference: 18 + 32 + 32 bits.
pub(crate) fn random_ids() -> [u32; 3] {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + 3 > POOL_WORDS {
            let mut bytes = [0u8; POOL_WORDS * 4];
            // Linux's getrandom(2) does not fail once the pool is seeded (early boot only);
            // a reference made of anything weaker would be the defect this code removes.
            getrandom::fill(&mut bytes).expect("the operating system's random source failed");
            for (word, chunk) in pool.words.iter_mut().zip(bytes.chunks_exact(4)) {
                *word = u32::from_ne_bytes(chunk.try_into().unwrap());
            }
            pool.used = 0;
        }
        let at = pool.used;
        pool.used += 3;
        [pool.words[at] & 0x3FFFF, pool.words[at + 1], pool.words[at + 2]]
    })
}

/// A new reference of this node, with random id words. Its callers check it against the
/// keys in use and draw again on a collision (all but impossible at 82 bits, and still never
/// allowed to replace an entry).
/// A pid's encoding as the table's holder key (re-encoded: one key per pid).
pub fn canonical_holder(raw_pid: &[u8]) -> Option<Holder> {
    decode_pid(raw_pid).map(|p| holder_of(&p))
}

fn decode_pid(bytes: &[u8]) -> Option<Pid> {
    match etf::decode::decode_at_with(bytes, 0, &mut etf::decode::TermBuilder, &etf::Limits::default()) {
        Ok((term, _)) => term.as_pid().cloned(),
        Err(_) => None,
    }
}

fn holder_node(holder: &[u8]) -> Option<String> {
    decode_pid(holder).map(|p| p.node.0)
}

/// An encoded pid's bytes, as a holder key.
pub fn holder_of(pid: &Pid) -> Holder {
    let mut out = Vec::new();
    etf::encode::put_pid(&mut out, pid).expect("a valid pid");
    out
}

/// What the table made of a MONITOR_P_EXIT (`monitor_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorExit {
    /// The exit of the process a monitor of the table watches, for that monitor, over the
    /// connection of that process's node: the holder let go of everything.
    Down,
    /// It names a monitor of the table, but another process as the one that exited, or it
    /// came over another node's connection: forged. Ignored (and counted).
    Forged,
    /// No monitor of the table has that reference: not the table's (ignored here).
    Unknown,
}

impl ResourceTable {
    /// The table of node `node` (with `creation`): its references are made in them.
    pub fn new(node: &str, creation: u32, limits: Limits) -> Self {
        ResourceTable {
            node: node.to_string(),
            creation,
            live: AtomicUsize::new(0),
            forged_exits: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            holders: Mutex::new(HashMap::new()),
            monitors: Mutex::new(HashMap::new()),
            watches: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
            limits: RwLock::new(limits),
        }
    }

    pub fn set_limits(&self, limits: Limits) {
        *write(&self.limits) = limits;
    }

    pub fn limits(&self) -> Limits {
        *read(&self.limits)
    }

    fn shard(&self, key: &Key) -> &RwLock<HashMap<Key, Entry>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[h.finish() as usize % SHARDS]
    }

    /// A new reference of this node, with random id words. Its callers check it against the
    /// keys in use and draw again on a collision (all but impossible at 82 bits, and still
    /// never allowed to replace an entry).
    fn new_ref(&self) -> Reference {
        Reference { node: Atom(self.node.clone()), creation: self.creation, ids: random_ids().to_vec() }
    }

    /// The key of a reference, if it is one of this node.
    fn key_of(&self, node: &[u8], creation: u32, ids: &[u32]) -> Option<Key> {
        (node == self.node.as_bytes() && creation == self.creation).then(|| ids.to_vec())
    }

    fn key(&self, reference: &Reference) -> Option<Key> {
        self.key_of(reference.node.0.as_bytes(), reference.creation, &reference.ids)
    }

    // --- Calls ------------------------------------------------------------------------------

    /// Runs `f` with the host of `call` on this table: what `f` passes it to (`call_entry`),
    /// and the current host of this thread meanwhile (so `ResourceArc` works in the node's
    /// own code too). Resources the call creates or is passed are held by its caller from
    /// then on. The flag says whether the call made or used any resource (then the caller
    /// may need a monitor: `take_monitor_for`).
    pub fn with_host<R>(&self, call: &CallInfo<'_>, f: impl FnOnce(&Host) -> R) -> (R, bool) {
        let state = CallState {
            table: self,
            caller: OnceCell::new(),
            raw_caller: call.caller,
            touched: Cell::new(false),
            messenger: call.messenger,
            spawn: call.spawn,
        };
        let host = Host {
            context: &state as *const CallState<'_> as *const c_void,
            caller: Slice::new(call.caller.unwrap_or(&[])),
            node: Slice::new(self.node.as_bytes()),
            creation: self.creation,
            create: host_create,
            lookup: host_lookup,
            tag: Slice::new(call.tag.unwrap_or(&[])),
            send: host_send,
            sender: host_sender,
            sender_send: host::sender_send,
            sender_drop: host::sender_drop,
            monitor: host_monitor,
            demonitor: host_demonitor,
            spawn: host_spawn,
        };
        let result = host::with_current(&host, || f(&host));
        (result, state.touched.get())
    }

    /// Puts `object` of type `ty` in the table, held by `caller`: its reference's id words.
    /// None past `max_live` (the object is then not taken).
    fn insert(&self, ty: &'static ResourceType, object: *const c_void, caller: Option<&Holder>) -> Option<Reference> {
        let max_live = read(&self.limits).max_live;
        if self.live.fetch_add(1, Ordering::Relaxed) >= max_live {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        // SAFETY: the crate that described the type stays loaded.
        let type_name = unsafe { ty.name() };
        // Drawn again until the reference is free in its shard, checked and taken under
        // that shard's lock: a live resource is never replaced.
        let reference = loop {
            let reference = self.new_ref();
            let mut shard = write(self.shard(&reference.ids));
            if shard.contains_key(&reference.ids) {
                continue;
            }
            let mut holders = HashSet::new();
            if let Some(caller) = caller {
                holders.insert(caller.clone());
                lock(&self.holders).entry(caller.clone()).or_insert_with(HolderState::new).resources.insert(reference.ids.clone());
            }
            shard.insert(reference.ids.clone(), Entry { object, ty, holders, monitors: None });
            break reference;
        };
        let mut counts = lock(&self.counts);
        let c = counts.entry(type_name).or_default();
        c.live += 1;
        c.created += 1;
        Some(reference)
    }

    /// The object behind `key` if it is a `ty`, counted once more for the caller, who holds
    /// the resource from then on.
    fn lookup(&self, key: &Key, ty: &ResourceType, caller: Option<&Holder>, found: &mut Found) -> i32 {
        let max_holders = read(&self.limits).max_holders;
        let mut shard = write(self.shard(key));
        let Some(entry) = shard.get_mut(key) else { return HOST_BADRESOURCE };
        if !entry.ty.same(ty) {
            found.type_name = entry.ty.name;
            return HOST_WRONG_TYPE;
        }
        // Whoever passes the reference in a call holds the resource from then on.
        if let Some(caller) = caller {
            if !self.add_holder_locked(entry, key, caller, max_holders) {
                found.max_holders = max_holders;
                return HOST_OVERLOADED;
            }
        }
        // SAFETY: the entry holds a count of the object, under the shard's lock.
        unsafe { (entry.ty.retain)(entry.object) };
        found.object = entry.object;
        HOST_OK
    }

    // --- Holders ----------------------------------------------------------------------------

    /// Makes `holder` a holder of `key` (already in its shard's entry). False when the
    /// resource has as many holders as it may.
    fn add_holder_locked(&self, entry: &mut Entry, key: &Key, holder: &Holder, max_holders: usize) -> bool {
        if entry.holders.contains(holder) {
            return true;
        }
        if entry.holders.len() >= max_holders {
            return false;
        }
        entry.holders.insert(holder.clone());
        lock(&self.holders).entry(holder.clone()).or_insert_with(HolderState::new).resources.insert(key.clone());
        true
    }

    /// Removes `holder` from the resource `key`; drops the object if it was the last one.
    fn remove_holder(&self, key: &Key, holder: &Holder) -> bool {
        let dropped = {
            let mut shard = write(self.shard(key));
            let Some(entry) = shard.get_mut(key) else { return false };
            if !entry.holders.remove(holder) {
                return false;
            }
            if entry.holders.is_empty() {
                shard.remove(key)
            } else {
                None
            }
        };
        if let Some(h) = lock(&self.holders).get_mut(holder) {
            h.resources.remove(key);
        }
        if let Some(entry) = dropped {
            self.freed(entry);
        }
        true
    }

    fn freed(&self, entry: Entry) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        if let Some(monitors) = &entry.monitors {
            // Its monitors end with it (a late exit is then no monitor of the table's), on
            // the watched processes' nodes too.
            let ended: Vec<(Key, Watch)> = {
                let mut watches = lock(&self.watches);
                monitors.iter().filter_map(|m| watches.remove(m).map(|w| (m.clone(), w))).collect()
            };
            for (ids, watch) in ended {
                watch.demonitor(&Reference { node: Atom(self.node.clone()), creation: self.creation, ids });
            }
        }
        let mut counts = lock(&self.counts);
        // SAFETY: the crate that described the type stays loaded.
        let c = counts.entry(unsafe { entry.ty.name() }).or_default();
        c.live -= 1;
        c.freed += 1;
        drop(counts);
        drop(entry); // the object goes when the last ResourceArc in use lets go of it
    }

    /// A holder is gone (it exited, or the node stopped monitoring it): it lets go of
    /// everything.
    fn holder_gone(&self, holder: &Holder) {
        let state = lock(&self.holders).remove(holder);
        if let Some(state) = state {
            if let Some(m) = &state.monitor {
                lock(&self.monitors).remove(m);
            }
            for key in state.resources {
                self.remove_holder(&key, holder);
            }
        }
    }

    /// The monitor the node should send for `holder` now, if it has not yet: (monitor
    /// reference). Called after a call that may have made the caller a holder.
    pub fn take_monitor_for(&self, holder: &[u8]) -> Option<Reference> {
        let mut holders = lock(&self.holders);
        let state = holders.get_mut(holder)?;
        if state.monitor_sent || state.resources.is_empty() {
            return None;
        }
        let mut monitors = lock(&self.monitors);
        let reference = loop {
            let reference = self.new_ref();
            if !monitors.contains_key(&reference.ids) {
                break reference;
            }
        };
        state.monitor = Some(reference.ids.clone());
        state.monitor_sent = true;
        monitors.insert(reference.ids.clone(), holder.to_vec());
        Some(reference)
    }

    /// A MONITOR_P_EXIT for `reference`, `from_proc` (the encoded FromProc: the process that
    /// exited) having come over the connection to `peer_node`. Only the holder the monitor
    /// was made for, and only its own node, can end it: a peer that could name any monitor
    /// reference and any pid could otherwise free every other process's resources.
    pub fn monitor_down(&self, reference: &Reference, from_proc: &[u8], peer_node: &[u8]) -> MonitorExit {
        let Some(k) = self.key(reference) else { return MonitorExit::Unknown };
        let mut monitors = lock(&self.monitors);
        let Some(holder) = monitors.get(&k) else {
            drop(monitors);
            return self.watch_down(&k, reference, from_proc, peer_node);
        };
        let from_holder = canonical_holder(from_proc).is_some_and(|exited| exited == *holder);
        let from_its_node = holder_node(holder).is_some_and(|node| node.as_bytes() == peer_node);
        if !(from_holder && from_its_node) {
            drop(monitors);
            self.forged_exits.fetch_add(1, Ordering::Relaxed);
            return MonitorExit::Forged;
        }
        let holder = monitors.remove(&k).expect("looked up under the same lock");
        drop(monitors);
        self.holder_gone(&holder);
        MonitorExit::Down
    }

    /// A MONITOR_P_EXIT for a resource's monitor `k` (see `monitor_down`): only the watched
    /// process, over its own node's connection, ends it.
    fn watch_down(&self, k: &Key, reference: &Reference, from_proc: &[u8], peer_node: &[u8]) -> MonitorExit {
        let genuine = {
            let watches = lock(&self.watches);
            let Some(watch) = watches.get(k) else { return MonitorExit::Unknown };
            canonical_holder(from_proc).is_some_and(|exited| exited == watch.pid)
                && holder_node(&watch.pid).is_some_and(|node| node.as_bytes() == peer_node)
        };
        if !genuine {
            self.forged_exits.fetch_add(1, Ordering::Relaxed);
            return MonitorExit::Forged;
        }
        if let Some(watch) = self.unwatch(k, None) {
            self.fire_down(&watch, reference);
        }
        MonitorExit::Down
    }

    /// Makes the resource `resource` monitor `pid` (as its `messenger` sends): the monitor's
    /// reference, or the `HOST_*` why not.
    fn watch(&self, resource: &Key, pid: &Holder, messenger: &Arc<dyn Messenger>) -> Result<Reference, i32> {
        let mut shard = write(self.shard(resource));
        let entry = shard.get_mut(resource).ok_or(HOST_BADRESOURCE)?;
        let mut watches = lock(&self.watches);
        let reference = loop {
            let reference = self.new_ref();
            if !watches.contains_key(&reference.ids) && !lock(&self.monitors).contains_key(&reference.ids) {
                break reference;
            }
        };
        let watch = Watch { resource: resource.clone(), pid: pid.clone(), messenger: messenger.clone() };
        watches.insert(reference.ids.clone(), watch);
        entry.monitors.get_or_insert_with(Default::default).push(reference.ids.clone());
        Ok(reference)
    }

    /// Removes the monitor `k` (only if it is one of the resource `of`, when given): what it
    /// watched, if it was one.
    fn unwatch(&self, k: &Key, of: Option<&Key>) -> Option<Watch> {
        let watch = {
            let mut watches = lock(&self.watches);
            match watches.get(k) {
                Some(w) if of.map_or(true, |r| *r == w.resource) => watches.remove(k)?,
                _ => return None,
            }
        };
        if let Some(entry) = write(self.shard(&watch.resource)).get_mut(&watch.resource) {
            if let Some(monitors) = &mut entry.monitors {
                monitors.retain(|m| m != k);
            }
        }
        Some(watch)
    }

    /// Runs the `down` of the resource `watch` was for (if it still lives), outside the
    /// table's locks, with a host of its own.
    fn fire_down(&self, watch: &Watch, monitor: &Reference) {
        let (ty, object) = {
            let shard = read(self.shard(&watch.resource));
            let Some(entry) = shard.get(&watch.resource) else { return };
            // SAFETY: the entry holds a count of the object, under the shard's lock.
            unsafe { (entry.ty.retain)(entry.object) };
            (entry.ty, entry.object)
        };
        let call = CallInfo { messenger: Some(&watch.messenger), ..CallInfo::default() };
        self.with_host(&call, |host| {
            // SAFETY: our count of the object; the type's crate stays loaded.
            unsafe {
                (ty.down)(object, host, Slice::new(&watch.pid), &RefParts::of(monitor));
                (ty.release)(object);
            }
        });
    }

    /// MONITOR_P_EXITs ignored as forged (`MonitorExit::Forged`) since the table was made.
    pub fn forged_exits(&self) -> u64 {
        self.forged_exits.load(Ordering::Relaxed)
    }

    /// Every holder on `node` is gone (the node disconnected), and every process there that
    /// a resource monitors is down.
    pub fn node_down(&self, node: &str) {
        let gone: Vec<Holder> =
            lock(&self.holders).keys().filter(|h| holder_node(h).as_deref() == Some(node)).cloned().collect();
        for holder in gone {
            self.holder_gone(&holder);
        }
        let watched: Vec<Key> =
            lock(&self.watches).iter().filter(|(_, w)| holder_node(&w.pid).as_deref() == Some(node)).map(|(k, _)| k.clone()).collect();
        for k in watched {
            if let Some(watch) = self.unwatch(&k, None) {
                let monitor = Reference { node: Atom(self.node.clone()), creation: self.creation, ids: k };
                self.fire_down(&watch, &monitor);
            }
        }
    }

    /// `{:release, ref}` from `holder`: it lets go. False when `reference` is not a live
    /// resource of this node (or `holder` did not hold it).
    pub fn release(&self, reference: &Reference, holder: &[u8]) -> bool {
        let Some(k) = self.key(reference) else { return false };
        self.remove_holder(&k, &holder.to_vec())
    }

    /// `{:share, ref, pid}`: `holder` holds the resource too. Err(true) when not live,
    /// Err(false) when it has as many holders as it may.
    pub fn share(&self, reference: &Reference, holder: &[u8]) -> Result<(), bool> {
        let Some(k) = self.key(reference) else { return Err(true) };
        let max = read(&self.limits).max_holders;
        let mut shard = write(self.shard(&k));
        let Some(entry) = shard.get_mut(&k) else { return Err(true) };
        if self.add_holder_locked(entry, &k, &holder.to_vec(), max) {
            Ok(())
        } else {
            Err(false)
        }
    }

    /// Drops the resource whatever its holders (the node's own use: tests, shutdown).
    pub fn free(&self, reference: &Reference) -> bool {
        let Some(k) = self.key(reference) else { return false };
        let entry = write(self.shard(&k)).remove(&k);
        match entry {
            Some(entry) => {
                let mut all = lock(&self.holders);
                for h in &entry.holders {
                    if let Some(state) = all.get_mut(h) {
                        state.resources.remove(&k);
                    }
                }
                drop(all);
                self.freed(entry);
                true
            }
            None => false,
        }
    }

    /// (type, holders as encoded pids, size in bytes) of a live resource.
    pub fn info(&self, reference: &Reference) -> Option<(&'static str, Vec<Holder>, usize)> {
        let k = self.key(reference)?;
        let shard = read(self.shard(&k));
        let entry = shard.get(&k)?;
        let mut holders: Vec<Holder> = entry.holders.iter().cloned().collect();
        holders.sort();
        // SAFETY: the entry's count keeps the object alive; its crate stays loaded.
        Some(unsafe { (entry.ty.name(), holders, (entry.ty.size)(entry.object)) })
    }

    /// The type of a live resource.
    pub fn type_of(&self, reference: &Reference) -> Option<&'static str> {
        self.info(reference).map(|(t, _, _)| t)
    }

    /// (type, live, created, freed) per resource type.
    pub fn counts(&self) -> Vec<(&'static str, u64, u64, u64)> {
        let counts = lock(&self.counts);
        let mut all: Vec<_> = counts.iter().map(|(t, c)| (*t, c.live, c.created, c.freed)).collect();
        all.sort();
        all
    }

    /// Holders the table tracks (for leak checks).
    pub fn holder_count(&self) -> usize {
        lock(&self.holders).len()
    }
}

// --- The node's side of the host -----------------------------------------------------------

/// Who a call is from and how its native reaches the node, for `ResourceTable::with_host`.
#[derive(Clone, Copy, Default)]
pub struct CallInfo<'a> {
    /// The caller's pid (or a cast's sender's), encoded without version byte.
    pub caller: Option<&'a [u8]>,
    /// The call's reply tag, encoded without version byte (none for a cast).
    pub tag: Option<&'a [u8]>,
    /// Where the native's messages go (none: nowhere, `HOST_NOCONNECTION`).
    pub messenger: Option<&'a Arc<dyn Messenger>>,
    /// Who takes an async native's task (none: async natives cannot run here).
    pub spawn: Option<&'a dyn Fn(crate::task::AsyncTask) -> i32>,
}

impl<'a> CallInfo<'a> {
    /// A call from `caller`, with no tag and no messages.
    pub fn from_caller(caller: Option<&'a [u8]>) -> Self {
        CallInfo { caller, ..CallInfo::default() }
    }
}

/// What `Host::context` points to: the table, and the call's caller and use of resources.
struct CallState<'a> {
    messenger: Option<&'a Arc<dyn Messenger>>,
    spawn: Option<&'a dyn Fn(crate::task::AsyncTask) -> i32>,
    table: &'a ResourceTable,
    raw_caller: Option<&'a [u8]>,
    /// The caller as a holder key: its pid re-encoded, so the same pid is always the same
    /// key whatever atom encoding its node name came in (made once per call, when needed).
    caller: OnceCell<Option<Holder>>,
    touched: Cell<bool>,
}

impl CallState<'_> {
    fn caller(&self) -> Option<&Holder> {
        self.touched.set(true);
        self.caller.get_or_init(|| self.raw_caller.and_then(canonical_holder)).as_ref()
    }
}

unsafe extern "C" fn host_create(host: *const Host, ty: *const ResourceType, object: *const c_void, ids: *mut u32) -> i32 {
    let state = &*((*host).context as *const CallState<'_>);
    // SAFETY: a type description lives as long as its crate (`host::resource_type`).
    let ty: &'static ResourceType = &*ty;
    match state.table.insert(ty, object, state.caller()) {
        Some(reference) => {
            std::ptr::copy_nonoverlapping(reference.ids.as_ptr(), ids, 3);
            HOST_OK
        }
        None => HOST_OVERLOADED,
    }
}

unsafe extern "C" fn host_lookup(host: *const Host, reference: *const RefParts, ty: *const ResourceType, found: *mut Found) -> i32 {
    let state = &*((*host).context as *const CallState<'_>);
    let caller = state.caller();
    let r = &*reference;
    match state.table.key_of(r.node.as_bytes(), r.creation, r.id_words()) {
        Some(key) => state.table.lookup(&key, &*ty, caller, &mut *found),
        None => HOST_BADRESOURCE,
    }
}

unsafe extern "C" fn host_send(host: *const Host, to: Slice, message: Slice) -> i32 {
    let state = &*((*host).context as *const CallState<'_>);
    match state.messenger {
        Some(m) => catch_unwind(AssertUnwindSafe(|| m.send(to.as_bytes(), message.as_bytes()))).unwrap_or(HOST_BADARG),
        None => HOST_NOCONNECTION,
    }
}

unsafe extern "C" fn host_monitor(host: *const Host, resource: *const RefParts, pid: Slice, ids: *mut u32) -> i32 {
    let state = &*((*host).context as *const CallState<'_>);
    let r = &*resource;
    let Some(key) = state.table.key_of(r.node.as_bytes(), r.creation, r.id_words()) else { return HOST_BADRESOURCE };
    let Some(pid) = canonical_holder(pid.as_bytes()) else { return HOST_BADARG };
    let Some(messenger) = state.messenger else { return HOST_NOCONNECTION };
    let reference = match state.table.watch(&key, &pid, messenger) {
        Ok(reference) => reference,
        Err(status) => return status,
    };
    let encoded = encoded_reference(&reference);
    let status = catch_unwind(AssertUnwindSafe(|| messenger.monitor(&pid, &encoded))).unwrap_or(HOST_BADARG);
    if status != HOST_OK {
        state.table.unwatch(&reference.ids, None);
        return status;
    }
    std::ptr::copy_nonoverlapping(reference.ids.as_ptr(), ids, 3);
    HOST_OK
}

unsafe extern "C" fn host_demonitor(host: *const Host, resource: *const RefParts, monitor: *const RefParts) -> i32 {
    let state = &*((*host).context as *const CallState<'_>);
    let (r, m) = (&*resource, &*monitor);
    let Some(of) = state.table.key_of(r.node.as_bytes(), r.creation, r.id_words()) else { return HOST_BADRESOURCE };
    let Some(key) = state.table.key_of(m.node.as_bytes(), m.creation, m.id_words()) else { return HOST_BADRESOURCE };
    let Some(watch) = state.table.unwatch(&key, Some(&of)) else { return HOST_BADRESOURCE };
    watch.demonitor(&m.to_reference());
    HOST_OK
}

unsafe extern "C" fn host_spawn(host: *const Host, task: crate::task::AsyncTask) -> i32 {
    let state = &*((*host).context as *const CallState<'_>);
    match state.spawn {
        Some(spawn) => spawn(task),
        None => HOST_NOCONNECTION,
    }
}

unsafe extern "C" fn host_sender(host: *const Host) -> *const c_void {
    let state = &*((*host).context as *const CallState<'_>);
    state.messenger.map_or(std::ptr::null(), host::new_sender)
}

// --- ResourceArc: the natives' side ----------------------------------------------------------

/// A counted handle to a resource object.
pub struct ResourceArc<T: Resource> {
    object: Arc<T>,
    reference: Reference,
}

/// The table is full (`max_live`) or a resource has as many holders as it may: the caller
/// gets `{:error, :overloaded}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overloaded;

impl Encoder for Overloaded {
    fn encode(&self, out: &mut Vec<u8>) {
        crate::reply::write_reason(out, crate::reply::Reason::Overloaded);
    }
}

fn running_host<'a>() -> &'a Host {
    host::current_host().expect(
        "ResourceArc::new outside a native's call: a resource lives in the table of the node that runs the native",
    )
}

impl<T: Resource> ResourceArc<T> {
    /// Puts `value` in the resource table of the node running this native, under a new
    /// reference of that node, held by the call's caller. Past the table's limit:
    /// `Err(Overloaded)`. Panics outside a native's call (there is no table then).
    pub fn try_new(value: T) -> Result<Self, Overloaded> {
        let host = running_host();
        let object = Arc::new(value);
        let raw = Arc::into_raw(object.clone()) as *const c_void;
        let mut ids = [0u32; 3];
        // SAFETY: the host of the running call; `raw` is one count of the object, which the
        // table takes on success.
        let status = unsafe { (host.create)(host, host::resource_type::<T>(), raw, ids.as_mut_ptr()) };
        if status != HOST_OK {
            // SAFETY: not taken: the count is still ours.
            drop(unsafe { Arc::from_raw(raw as *const T) });
            return Err(Overloaded);
        }
        // SAFETY: the host's node name is UTF-8, alive for the call.
        let node = unsafe { String::from_utf8_lossy(host.node.as_bytes()).into_owned() };
        Ok(ResourceArc { object, reference: Reference { node: Atom(node), creation: host.creation, ids: ids.to_vec() } })
    }

    /// `try_new`, for natives that do not expect the table to fill up (a full table is then
    /// a panic: `{:error, {:panic, ...}}`).
    pub fn new(value: T) -> Self {
        Self::try_new(value).unwrap_or_else(|_| panic!("the resource table is full (max live resources reached)"))
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Makes this resource monitor the process `pid`: `T::down(pid, monitor)` runs once when
    /// it exits (at once if it already has) or its node disconnects, unless the resource is
    /// freed first or `demonitor` is called (Rustler's `monitor`). The monitor's reference;
    /// None outside a native's call, when `pid`'s node is not connected, or when the
    /// resource is no longer live.
    pub fn monitor(&self, pid: &Pid) -> Option<Reference> {
        let host = host::current_host()?;
        let mut encoded = Vec::with_capacity(32);
        etf::encode::put_pid(&mut encoded, pid).ok()?;
        let mut ids = [0u32; 3];
        // SAFETY: the host of the running call, pointers alive for the call.
        let status = unsafe { (host.monitor)(host, &RefParts::of(&self.reference), Slice::new(&encoded), ids.as_mut_ptr()) };
        (status == HOST_OK).then(|| Reference { node: self.reference.node.clone(), creation: self.reference.creation, ids: ids.to_vec() })
    }

    /// Removes a monitor `monitor` made; false when there is none (it fired, was removed, or
    /// the resource was freed) or outside a native's call.
    pub fn demonitor(&self, monitor: &Reference) -> bool {
        let Some(host) = host::current_host() else { return false };
        // SAFETY: as in `monitor`.
        unsafe { (host.demonitor)(host, &RefParts::of(&self.reference), &RefParts::of(monitor)) == HOST_OK }
    }
}

impl<T: Resource> Clone for ResourceArc<T> {
    fn clone(&self) -> Self {
        ResourceArc { object: self.object.clone(), reference: self.reference.clone() }
    }
}

impl<T: Resource> Deref for ResourceArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T: Resource> Decoder for ResourceArc<T> {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        let Some(reference) = term.as_reference() else {
            return Err(ArgError::BadArg(format!("expected a {} resource, got {}", T::TYPE_NAME, kind(term))));
        };
        // Outside a call there is no table: nothing is live.
        let Some(host) = host::current_host() else { return Err(ArgError::BadResource(reference.clone())) };
        let mut found = Found::default();
        // SAFETY: the host of the running call, with pointers alive for the call.
        let status = unsafe {
(host.lookup)(host, &RefParts::of(reference), host::resource_type::<T>(), &mut found)
        };
        match status {
            // SAFETY: counted once for us by the table.
            HOST_OK => Ok(ResourceArc { object: unsafe { Arc::from_raw(found.object as *const T) }, reference: reference.clone() }),
            HOST_WRONG_TYPE => {
                // SAFETY: a type name, static in its crate.
                let got = String::from_utf8_lossy(unsafe { found.type_name.as_bytes() });
                Err(ArgError::BadArg(if got == T::TYPE_NAME {
                    // The same name from another copy of the code: another crate's type, or
                    // this crate's from before it was reloaded.
                    format!("expected a {got} resource of this build of its crate, got one made by another build (or another crate)")
                } else {
                    format!("expected a {} resource, got a {got} resource", T::TYPE_NAME)
                }))
            }
            HOST_OVERLOADED => Err(ArgError::BadArg(format!(
                "the resource already has {} holders (the limit)",
                found.max_holders
            ))),
            _ => Err(ArgError::BadResource(reference.clone())),
        }
    }
}

impl<T: Resource> Encoder for ResourceArc<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.reference.encode(out);
    }
}
