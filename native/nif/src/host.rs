//! The host interface: how a native calls back into the node that runs it (shared/DESIGN.md
//! section 7). The node passes a [`Host`] with every call (`CallFrame::host`); the natives'
//! code reaches it through [`current_host`], set by `run` for the length of the call. A
//! crate built as its own extension links its own copy of this crate, so everything here is
//! plain C ABI data: the node's state stays in the node, behind `Host::context`.
//!
//! Resources: the crate makes the object (an `Arc<T>` in its own copy of the code) and hands
//! the node an opaque pointer with the type's [`ResourceType`]: its key, its name, and the
//! crate's own functions to count, drop and size it. The node's table keeps the pointer and
//! calls those functions; so the object is always dropped by the code that made it.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use crate::resource::Resource;
use crate::Slice;

/// The call went through.
pub const HOST_OK: i32 = 0;
/// The reference is not a live resource of this node (never made, freed, or another node's).
pub const HOST_BADRESOURCE: i32 = 1;
/// The resource is live but of another type ([`Found::type_name`] names it).
pub const HOST_WRONG_TYPE: i32 = 2;
/// A limit was hit: the table is full (create), or the resource has as many holders as it
/// may (lookup; [`Found::max_holders`] says how many).
pub const HOST_OVERLOADED: i32 = 3;
/// `send`: the destination is not a pid, or the message is not one whole term.
pub const HOST_BADARG: i32 = 4;
/// `send`: the destination's node is not connected to this one (the message is dropped, as
/// one to a process that is gone).
pub const HOST_NOCONNECTION: i32 = 5;

/// What the node lends a native for one call.
#[repr(C)]
pub struct Host {
    /// The node's state for this call (its resource table); only the node's functions
    /// below read it.
    pub context: *const c_void,
    /// The caller's pid in the External Term Format (no version byte); empty when there is
    /// none (a cast without sender, the node's own use).
    pub caller: Slice,
    /// This node's name and creation: the references of new resources are made in them.
    pub node: Slice,
    pub creation: u32,
    /// Puts `object` (of type `ty`) in the table, held by the caller, and writes the new
    /// reference's three id words to `ids`. On `HOST_OK` the table owns one count of
    /// `object` (it calls `ty.release` once when it lets go); on `HOST_OVERLOADED` it took
    /// nothing.
    pub create: unsafe extern "C" fn(host: *const Host, ty: *const ResourceType, object: *const c_void, ids: *mut u32) -> i32,
    /// The object behind `reference`, if it is a live `ty`: on `HOST_OK`, `found.object` is
    /// counted once more for the caller (who calls `ty.release` when done) and the caller of
    /// the call holds the resource from then on.
    pub lookup: unsafe extern "C" fn(host: *const Host, reference: *const RefParts, ty: *const ResourceType, found: *mut Found) -> i32,
    /// The call's reply tag in the External Term Format (no version byte): what the caller
    /// matches its reply by, and what `emit` tags stream items with. Empty for a cast.
    pub tag: Slice,
    /// Sends `message` to the process `to` (both terms in the External Term Format, no
    /// version byte), from the node's server process: `HOST_OK`, `HOST_BADARG` or
    /// `HOST_NOCONNECTION`.
    pub send: unsafe extern "C" fn(host: *const Host, to: Slice, message: Slice) -> i32,
    /// A sender for after the call (any thread, any time): an opaque handle for
    /// `sender_send` and `sender_drop`, or null when the node gives none.
    pub sender: unsafe extern "C" fn(host: *const Host) -> *const c_void,
    /// `send` through a sender.
    pub sender_send: unsafe extern "C" fn(sender: *const c_void, to: Slice, message: Slice) -> i32,
    /// Lets go of a sender (once).
    pub sender_drop: unsafe extern "C" fn(sender: *const c_void),
    /// Makes the resource `resource` monitor the process `pid` (encoded, no version byte):
    /// its type's `down` runs once when that process exits or its node disconnects, unless
    /// the resource is freed first or the monitor removed. Writes the monitor reference's id
    /// words (of this node) to `ids`: `HOST_OK`, `HOST_BADRESOURCE`, `HOST_BADARG` (not a
    /// pid) or `HOST_NOCONNECTION`.
    pub monitor: unsafe extern "C" fn(host: *const Host, resource: *const RefParts, pid: Slice, ids: *mut u32) -> i32,
    /// Removes a monitor `monitor` made for `resource`: `HOST_OK`, or `HOST_BADRESOURCE`
    /// when that resource has no such monitor (any more).
    pub demonitor: unsafe extern "C" fn(host: *const Host, resource: *const RefParts, monitor: *const RefParts) -> i32,
    /// Takes an async native's task for this call (`HOST_OK`): the node polls it and sends
    /// its reply, or drops it when the caller gives up. On any other status the task is
    /// still the caller's.
    pub spawn: unsafe extern "C" fn(host: *const Host, task: crate::task::AsyncTask) -> i32,
}

/// The node's side of messages from natives: sends `message` to the process `to` (both
/// terms in the External Term Format, no version byte) from the node's server; returns a
/// `HOST_*` status. The node passes one with every call (`ResourceTable::with_host`).
pub trait Messenger: Send + Sync {
    fn send(&self, to: &[u8], message: &[u8]) -> i32;
    /// Monitors the process `pid` (MONITOR_P from the node's server) under `reference`
    /// (both encoded): its exit comes back as a MONITOR_P_EXIT for the resource table.
    fn monitor(&self, pid: &[u8], reference: &[u8]) -> i32;
    /// Removes the monitor `reference` of `pid` (DEMONITOR_P).
    fn demonitor(&self, pid: &[u8], reference: &[u8]) -> i32;
}

/// The `Host` functions for messages, over the node's `Arc<dyn Messenger>` (what
/// `Host::context` leads to is the node's business: it passes `messenger` to find it).
pub(crate) unsafe extern "C" fn sender_send(sender: *const c_void, to: Slice, message: Slice) -> i32 {
    let messenger = &*(sender as *const std::sync::Arc<dyn Messenger>);
    catch_unwind(AssertUnwindSafe(|| messenger.send(to.as_bytes(), message.as_bytes()))).unwrap_or(HOST_BADARG)
}

pub(crate) unsafe extern "C" fn sender_drop(sender: *const c_void) {
    drop(Box::from_raw(sender as *mut std::sync::Arc<dyn Messenger>));
}

/// A boxed clone of `messenger`, as a sender handle.
pub(crate) fn new_sender(messenger: &std::sync::Arc<dyn Messenger>) -> *const c_void {
    Box::into_raw(Box::new(messenger.clone())) as *const c_void
}

/// A reference as a native was passed it: node name, creation, id words.
#[repr(C)]
pub struct RefParts {
    pub node: Slice,
    pub creation: u32,
    pub ids: *const u32,
    pub nids: usize,
}

impl RefParts {
    pub fn of(reference: &etf::Reference) -> Self {
        RefParts {
            node: Slice::new(reference.node.0.as_bytes()),
            creation: reference.creation,
            ids: reference.ids.as_ptr(),
            nids: reference.ids.len(),
        }
    }

    /// The id words.
    ///
    /// # Safety
    /// `ids` points to `nids` words alive for the lifetime chosen.
    pub unsafe fn id_words<'a>(&self) -> &'a [u32] {
        if self.nids == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.ids, self.nids)
        }
    }

    /// The reference, owned.
    ///
    /// # Safety
    /// As `id_words`, and `node` is readable for the call.
    pub unsafe fn to_reference(&self) -> etf::Reference {
        etf::Reference {
            node: etf::Atom(String::from_utf8_lossy(self.node.as_bytes()).into_owned()),
            creation: self.creation,
            ids: self.id_words().to_vec(),
        }
    }
}

/// A resource type, as the crate that made its objects describes it to the node.
#[repr(C)]
pub struct ResourceType {
    /// The address of a static in the creating crate's copy of rustelixir-nif: tells its
    /// types from another crate's types of the same name.
    pub crate_id: usize,
    /// `std::any::type_name::<T>()`: the type within its crate.
    pub key: Slice,
    /// `T::TYPE_NAME`: what `resource_info`, `:info` and badarg messages call it.
    pub name: Slice,
    /// One more count of the object (`Arc::increment_strong_count`).
    pub retain: unsafe extern "C" fn(object: *const c_void),
    /// One count less; the last one drops the object, in the crate that made it.
    pub release: unsafe extern "C" fn(object: *const c_void),
    /// The object's `Resource::size`.
    pub size: unsafe extern "C" fn(object: *const c_void) -> usize,
    /// The object's `Resource::down`: a process it monitors (`pid`, encoded) exited, or its
    /// node disconnected; `monitor` is the monitor's reference. Runs with `host` as the
    /// crate's current host (messages and resources work inside it), never unwinding.
    pub down: unsafe extern "C" fn(object: *const c_void, host: *const Host, pid: Slice, monitor: *const RefParts),
}

// Immutable once made, and leaked: lives as long as the crate's code.
unsafe impl Sync for ResourceType {}
unsafe impl Send for ResourceType {}

impl ResourceType {
    /// Whether `self` and `other` describe the same type (of the same crate).
    pub fn same(&self, other: &ResourceType) -> bool {
        std::ptr::eq(self, other)
            || (self.crate_id == other.crate_id
                // SAFETY: both keys are `type_name`s, static in their crate.
                && unsafe { self.key.as_bytes() == other.key.as_bytes() })
    }

    /// The type's name.
    ///
    /// # Safety
    /// The crate that described the type stays loaded (Python never unloads an extension).
    pub unsafe fn name(&self) -> &'static str {
        std::str::from_utf8_unchecked(self.name.as_bytes())
    }
}

/// What `Host::lookup` found.
#[repr(C)]
pub struct Found {
    /// `HOST_OK`: the object, counted once for the caller.
    pub object: *const c_void,
    /// `HOST_WRONG_TYPE`: the name of the resource's type.
    pub type_name: Slice,
    /// `HOST_OVERLOADED`: the most holders a resource may have.
    pub max_holders: usize,
}

impl Default for Found {
    fn default() -> Self {
        Found { object: std::ptr::null(), type_name: Slice::new(&[]), max_holders: 0 }
    }
}

// --- Inside a native (this copy of the crate) ----------------------------------------------

thread_local! {
    static HOST: Cell<*const Host> = const { Cell::new(std::ptr::null()) };
}

/// The host of the call running on this thread, if any (valid until that call returns: so
/// never handed out of this crate).
pub(crate) fn current_host<'a>() -> Option<&'a Host> {
    // SAFETY: set by `with_current` for the length of the call, from a live host.
    HOST.with(|h| unsafe { h.get().as_ref() })
}

/// Runs `f` with `host` as the current host on this thread.
pub(crate) fn with_current<R>(host: *const Host, f: impl FnOnce() -> R) -> R {
    struct Restore(*const Host);
    impl Drop for Restore {
        fn drop(&mut self) {
            HOST.with(|h| h.set(self.0));
        }
    }
    let _restore = Restore(HOST.with(|h| h.replace(host)));
    f()
}

/// This copy of the crate: its address is the `crate_id` of the types it describes.
static CRATE_ID: u8 = 0;

unsafe extern "C" fn retain<T: Resource>(object: *const c_void) {
    Arc::increment_strong_count(object as *const T)
}

// A panic may not unwind into the node: a `Drop` that panics leaves its object's memory to
// the panic, a `size` that panics says 0.
unsafe extern "C" fn release<T: Resource>(object: *const c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| drop(Arc::from_raw(object as *const T))));
}

unsafe extern "C" fn size<T: Resource>(object: *const c_void) -> usize {
    catch_unwind(AssertUnwindSafe(|| (*(object as *const T)).size())).unwrap_or(0)
}

// A panicking `down` is the crate's bug; the node goes on.
unsafe extern "C" fn down<T: Resource>(object: *const c_void, host: *const Host, pid: Slice, monitor: *const RefParts) {
    with_current(host, || {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let Some(pid) = crate::message::decode_pid(pid.as_bytes()) else { return };
            (*(object as *const T)).down(pid, (*monitor).to_reference());
        }));
    });
}

/// The description of `T`, made once per type by this copy of the crate (and leaked: the
/// node's table points at it for as long as one of its objects lives).
pub fn resource_type<T: Resource>() -> &'static ResourceType {
    thread_local! {
        static CACHE: RefCell<HashMap<TypeId, &'static ResourceType>> = RefCell::new(HashMap::new());
    }
    static ALL: OnceLock<Mutex<HashMap<TypeId, &'static ResourceType>>> = OnceLock::new();
    let id = TypeId::of::<T>();
    if let Some(ty) = CACHE.with(|c| c.borrow().get(&id).copied()) {
        return ty;
    }
    let ty = *ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner()).entry(id).or_insert_with(|| {
        Box::leak(Box::new(ResourceType {
            crate_id: &CRATE_ID as *const u8 as usize,
            key: Slice::new(std::any::type_name::<T>().as_bytes()),
            name: Slice::new(T::TYPE_NAME.as_bytes()),
            retain: retain::<T>,
            release: release::<T>,
            size: size::<T>,
            down: down::<T>,
        }))
    });
    CACHE.with(|c| c.borrow_mut().insert(id, ty));
    ty
}
