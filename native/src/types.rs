//! The Python classes for Erlang terms that have no plain Python equivalent.
//! Frozen and cheap to make from Rust; exported to Python as `rustelixir.Atom` etc.

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::atoms;

fn check_atom_name(name: &str) -> PyResult<()> {
    if name.chars().count() > 255 {
        return Err(PyValueError::new_err(format!(
            "an atom has at most 255 characters, not {}",
            name.chars().count()
        )));
    }
    Ok(())
}

/// Accepts an `Atom` or a `str` where an atom is expected (node names, modules, functions).
pub fn atom_name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(atom) = obj.cast::<Atom>() {
        return Ok(atom.get().name.clone());
    }
    let name: String = match obj.extract() {
        Ok(name) => name,
        Err(_) => return Err(PyTypeError::new_err(format!("expected an Atom or str, got {}", obj.get_type().name()?))),
    };
    check_atom_name(&name)?;
    Ok(name)
}

/// An Erlang atom other than `true`, `false` and `nil` (those are `True`, `False`, `None`).
#[pyclass(frozen, eq, ord, hash, module = "rustelixir", skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Atom {
    #[pyo3(get)]
    pub name: String,
}

#[pymethods]
impl Atom {
    #[new]
    fn py_new(name: String) -> PyResult<Self> {
        check_atom_name(&name)?;
        Ok(Atom { name })
    }
    fn __repr__(&self) -> String {
        format!("Atom({})", py_str_repr(&self.name))
    }
    fn __str__(&self) -> String {
        self.name.clone()
    }
    fn __getnewargs__(&self) -> (String,) {
        (self.name.clone(),)
    }
}

fn py_str_repr(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A process identifier. Its node is the shared `Atom` object of the node's name (the
/// per-thread atom cache's when decoded): a decoded pid allocates nothing for its node, and
/// `pid.node` is a reference count, not a new object.
#[pyclass(frozen, eq, hash, module = "rustelixir", skip_from_py_object)]
pub struct Pid {
    pub node: Py<Atom>,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

impl Pid {
    pub fn node_name(&self) -> &str {
        &self.node.get().name
    }
    pub fn to_etf(&self) -> etf::Pid {
        etf::Pid { node: etf::Atom(self.node_name().to_owned()), id: self.id, serial: self.serial, creation: self.creation }
    }
}

impl PartialEq for Pid {
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.serial, self.creation) == (other.id, other.serial, other.creation)
            && self.node_name() == other.node_name()
    }
}

impl Hash for Pid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.node_name(), self.id, self.serial, self.creation).hash(state)
    }
}

#[pymethods]
impl Pid {
    #[new]
    fn py_new(node: &Bound<'_, PyAny>, id: u32, serial: u32, creation: u32) -> PyResult<Self> {
        Ok(Pid { node: node_atom(node)?, id, serial, creation })
    }
    #[getter]
    fn node(&self, py: Python<'_>) -> Py<Atom> {
        self.node.clone_ref(py)
    }
    #[getter]
    fn id(&self) -> u32 {
        self.id
    }
    #[getter]
    fn serial(&self) -> u32 {
        self.serial
    }
    #[getter]
    fn creation(&self) -> u32 {
        self.creation
    }
    fn __repr__(&self) -> String {
        format!("Pid({}, {}, {}, {})", py_str_repr(self.node_name()), self.id, self.serial, self.creation)
    }
    fn __getnewargs__(&self) -> (String, u32, u32, u32) {
        (self.node_name().to_owned(), self.id, self.serial, self.creation)
    }
}

/// The shared `Atom` for a node name given as an `Atom` or a `str`.
fn node_atom(node: &Bound<'_, PyAny>) -> PyResult<Py<Atom>> {
    if let Ok(atom) = node.cast::<Atom>() {
        return Ok(atom.clone().unbind());
    }
    Ok(atoms::atom_ref(node.py(), &atom_name(node)?)?.unbind())
}

/// A port identifier. One decoded from NEW_PORT_EXT is written back that way
/// (see `etf::Port::new_port_ext`); that is not part of its identity.
#[pyclass(frozen, eq, hash, module = "rustelixir", skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Port(pub etf::Port);

#[pymethods]
impl Port {
    #[new]
    fn py_new(node: &Bound<'_, PyAny>, id: u64, creation: u32) -> PyResult<Self> {
        Ok(Port(etf::Port::new(etf::Atom(atom_name(node)?), id, creation)))
    }
    #[getter]
    fn node<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        atoms::atom_object(py, self.0.node.as_str())
    }
    #[getter]
    fn id(&self) -> u64 {
        self.0.id
    }
    #[getter]
    fn creation(&self) -> u32 {
        self.0.creation
    }
    fn __repr__(&self) -> String {
        format!("Port({}, {}, {})", py_str_repr(self.0.node.as_str()), self.0.id, self.0.creation)
    }
    fn __getnewargs__(&self) -> (String, u64, u32) {
        (self.0.node.0.clone(), self.0.id, self.0.creation)
    }
}

/// A reference (`make_ref()`, monitor references, aliases). Like a pid, its node is the
/// shared `Atom`; its 1 to 5 id words are held inline.
#[pyclass(frozen, eq, hash, module = "rustelixir", skip_from_py_object)]
pub struct Reference {
    pub node: Py<Atom>,
    pub creation: u32,
    words: [u32; 5],
    len: u8,
}

impl Reference {
    /// `ids` must have 1 to 5 words.
    pub fn new(node: Py<Atom>, creation: u32, ids: &[u32]) -> Self {
        debug_assert!((1..=5).contains(&ids.len()));
        let mut words = [0; 5];
        words[..ids.len()].copy_from_slice(ids);
        Reference { node, creation, words, len: ids.len() as u8 }
    }
    pub fn node_name(&self) -> &str {
        &self.node.get().name
    }
    pub fn ids(&self) -> &[u32] {
        &self.words[..self.len as usize]
    }
    pub fn to_etf(&self) -> etf::Reference {
        etf::Reference { node: etf::Atom(self.node_name().to_owned()), creation: self.creation, ids: self.ids().to_vec() }
    }
}

impl PartialEq for Reference {
    fn eq(&self, other: &Self) -> bool {
        self.creation == other.creation && self.ids() == other.ids() && self.node_name() == other.node_name()
    }
}

impl Hash for Reference {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.node_name(), self.creation, self.ids()).hash(state)
    }
}

#[pymethods]
impl Reference {
    #[new]
    fn py_new(node: &Bound<'_, PyAny>, creation: u32, ids: Vec<u32>) -> PyResult<Self> {
        if ids.is_empty() || ids.len() > 5 {
            return Err(PyValueError::new_err(format!("a reference has 1 to 5 id words, not {}", ids.len())));
        }
        Ok(Reference::new(node_atom(node)?, creation, &ids))
    }
    #[getter]
    fn node(&self, py: Python<'_>) -> Py<Atom> {
        self.node.clone_ref(py)
    }
    #[getter]
    fn creation(&self) -> u32 {
        self.creation
    }
    #[getter(ids)]
    fn py_ids(&self) -> Vec<u32> {
        self.ids().to_vec()
    }
    fn __repr__(&self) -> String {
        format!("Reference({}, {}, {:?})", py_str_repr(self.node_name()), self.creation, self.ids())
    }
    fn __getnewargs__(&self) -> (String, u32, Vec<u32>) {
        (self.node_name().to_owned(), self.creation, self.ids().to_vec())
    }
}

/// A bitstring whose length is not a whole number of bytes: `data`, of which the last byte
/// holds `tail_bits` (1 to 7) bits in its high bits.
#[pyclass(frozen, eq, hash, module = "rustelixir", skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BitString {
    pub data: Vec<u8>,
    #[pyo3(get)]
    pub tail_bits: u8,
}

impl BitString {
    pub fn new(data: &[u8], tail_bits: u8) -> PyResult<Self> {
        if data.is_empty() || !(1..=7).contains(&tail_bits) {
            return Err(PyValueError::new_err(format!(
                "a BitString needs at least one byte and 1 to 7 bits in its last byte (got {} bytes, {tail_bits} bits); \
                 whole bytes are a plain bytes object",
                data.len()
            )));
        }
        let mut data = data.to_vec();
        let last = data.len() - 1;
        data[last] &= 0xffu8 << (8 - tail_bits);
        Ok(BitString { data, tail_bits })
    }
}

#[pymethods]
impl BitString {
    #[new]
    fn py_new(data: &[u8], tail_bits: u8) -> PyResult<Self> {
        BitString::new(data, tail_bits)
    }
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }
    #[getter]
    fn bit_length(&self) -> usize {
        (self.data.len() - 1) * 8 + self.tail_bits as usize
    }
    fn __repr__(&self) -> String {
        format!("BitString({:?}, {})", ByteRepr(&self.data), self.tail_bits)
    }
    fn __getnewargs__(&self) -> (Vec<u8>, u8) {
        (self.data.clone(), self.tail_bits)
    }
}

struct ByteRepr<'a>(&'a [u8]);

impl std::fmt::Debug for ByteRepr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("b'")?;
        for &b in self.0 {
            match b {
                b'\'' => f.write_str("\\'")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("'")
    }
}

/// A list whose tail is not `[]`: `[1, 2 | 3]` is `ImproperList([1, 2], 3)`.
#[pyclass(frozen, module = "rustelixir", skip_from_py_object)]
pub struct ImproperList {
    #[pyo3(get)]
    pub items: Py<PyList>,
    #[pyo3(get)]
    pub tail: Py<PyAny>,
}

#[pymethods]
impl ImproperList {
    #[new]
    fn py_new(items: &Bound<'_, PyAny>, tail: Bound<'_, PyAny>) -> PyResult<Self> {
        let items: Bound<'_, PyList> = match items.cast::<PyList>() {
            Ok(list) => list.clone(),
            Err(_) => PyList::new(items.py(), items.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        };
        if items.is_empty() {
            return Err(PyValueError::new_err("an ImproperList needs at least one item"));
        }
        if tail.is_instance_of::<PyList>() || tail.is_instance_of::<ImproperList>() {
            return Err(PyValueError::new_err("the tail of an ImproperList cannot be a list; extend the items instead"));
        }
        Ok(ImproperList { items: items.unbind(), tail: tail.unbind() })
    }
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<ImproperList>() else { return Ok(false) };
        let other = other.get();
        Ok(self.items.bind(py).eq(other.items.bind(py))? && self.tail.bind(py).eq(other.tail.bind(py))?)
    }
    fn __hash__(&self) -> PyResult<isize> {
        Err(PyTypeError::new_err("unhashable type: 'ImproperList'"))
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("ImproperList({}, {})", self.items.bind(py).repr()?, self.tail.bind(py).repr()?))
    }
    fn __getnewargs__(&self, py: Python<'_>) -> (Py<PyList>, Py<PyAny>) {
        (self.items.clone_ref(py), self.tail.clone_ref(py))
    }
}

/// An opaque fun (closure) from a BEAM node; sent back, it arrives as it came.
#[pyclass(frozen, eq, hash, module = "rustelixir", skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fun(pub etf::Fun);

#[pymethods]
impl Fun {
    #[getter]
    fn module<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        atoms::atom_object(py, self.0.module.as_str())
    }
    #[getter]
    fn arity(&self) -> u8 {
        self.0.arity
    }
    #[getter]
    fn num_free(&self) -> usize {
        self.0.free_vars.len()
    }
    fn __repr__(&self) -> String {
        format!("<Fun {}/{} with {} free variables>", self.0.module, self.0.arity, self.0.free_vars.len())
    }
}

/// An external fun, `fun Module:Function/Arity` (`&Module.function/arity` in Elixir).
#[pyclass(frozen, eq, hash, module = "rustelixir", skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Export(pub etf::Export);

#[pymethods]
impl Export {
    #[new]
    fn py_new(module: &Bound<'_, PyAny>, function: &Bound<'_, PyAny>, arity: u8) -> PyResult<Self> {
        Ok(Export(etf::Export { module: etf::Atom(atom_name(module)?), function: etf::Atom(atom_name(function)?), arity }))
    }
    #[getter]
    fn module<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        atoms::atom_object(py, self.0.module.as_str())
    }
    #[getter]
    fn function<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        atoms::atom_object(py, self.0.function.as_str())
    }
    #[getter]
    fn arity(&self) -> u8 {
        self.0.arity
    }
    fn __repr__(&self) -> String {
        let e = &self.0;
        format!("Export({}, {}, {})", py_str_repr(e.module.as_str()), py_str_repr(e.function.as_str()), e.arity)
    }
    fn __getnewargs__(&self) -> (String, String, u8) {
        (self.0.module.0.clone(), self.0.function.0.clone(), self.0.arity)
    }
}

/// A map key that Python cannot use as a dict key as it is: an unhashable value (a list, a
/// map), or one Python would confuse with another key of the same map (`1`, `1.0` and `true`
/// are one dict key in Python, three map keys in Erlang). Equal when the terms are exactly
/// equal; encodes as the wrapped value.
#[pyclass(frozen, module = "rustelixir", skip_from_py_object)]
pub struct MapKey {
    #[pyo3(get)]
    pub value: Py<PyAny>,
    pub encoded: Vec<u8>,
    hash: isize,
}

impl MapKey {
    pub fn wrap(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        let encoded = crate::to_etf::encode_to_vec(value, crate::to_etf::DEFAULT_MAX_DEPTH).map_err(PyErr::from)?;
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        encoded.hash(&mut h);
        let hash = (h.finish() as isize).max(isize::MIN + 1);
        let hash = if hash == -1 { -2 } else { hash };
        Ok(MapKey { value: value.clone().unbind(), encoded, hash })
    }
}

#[pymethods]
impl MapKey {
    #[new]
    fn py_new(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        MapKey::wrap(value)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<MapKey>() {
            Ok(o) => o.get().encoded == self.encoded,
            Err(_) => false,
        }
    }
    fn __hash__(&self) -> isize {
        self.hash
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("MapKey({})", self.value.bind(py).repr()?))
    }
}
