//! The owned term model. Every term OTP 25–28 can send has exactly one `Term`, and
//! encoding a `Term` gives the bytes `term_to_binary(T, [{minor_version, 2}])` gives
//! (the default of OTP 26 and later).

use std::fmt;

/// An atom, held by its text (at most 255 characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom(pub String);

impl Atom {
    pub fn new(name: impl Into<String>) -> Self {
        Atom(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Atom(s.to_owned())
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An integer that does not fit in `i64`: sign and magnitude, little-endian bytes with no
/// trailing zero byte (the layout of SMALL_BIG_EXT / LARGE_BIG_EXT).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BigInt {
    pub negative: bool,
    /// A boxed slice, not a `Vec`: 8 bytes less, so `BigInt` fits in a `Term` unboxed.
    pub magnitude: Box<[u8]>,
}

impl BigInt {
    /// The integer with this sign and little-endian magnitude, as `Term::Int` when it fits
    /// in an `i64` and `Term::BigInt` otherwise (so each integer has one representation).
    pub fn normalized(negative: bool, magnitude_le: &[u8]) -> Term {
        let mag = BigInt::trimmed(magnitude_le);
        match BigInt::to_i64(negative, mag) {
            Some(v) => Term::Int(v),
            None => Term::BigInt(BigInt { negative, magnitude: mag.into() }),
        }
    }

    /// The magnitude without its high zero bytes.
    pub fn trimmed(magnitude_le: &[u8]) -> &[u8] {
        let len = magnitude_le.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &magnitude_le[..len]
    }

    /// The value if it fits in an `i64` (zero, whatever the sign).
    pub fn to_i64(negative: bool, magnitude_le: &[u8]) -> Option<i64> {
        let mag = BigInt::trimmed(magnitude_le);
        if mag.len() > 8 {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..mag.len()].copy_from_slice(mag);
        let m = u64::from_le_bytes(buf);
        if !negative {
            i64::try_from(m).ok()
        } else if m <= (i64::MAX as u64) + 1 {
            Some((m as i64).wrapping_neg())
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pid {
    pub node: Atom,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

#[derive(Clone, Debug)]
pub struct Port {
    pub node: Atom,
    pub id: u64,
    pub creation: u32,
    /// How the port was written on the wire, kept so it is written back the same way: OTP 25
    /// writes NEW_PORT_EXT for ids below 2^28, OTP 26+ always V4_PORT_EXT (the default here).
    /// Not part of the port's identity.
    pub new_port_ext: bool,
}

impl Port {
    pub fn new(node: Atom, id: u64, creation: u32) -> Self {
        Port { node, id, creation, new_port_ext: false }
    }
}

impl PartialEq for Port {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node && self.id == other.id && self.creation == other.creation
    }
}

impl Eq for Port {}

impl std::hash::Hash for Port {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.node, self.id, self.creation).hash(state)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub node: Atom,
    pub creation: u32,
    /// 1 to 5 ID words, as sent (their count is part of the identity).
    pub ids: Vec<u32>,
}

/// A fun (NEW_FUN_EXT): a closure made on some node, opaque to everyone else. Held field by
/// field, so it encodes back to the bytes the VM writes for it, and nested funs cost memory
/// in proportion to their size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fun {
    pub module: Atom,
    pub arity: u8,
    pub uniq: [u8; 16],
    pub index: u32,
    pub old_index: i64,
    pub old_uniq: i64,
    pub pid: Pid,
    /// The captured environment.
    pub free_vars: Vec<Term>,
}

impl std::hash::Hash for Fun {
    /// The fun's code and arity; its environment (terms have no `Hash`) only in count.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.module, self.arity, self.uniq, self.index, self.old_uniq, &self.pid, self.free_vars.len()).hash(state)
    }
}

/// An external fun, `fun M:F/A` (EXPORT_EXT).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Export {
    pub module: Atom,
    pub function: Atom,
    pub arity: u8,
}

/// An Erlang term.
///
/// 32 bytes (on 64-bit targets): every `Term` in every `Vec` pays the size of the largest
/// variant, so what does not fit in 24 bytes beside the tag is boxed or held in a boxed
/// slice. Pids, ports, references, funs and exports are boxed (40 to 128 bytes each; their
/// node and names are allocations of their own anyway); big integers, bitstrings and an
/// improper list's items are boxed slices, which fit. `From` builds the boxed variants
/// (`Term::from(pid)`), and `as_pid()` and the like read them.
#[derive(Debug)]
pub enum Term {
    Int(i64),
    BigInt(BigInt),
    Float(f64),
    Atom(Atom),
    Binary(Vec<u8>),
    /// A bitstring whose last byte holds `tail_bits` (1..=7) bits, in its high bits.
    BitString { data: Box<[u8]>, tail_bits: u8 },
    Pid(Box<Pid>),
    Port(Box<Port>),
    Ref(Box<Reference>),
    Fun(Box<Fun>),
    Export(Box<Export>),
    Tuple(Vec<Term>),
    /// A proper list (`[]` is an empty `List`).
    List(Vec<Term>),
    /// A list whose tail is not `[]`; `items` is never empty.
    ImproperList(Box<[Term]>, Box<Term>),
    /// Pairs in the order they were decoded or built.
    Map(Vec<(Term, Term)>),
}

// Every term decoded pays this, in every container: it must not grow back unnoticed.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Term>() == 32, "Term grew past 32 bytes: box the variant that grew");

impl Term {
    pub fn atom(name: &str) -> Term {
        Term::Atom(Atom::from(name))
    }
    pub fn nil() -> Term {
        Term::List(Vec::new())
    }
    /// `[items... | tail]`; `items` must not be empty (and `tail` should not be a list).
    pub fn improper_list(items: Vec<Term>, tail: Term) -> Term {
        Term::ImproperList(items.into_boxed_slice(), Box::new(tail))
    }
    /// A bitstring of `data` whose last byte holds `tail_bits` (1..=7) bits.
    pub fn bitstring(data: impl Into<Box<[u8]>>, tail_bits: u8) -> Term {
        Term::BitString { data: data.into(), tail_bits }
    }
    pub fn as_pid(&self) -> Option<&Pid> {
        match self {
            Term::Pid(p) => Some(p),
            _ => None,
        }
    }
    pub fn as_port(&self) -> Option<&Port> {
        match self {
            Term::Port(p) => Some(p),
            _ => None,
        }
    }
    pub fn as_reference(&self) -> Option<&Reference> {
        match self {
            Term::Ref(r) => Some(r),
            _ => None,
        }
    }
    pub fn as_fun(&self) -> Option<&Fun> {
        match self {
            Term::Fun(f) => Some(f),
            _ => None,
        }
    }
    pub fn as_export(&self) -> Option<&Export> {
        match self {
            Term::Export(e) => Some(e),
            _ => None,
        }
    }
}

macro_rules! boxed_from {
    ($($kind:ident => $variant:ident),*) => {$(
        impl From<$kind> for Term {
            fn from(v: $kind) -> Term {
                Term::$variant(Box::new(v))
            }
        }
    )*};
}
boxed_from!(Pid => Pid, Port => Port, Reference => Ref, Fun => Fun, Export => Export);

/// Cloning recurses per level; the stack grows on the heap when it runs low, so deep terms
/// clone on any thread.
impl Clone for Term {
    fn clone(&self) -> Self {
        stacker::maybe_grow(crate::STACK_RED_ZONE, crate::STACK_GROWTH, || match self {
            Term::Int(v) => Term::Int(*v),
            Term::BigInt(b) => Term::BigInt(b.clone()),
            Term::Float(v) => Term::Float(*v),
            Term::Atom(a) => Term::Atom(a.clone()),
            Term::Binary(d) => Term::Binary(d.clone()),
            Term::BitString { data, tail_bits } => Term::BitString { data: data.clone(), tail_bits: *tail_bits },
            Term::Pid(p) => Term::Pid(p.clone()),
            Term::Port(p) => Term::Port(p.clone()),
            Term::Ref(r) => Term::Ref(r.clone()),
            Term::Fun(f) => Term::Fun(f.clone()),
            Term::Export(e) => Term::Export(e.clone()),
            Term::Tuple(items) => Term::Tuple(items.clone()),
            Term::List(items) => Term::List(items.clone()),
            Term::ImproperList(items, tail) => Term::ImproperList(items.clone(), tail.clone()),
            Term::Map(pairs) => Term::Map(pairs.clone()),
        })
    }
}

/// Exact equality (`=:=`): `1` and `1.0` differ, and so do `0.0` and `-0.0`.
impl PartialEq for Term {
    fn eq(&self, other: &Self) -> bool {
        crate::order::compare_exact(self, other).is_eq()
    }
}

impl Eq for Term {}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The total order used for map keys: Erlang term order, with every integer before every float.
impl Ord for Term {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        crate::order::compare_exact(self, other)
    }
}

/// Dropping a deeply nested term must not recurse once per level: a term decoded from
/// untrusted bytes may be nested as deep as `Limits::max_depth` allows, on a thread with a
/// small stack. Children are moved out onto a heap stack first.
impl Drop for Term {
    fn drop(&mut self) {
        fn is_leafy(t: &Term) -> bool {
            match t {
                Term::Tuple(items) | Term::List(items) => items.iter().all(|i| !i.is_container()),
                Term::Map(pairs) => pairs.iter().all(|(k, v)| !k.is_container() && !v.is_container()),
                Term::ImproperList(items, tail) => !tail.is_container() && items.iter().all(|i| !i.is_container()),
                Term::Fun(f) => f.free_vars.iter().all(|i| !i.is_container()),
                _ => true,
            }
        }
        // The common case, a shallow term, drops as usual.
        if is_leafy(self) {
            return;
        }
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut child) = stack.pop() {
            child.take_children(&mut stack);
        }
    }
}

impl Term {
    fn is_container(&self) -> bool {
        match self {
            Term::Tuple(_) | Term::List(_) | Term::ImproperList(..) | Term::Map(_) => true,
            Term::Fun(f) => !f.free_vars.is_empty(),
            _ => false,
        }
    }

    fn take_children(&mut self, stack: &mut Vec<Term>) {
        match self {
            Term::Tuple(items) | Term::List(items) => stack.append(items),
            Term::ImproperList(items, tail) => {
                stack.extend(std::mem::take(items).into_vec());
                stack.push(std::mem::replace(&mut **tail, Term::Int(0)));
            }
            Term::Map(pairs) => {
                for (k, v) in pairs.drain(..) {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Term::Fun(f) => stack.append(&mut f.free_vars),
            _ => {}
        }
    }
}
