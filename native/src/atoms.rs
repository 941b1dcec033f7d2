//! Python objects for atoms. Atoms repeat endlessly on the wire (module names, `:ok`, node
//! names) and are never freed by the VM either, so each is made once and shared, up to a bound.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;

use crate::types::Atom;

const MAX_CACHED_ATOMS: usize = 100_000;

fn cache() -> &'static Mutex<HashMap<Box<str>, Py<PyAny>>> {
    static CACHE: OnceLock<Mutex<HashMap<Box<str>, Py<PyAny>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
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
    let mut map = cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(obj) = map.get(name) {
        return Ok(obj.bind(py).clone());
    }
    let obj = Bound::new(py, Atom { name: name.to_owned() })?.into_any();
    if map.len() < MAX_CACHED_ATOMS {
        map.insert(name.into(), obj.clone().unbind());
    }
    Ok(obj)
}
