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
//! Locking: the objects are spread over shards, each behind its own lock, so calls on
//! different resources do not contend; an object's own state has its own lock inside it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use etf::{Atom, Pid, Reference, Term};

use crate::convert::{kind, ArgError, Decoder, Encoder};

/// A native type that can live in the resource table.
pub trait Resource: Send + Sync + 'static {
    /// The type's name in `:info` and in badarg messages ("expected a sorted_set").
    const TYPE_NAME: &'static str;

    /// Bytes this object holds, for `resource_info` (0 when unknown).
    fn size(&self) -> usize {
        0
    }
}

/// A holder: a BEAM pid, by its encoding (no version byte).
pub type Holder = Vec<u8>;

/// The resource's words (the reference's id words): the table's key.
type Key = Vec<u32>;

struct Entry {
    object: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
    size: fn(&(dyn Any + Send + Sync)) -> usize,
    holders: HashSet<Holder>,
}

#[derive(Default, Clone, Copy)]
pub struct TypeCounts {
    pub live: u64,
    pub created: u64,
    pub freed: u64,
}

/// Limits past which the table answers `:overloaded`.
pub struct Limits {
    pub max_live: usize,
    pub max_holders: usize,
}

struct HolderState {
    /// The monitor reference's words, once the monitor is made.
    monitor: Option<Key>,
    /// Whether the node has sent the MONITOR_P yet.
    monitor_sent: bool,
    resources: HashSet<Key>,
}

const SHARDS: usize = 64;

struct Table {
    identity: RwLock<Option<(String, u32)>>,
    live: AtomicUsize,
    forged_exits: AtomicU64,
    shards: Vec<RwLock<HashMap<Key, Entry>>>,
    holders: Mutex<HashMap<Holder, HolderState>>,
    monitors: Mutex<HashMap<Key, Holder>>,
    counts: Mutex<HashMap<&'static str, TypeCounts>>,
    limits: RwLock<Limits>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        identity: RwLock::new(None),
        forged_exits: AtomicU64::new(0),
        live: AtomicUsize::new(0),
        shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        holders: Mutex::new(HashMap::new()),
        monitors: Mutex::new(HashMap::new()),
        counts: Mutex::new(HashMap::new()),
        limits: RwLock::new(Limits { max_live: 1_000_000, max_holders: 10_000 }),
    })
}

fn shard(key: &Key) -> &'static RwLock<HashMap<Key, Entry>> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    &table().shards[h.finish() as usize % SHARDS]
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node's name and creation: references to resources are made in them.
pub fn set_identity(node: &str, creation: u32) {
    *table().identity.write().unwrap() = Some((node.to_string(), creation));
}

pub fn set_limits(max_live: usize, max_holders: usize) {
    *table().limits.write().unwrap() = Limits { max_live, max_holders };
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
fn random_ids() -> [u32; 3] {
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
fn new_ref() -> Option<Reference> {
    let (node, creation) = table().identity.read().unwrap().clone()?;
    Some(Reference { node: Atom(node), creation, ids: random_ids().to_vec() })
}

fn key(reference: &Reference) -> Option<Key> {
    let identity = table().identity.read().unwrap();
    let (node, creation) = identity.as_ref()?;
    (reference.node.0 == *node && reference.creation == *creation).then(|| reference.ids.clone())
}

// --- The caller of the running call ------------------------------------------------------

thread_local! {
    static CALLER: RefCell<Option<Holder>> = const { RefCell::new(None) };
    static TOUCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` as a call from `caller` (an encoded pid): resources it creates or is passed are
/// held by that process from then on. The flag says whether the call made or used any
/// resource (then the caller may need a monitor: `take_monitor_for`).
pub fn with_caller<R>(caller: Option<&[u8]>, f: impl FnOnce() -> R) -> (R, bool) {
    let previous = CALLER.with(|c| c.replace(caller.map(<[u8]>::to_vec)));
    let touched_before = TOUCHED.with(|t| t.replace(false));
    let result = f();
    let touched = TOUCHED.with(|t| t.replace(touched_before));
    CALLER.with(|c| *c.borrow_mut() = previous);
    (result, touched)
}

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

/// The caller as a holder key: its pid re-encoded, so the same pid is always the same key
/// whatever atom encoding its node name came in.
fn current_caller() -> Option<Holder> {
    TOUCHED.with(|t| t.set(true));
    let raw = CALLER.with(|c| c.borrow().clone())?;
    canonical_holder(&raw)
}

// --- Holders ------------------------------------------------------------------------------

/// Makes `holder` a holder of `key` (already in its shard's entry). False when the resource
/// has as many holders as it may.
fn add_holder_locked(entry: &mut Entry, key: &Key, holder: &Holder, max_holders: usize) -> bool {
    if entry.holders.contains(holder) {
        return true;
    }
    if entry.holders.len() >= max_holders {
        return false;
    }
    entry.holders.insert(holder.clone());
    lock(&table().holders)
        .entry(holder.clone())
        .or_insert_with(|| HolderState { monitor: None, monitor_sent: false, resources: HashSet::new() })
        .resources
        .insert(key.clone());
    true
}

/// Removes `holder` from the resource `key`; drops the object if it was the last one.
fn remove_holder(key: &Key, holder: &Holder) -> bool {
    let dropped = {
        let mut shard = shard(key).write().unwrap();
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
    if let Some(h) = lock(&table().holders).get_mut(holder) {
        h.resources.remove(key);
    }
    if let Some(entry) = dropped {
        freed(entry);
    }
    true
}

fn freed(entry: Entry) {
    table().live.fetch_sub(1, Ordering::Relaxed);
    let mut counts = lock(&table().counts);
    let c = counts.entry(entry.type_name).or_default();
    c.live -= 1;
    c.freed += 1;
    drop(counts);
    drop(entry); // the object goes when the last ResourceArc in use lets go of it
}

/// A holder is gone (it exited, or the node stopped monitoring it): it lets go of everything.
fn holder_gone(holder: &Holder) {
    let state = lock(&table().holders).remove(holder);
    if let Some(state) = state {
        if let Some(m) = &state.monitor {
            lock(&table().monitors).remove(m);
        }
        for key in state.resources {
            remove_holder(&key, holder);
        }
    }
}

/// The monitor the node should send for `holder` now, if it has not yet: (monitor
/// reference). Called after a call that may have made the caller a holder.
pub fn take_monitor_for(holder: &[u8]) -> Option<Reference> {
    let mut holders = lock(&table().holders);
    let state = holders.get_mut(holder)?;
    if state.monitor_sent || state.resources.is_empty() {
        return None;
    }
    let mut monitors = lock(&table().monitors);
    let reference = loop {
        let reference = new_ref()?;
        if !monitors.contains_key(&reference.ids) {
            break reference;
        }
    };
    state.monitor = Some(reference.ids.clone());
    state.monitor_sent = true;
    monitors.insert(reference.ids.clone(), holder.to_vec());
    Some(reference)
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

/// A MONITOR_P_EXIT for `reference`, `from_proc` (the encoded FromProc: the process that
/// exited) having come over the connection to `peer_node`. Only the holder the monitor was
/// made for, and only its own node, can end it: a peer that could name any monitor
/// reference and any pid could otherwise free every other process's resources.
pub fn monitor_down(reference: &Reference, from_proc: &[u8], peer_node: &[u8]) -> MonitorExit {
    let Some(k) = key(reference) else { return MonitorExit::Unknown };
    let mut monitors = lock(&table().monitors);
    let Some(holder) = monitors.get(&k) else { return MonitorExit::Unknown };
    let from_holder = canonical_holder(from_proc).is_some_and(|exited| exited == *holder);
    let from_its_node = holder_node(holder).is_some_and(|node| node.as_bytes() == peer_node);
    if !(from_holder && from_its_node) {
        drop(monitors);
        table().forged_exits.fetch_add(1, Ordering::Relaxed);
        return MonitorExit::Forged;
    }
    let holder = monitors.remove(&k).expect("looked up under the same lock");
    drop(monitors);
    holder_gone(&holder);
    MonitorExit::Down
}

/// MONITOR_P_EXITs ignored as forged (`MonitorExit::Forged`) since the node started.
pub fn forged_exits() -> u64 {
    table().forged_exits.load(Ordering::Relaxed)
}

/// Every holder on `node` is gone (the node disconnected).
pub fn node_down(node: &str) {
    let gone: Vec<Holder> = lock(&table().holders)
        .keys()
        .filter(|h| holder_node(h).as_deref() == Some(node))
        .cloned()
        .collect();
    for holder in gone {
        holder_gone(&holder);
    }
}

fn holder_node(holder: &[u8]) -> Option<String> {
    decode_pid(holder).map(|p| p.node.0)
}

/// `{:release, ref}` from `holder`: it lets go. False when `reference` is not a live
/// resource of this node (or `holder` did not hold it).
pub fn release(reference: &Reference, holder: &[u8]) -> bool {
    let Some(k) = key(reference) else { return false };
    remove_holder(&k, &holder.to_vec())
}

/// `{:release, ref}` from the caller of the running call.
pub fn release_by_caller(reference: &Reference) -> bool {
    match current_caller() {
        Some(holder) => release(reference, &holder),
        None => false,
    }
}

/// `{:share, ref, pid}`: `holder` holds the resource too. Err(true) when not live,
/// Err(false) when it has as many holders as it may.
pub fn share(reference: &Reference, holder: &[u8]) -> Result<(), bool> {
    let Some(k) = key(reference) else { return Err(true) };
    let max = table().limits.read().unwrap().max_holders;
    let mut shard = shard(&k).write().unwrap();
    let Some(entry) = shard.get_mut(&k) else { return Err(true) };
    if add_holder_locked(entry, &k, &holder.to_vec(), max) {
        Ok(())
    } else {
        Err(false)
    }
}

/// Drops the resource whatever its holders (the node's own use: tests, shutdown).
pub fn free(reference: &Reference) -> bool {
    let Some(k) = key(reference) else { return false };
    let entry = shard(&k).write().unwrap().remove(&k);
    match entry {
        Some(entry) => {
            let holders: Vec<Holder> = entry.holders.iter().cloned().collect();
            let mut all = lock(&table().holders);
            for h in holders {
                if let Some(state) = all.get_mut(&h) {
                    state.resources.remove(&k);
                }
            }
            drop(all);
            freed(entry);
            true
        }
        None => false,
    }
}

/// (type, holders as encoded pids, size in bytes) of a live resource.
pub fn info(reference: &Reference) -> Option<(&'static str, Vec<Holder>, usize)> {
    let k = key(reference)?;
    let shard = shard(&k).read().unwrap();
    let entry = shard.get(&k)?;
    let mut holders: Vec<Holder> = entry.holders.iter().cloned().collect();
    holders.sort();
    Some((entry.type_name, holders, (entry.size)(&*entry.object)))
}

/// The type of a live resource.
pub fn type_of(reference: &Reference) -> Option<&'static str> {
    info(reference).map(|(t, _, _)| t)
}

/// (type, live, created, freed) per resource type.
pub fn counts() -> Vec<(&'static str, u64, u64, u64)> {
    let counts = lock(&table().counts);
    let mut all: Vec<_> = counts.iter().map(|(t, c)| (*t, c.live, c.created, c.freed)).collect();
    all.sort();
    all
}

/// Holders the table tracks (for leak checks).
pub fn holder_count() -> usize {
    lock(&table().holders).len()
}

// --- ResourceArc --------------------------------------------------------------------------

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

fn size_of<T: Resource>(object: &(dyn Any + Send + Sync)) -> usize {
    object.downcast_ref::<T>().map_or(0, Resource::size)
}

impl<T: Resource> ResourceArc<T> {
    /// Puts `value` in the table under a new reference of this node, held by the caller of
    /// the running call. Past the table's limit: `Err(Overloaded)`.
    pub fn try_new(value: T) -> Result<Self, Overloaded> {
        let t = table();
        let max_live = t.limits.read().unwrap().max_live;
        if t.live.fetch_add(1, Ordering::Relaxed) >= max_live {
            t.live.fetch_sub(1, Ordering::Relaxed);
            return Err(Overloaded);
        }
        let object = Arc::new(value);
        let caller = current_caller();
        // Drawn again until the reference is free in its shard, checked and taken under
        // that shard's lock: a live resource is never replaced.
        let reference = loop {
            let reference = new_ref()
                .expect("the resource table has no node identity (resources live in natives built into the node)");
            let mut shard = shard(&reference.ids).write().unwrap();
            if shard.contains_key(&reference.ids) {
                continue;
            }
            let mut holders = HashSet::new();
            if let Some(caller) = &caller {
                holders.insert(caller.clone());
                lock(&t.holders)
                    .entry(caller.clone())
                    .or_insert_with(|| HolderState { monitor: None, monitor_sent: false, resources: HashSet::new() })
                    .resources
                    .insert(reference.ids.clone());
            }
            let entry = Entry {
                object: object.clone() as Arc<dyn Any + Send + Sync>,
                type_name: T::TYPE_NAME,
                size: size_of::<T>,
                holders,
            };
            shard.insert(reference.ids.clone(), entry);
            break reference;
        };
        let mut counts = lock(&t.counts);
        let c = counts.entry(T::TYPE_NAME).or_default();
        c.live += 1;
        c.created += 1;
        Ok(ResourceArc { object, reference })
    }

    /// `try_new`, for natives that do not expect the table to fill up (a full table is then
    /// a panic: `{:error, {:panic, ...}}`).
    pub fn new(value: T) -> Self {
        Self::try_new(value).unwrap_or_else(|_| panic!("the resource table is full (max live resources reached)"))
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
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
        let Some(k) = key(reference) else { return Err(ArgError::BadResource(reference.clone())) };
        let max_holders = table().limits.read().unwrap().max_holders;
        let caller = current_caller();
        let mut shard = shard(&k).write().unwrap();
        let Some(entry) = shard.get_mut(&k) else { return Err(ArgError::BadResource(reference.clone())) };
        let object = match entry.object.clone().downcast::<T>() {
            Ok(object) => object,
            Err(_) => {
                return Err(ArgError::BadArg(format!(
                    "expected a {} resource, got a {} resource",
                    T::TYPE_NAME,
                    entry.type_name
                )))
            }
        };
        // Whoever passes the reference in a call holds the resource from then on.
        if let Some(caller) = caller {
            if !add_holder_locked(entry, &k, &caller, max_holders) {
                return Err(ArgError::BadArg(format!(
                    "the resource already has {max_holders} holders (the limit)"
                )));
            }
        }
        Ok(ResourceArc { object, reference: reference.clone() })
    }
}

impl<T: Resource> Encoder for ResourceArc<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.reference.encode(out);
    }
}

/// An encoded pid's bytes, as a holder key.
pub fn holder_of(pid: &Pid) -> Holder {
    let mut out = Vec::new();
    etf::encode::put_pid(&mut out, pid).expect("a valid pid");
    out
}
