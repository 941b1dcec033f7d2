//! Python objects for atoms. Atoms repeat endlessly on the wire (module names, `:ok`, node
//! names) and are never freed by the VM either, so each is made once per thread and shared,
//! up to a bound. Per thread, so the hot path takes no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;

use crate::types::Atom;

const MAX_CACHED_ATOMS: usize = 100_000;

/// A multiplicative hash taking atoms eight bytes at a time: atoms are short, SipHash's setup
/// dominates for them, and even FNV's byte-at-a-time loop was a visible cost of decoding a
/// small message (five atoms, node names included).
#[derive(Default)]
struct WordHash(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl WordHash {
    #[inline(always)]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for WordHash {
    #[inline]
    fn finish(&self) -> u64 {
        // The product's high bits are its well-mixed ones; the table indexes by the low bits.
        self.0 ^ (self.0 >> 32)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        if n >= 8 {
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                self.mix(u64::from_le_bytes(chunk.try_into().unwrap()));
            }
            if !chunks.remainder().is_empty() {
                // The last eight bytes, overlapping the last whole word: no byte copying.
                self.mix(word(n - 8));
            }
        } else if n >= 4 {
            self.mix(half(0) | half(n - 4) << 32);
        } else if n > 0 {
            self.mix(bytes[0] as u64 | (bytes[n / 2] as u64) << 8 | (bytes[n - 1] as u64) << 16);
        }
        // The overlapping reads see some bytes twice: the length tells those texts apart.
        self.mix(n as u64);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }
}

type Cache = HashMap<Box<str>, Py<Atom>, BuildHasherDefault<WordHash>>;

thread_local! {
    static CACHE: AtomCache = AtomCache(RefCell::new(Cache::default()));
}

/// This thread's atom cache. A decode looks it up once ([`with_cache`]) rather than once
/// per atom: in the extension module, every thread-local access is a call.
pub struct AtomCache(RefCell<Cache>);

/// Runs `f` with this thread's atom cache.
pub fn with_cache<R>(f: impl FnOnce(&AtomCache) -> R) -> R {
    CACHE.with(f)
}

impl AtomCache {
    /// The Python value of an atom: `True`, `False`, `None` for `true`, `false`, `nil`, else an `Atom`.
    #[inline]
    pub fn atom<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match name {
            "true" => return Ok(pyo3::types::PyBool::new(py, true).to_owned().into_any()),
            "false" => return Ok(pyo3::types::PyBool::new(py, false).to_owned().into_any()),
            "nil" => return Ok(py.None().into_bound(py)),
            _ => {}
        }
        Ok(self.atom_ref(py, name)?.into_any())
    }

    /// Always the `Atom` object, even for `true`, `false` and `nil` (for fields such as a pid's node).
    pub fn atom_ref<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, Atom>> {
        if let Some(obj) = self.0.borrow().get(name) {
            return Ok(obj.bind(py).clone());
        }
        // Not borrowed while Python runs (making the object), so nothing can find it borrowed.
        let obj = Bound::new(py, Atom { name: name.to_owned() })?;
        let mut cache = self.0.borrow_mut();
        if cache.len() < MAX_CACHED_ATOMS {
            cache.insert(name.into(), obj.clone().unbind());
        }
        Ok(obj)
    }
}

/// Always an `Atom` object, even for `true`, `false` and `nil` (for fields such as a pid's node).
pub fn atom_object<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    Ok(atom_ref(py, name)?.into_any())
}

/// The `Atom` object itself, for the classes that hold one (a pid's node).
pub fn atom_ref<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, Atom>> {
    with_cache(|cache| cache.atom_ref(py, name))
}
