//! Resource objects, in their first, simple form: a table of native objects keyed by
//! references this node makes. A native returns `ResourceArc::new(value)`, the caller gets
//! a plain reference, and passing it back gives the same object (`ResourceArc<T>` as an
//! argument); a reference that is unknown or freed is `{:error, {:badresource, ref}}`, one
//! of another resource type a badarg. An object lives until it is released.
//!
//! The table belongs to the node's own extension: natives built into it use it directly.

use std::any::Any;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use etf::{Atom, Reference, Term};

use crate::convert::{kind, ArgError, Decoder, Encoder};

/// A native type that can live in the resource table.
pub trait Resource: Send + Sync + 'static {
    /// The type's name in `:info` and in badarg messages ("expected a sorted_set").
    const TYPE_NAME: &'static str;
}

struct Entry {
    object: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

#[derive(Default)]
pub struct TypeCounts {
    pub live: u64,
    pub created: u64,
    pub freed: u64,
}

struct Table {
    identity: RwLock<Option<(String, u32)>>,
    next: AtomicU64,
    salt: AtomicU64,
    entries: RwLock<HashMap<Vec<u32>, Entry>>,
    counts: RwLock<HashMap<&'static str, TypeCounts>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        identity: RwLock::new(None),
        next: AtomicU64::new(1),
        salt: AtomicU64::new(0),
        entries: RwLock::new(HashMap::new()),
        counts: RwLock::new(HashMap::new()),
    })
}

/// The node's name and creation: references to resources are made in its name.
pub fn set_identity(node: &str, creation: u32, salt: u32) {
    *table().identity.write().unwrap() = Some((node.to_string(), creation));
    table().salt.store(salt as u64, Ordering::Relaxed);
}

fn key(reference: &Reference) -> Option<Vec<u32>> {
    let identity = table().identity.read().unwrap();
    let (node, creation) = identity.as_ref()?;
    (reference.node.0 == *node && reference.creation == *creation).then(|| reference.ids.clone())
}

/// A counted handle to a resource object.
pub struct ResourceArc<T: Resource> {
    object: Arc<T>,
    reference: Reference,
}

impl<T: Resource> ResourceArc<T> {
    /// Puts `value` in the table under a new reference of this node.
    pub fn new(value: T) -> Self {
        let t = table();
        let (node, creation) = t.identity.read().unwrap().clone().expect(
            "the resource table has no node identity (resources are available to natives built into the node)",
        );
        let n = t.next.fetch_add(1, Ordering::Relaxed);
        let salt = t.salt.load(Ordering::Relaxed) as u32;
        // Words of a NEWER_REFERENCE: the first holds 18 bits; the last tells our resources
        // from the node's other references.
        let ids = vec![(n & 0x3FFFF) as u32, (n >> 18) as u32, salt ^ 0x5245_534F];
        let reference = Reference { node: Atom(node), creation, ids: ids.clone() };
        let object = Arc::new(value);
        t.entries
            .write()
            .unwrap()
            .insert(ids, Entry { object: object.clone() as Arc<dyn Any + Send + Sync>, type_name: T::TYPE_NAME });
        let mut counts = t.counts.write().unwrap();
        let c = counts.entry(T::TYPE_NAME).or_default();
        c.live += 1;
        c.created += 1;
        ResourceArc { object, reference }
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
        let Term::Ref(reference) = term else {
            return Err(ArgError::BadArg(format!("expected a {} resource, got {}", T::TYPE_NAME, kind(term))));
        };
        let Some(k) = key(reference) else { return Err(ArgError::BadResource(reference.clone())) };
        let entries = table().entries.read().unwrap();
        let Some(entry) = entries.get(&k) else { return Err(ArgError::BadResource(reference.clone())) };
        match entry.object.clone().downcast::<T>() {
            Ok(object) => Ok(ResourceArc { object, reference: reference.clone() }),
            Err(_) => {
                Err(ArgError::BadArg(format!("expected a {} resource, got a {} resource", T::TYPE_NAME, entry.type_name)))
            }
        }
    }
}

impl<T: Resource> Encoder for ResourceArc<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.reference.encode(out);
    }
}

/// Drops the table's hold on the object behind `reference` (it is freed when the last
/// `ResourceArc` in use goes). False when it was not a live resource.
pub fn release(reference: &Reference) -> bool {
    let Some(k) = key(reference) else { return false };
    let removed = table().entries.write().unwrap().remove(&k);
    match removed {
        Some(entry) => {
            let mut counts = table().counts.write().unwrap();
            let c = counts.entry(entry.type_name).or_default();
            c.live -= 1;
            c.freed += 1;
            true
        }
        None => false,
    }
}

/// The type of a live resource.
pub fn type_of(reference: &Reference) -> Option<&'static str> {
    let k = key(reference)?;
    table().entries.read().unwrap().get(&k).map(|e| e.type_name)
}

/// (type, live, created, freed) per resource type.
pub fn counts() -> Vec<(&'static str, u64, u64, u64)> {
    let counts = table().counts.read().unwrap();
    let mut all: Vec<_> = counts.iter().map(|(t, c)| (*t, c.live, c.created, c.freed)).collect();
    all.sort();
    all
}
