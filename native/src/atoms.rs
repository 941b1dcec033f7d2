//! Python objects for atoms. Atoms repeat endlessly on the wire (module names, `:ok`, node
//! names) and are never freed by the VM either, so each is made once per thread and shared,
//! up to a bound. Per thread, so the hot path takes no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;

use crate::types::Atom;

const MAX_CACHED_ATOMS: usize = 100_000;

/// FNV-1a: atoms are short, and SipHash's setup dominates for them.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf29ce484222325 } else { self.0 };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

type Cache = HashMap<Box<str>, Py<Atom>, BuildHasherDefault<Fnv>>;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The Python value of an atom: `True`, `False`, `None` for `true`, `false`, `nil`, else an `Atom`.
pub fn atom<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    match name {
        "true" => return Ok(pyo3::types::PyBool::new(py, true).to_owned().into_any()),
        "false" => return Ok(pyo3::types::PyBool::new(py, false).to_owned().into_any()),
        "nil" => return Ok(py.None().into_bound(py)),
        _ => {}
    }
    atom_object(py, name)
}

/// Always an `Atom` object, even for `true`, `false` and `nil` (for fields such as a pid's node).
pub fn atom_object<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    Ok(atom_ref(py, name)?.into_any())
}

/// The `Atom` object itself, for the classes that hold one (a pid's node).
pub fn atom_ref<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, Atom>> {
    CACHE.with(|cache| {
        if let Some(obj) = cache.borrow().get(name) {
            return Ok(obj.bind(py).clone());
        }
        let obj = Bound::new(py, Atom { name: name.to_owned() })?;
        let mut cache = cache.borrow_mut();
        if cache.len() < MAX_CACHED_ATOMS {
            cache.insert(name.into(), obj.clone().unbind());
        }
        Ok(obj)
    })
}
