//! Conversions between terms and Rust values, as shared/DESIGN.md section 3 maps them.
//!
//! `Vec<u8>` is a binary (and decodes from a list of bytes too); every other `Vec<T>` is a
//! proper list. `Option<T>` is `nil` or a `T`. `()` encodes as `:ok`. `String` is a UTF-8
//! binary. `f64` takes integers too (as Rustler's does). [`IoData`] is a binary or an
//! iolist, flattened; [`ListIterator`] and [`MapIterator`] take a list's items or a map's
//! pairs one at a time, each decoded when the native asks for it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use etf::decode::{decode_at_with, Limits, TermBuilder};
use etf::encode;
use etf::{Atom, BigInt, Pid, Reference, Term};

/// How a term is named in badarg messages ("expected an integer, got a binary").
pub fn kind(term: &Term) -> &'static str {
    match term {
        Term::Int(_) | Term::BigInt(_) => "an integer",
        Term::Float(_) => "a float",
        Term::Atom(_) => "an atom",
        Term::Binary(_) => "a binary",
        Term::BitString { .. } => "a bitstring",
        Term::Pid(_) => "a pid",
        Term::Port(_) => "a port",
        Term::Ref(_) => "a reference",
        Term::Fun(_) | Term::Export(_) => "a fun",
        Term::Tuple(_) => "a tuple",
        Term::List(_) => "a list",
        Term::ImproperList(..) => "an improper list",
        Term::Map(_) => "a map",
    }
}

fn expected(what: &str, got: &Term) -> ArgError {
    ArgError::BadArg(format!("expected {what}, got {}", kind(got)))
}

/// Why an argument could not be converted.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgError {
    /// `{:error, {:badarg, index, message}}`
    BadArg(String),
    /// `{:error, {:badresource, ref}}`: the reference is not a live resource of this node.
    BadResource(Reference),
}

impl From<String> for ArgError {
    fn from(message: String) -> Self {
        ArgError::BadArg(message)
    }
}

impl From<&str> for ArgError {
    fn from(message: &str) -> Self {
        ArgError::BadArg(message.to_string())
    }
}

/// The term in `bytes` (one, no version byte).
fn term_of(bytes: &[u8]) -> Result<Term, ArgError> {
    decode_at_with(bytes, 0, &mut TermBuilder, &Limits::default())
        .map(|(term, _)| term)
        .map_err(|e| ArgError::BadArg(format!("undecodable term: {}", e.message)))
}

/// A Rust value made from a term.
pub trait Decoder: Sized {
    fn decode(term: &Term) -> Result<Self, ArgError>;

    /// From the bytes of one term (no version byte).
    fn decode_bytes(bytes: &[u8]) -> Result<Self, ArgError> {
        let term = term_of(bytes)?;
        Self::decode(&term)
    }

    /// A `Vec<Self>`: a proper list (u8 takes a binary as well).
    fn decode_vec(term: &Term) -> Result<Vec<Self>, ArgError> {
        match term {
            Term::List(items) => items.iter().map(Self::decode).collect(),
            other => Err(expected("a list", other)),
        }
    }

    /// A `Vec<Self>` from the bytes of one term (u8 copies a binary's bytes once, straight
    /// from the call's).
    fn decode_vec_bytes(bytes: &[u8]) -> Result<Vec<Self>, ArgError> {
        let term = term_of(bytes)?;
        Self::decode_vec(&term)
    }
}

/// A term made from a Rust value, written in the External Term Format (no version byte).
pub trait Encoder {
    fn encode(&self, out: &mut Vec<u8>);

    /// A slice of `Self`: a list (u8 writes a binary).
    fn encode_slice(items: &[Self], out: &mut Vec<u8>)
    where
        Self: Sized,
    {
        if items.is_empty() {
            encode::put_nil(out);
            return;
        }
        encode::put_list_header(out, items.len()).expect("list under 4G items");
        for item in items {
            item.encode(out);
        }
        encode::put_nil(out);
    }
}

// --- Integers ------------------------------------------------------------------------------

fn integer(term: &Term) -> Result<i128, ArgError> {
    match term {
        Term::Int(v) => Ok(*v as i128),
        Term::BigInt(b) if b.magnitude.len() <= 16 => {
            let mut bytes = [0u8; 16];
            bytes[..b.magnitude.len()].copy_from_slice(&b.magnitude);
            let mag = u128::from_le_bytes(bytes);
            if b.negative {
                if mag <= (i128::MAX as u128) + 1 {
                    Ok((mag as i128).wrapping_neg())
                } else {
                    Err("integer out of range".into())
                }
            } else if mag <= i128::MAX as u128 {
                Ok(mag as i128)
            } else {
                Err("integer out of range".into())
            }
        }
        Term::BigInt(_) => Err("integer out of range".into()),
        other => Err(expected("an integer", other)),
    }
}

fn small_integer(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [etf::tags::SMALL_INTEGER_EXT, v] => Some(*v as i64),
        [etf::tags::INTEGER_EXT, a, b, c, d] => Some(i32::from_be_bytes([*a, *b, *c, *d]) as i64),
        _ => None,
    }
}

fn put_i128(out: &mut Vec<u8>, v: i128) {
    if let Ok(small) = i64::try_from(v) {
        encode::put_int(out, small);
    } else {
        let mag = v.unsigned_abs().to_le_bytes();
        encode::put_big(out, v < 0, BigInt::trimmed(&mag));
    }
}

macro_rules! integer_type {
    ($($t:ty),*) => {$(
        impl Decoder for $t {
            fn decode(term: &Term) -> Result<Self, ArgError> {
                let v = integer(term)?;
                <$t>::try_from(v).map_err(|_| ArgError::BadArg(format!(
                    "integer {v} out of range for {} ({}..={})", stringify!($t), <$t>::MIN, <$t>::MAX
                )))
            }
            fn decode_bytes(bytes: &[u8]) -> Result<Self, ArgError> {
                match small_integer(bytes) {
                    Some(v) => <$t>::try_from(v).map_err(|_| ArgError::BadArg(format!(
                        "integer {v} out of range for {} ({}..={})", stringify!($t), <$t>::MIN, <$t>::MAX
                    ))),
                    None => {
                        let term = term_of(bytes)?;
                        Self::decode(&term)
                    }
                }
            }
        }
        impl Encoder for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                put_i128(out, *self as i128);
            }
        }
    )*};
}

integer_type!(i8, i16, i32, i64, i128, u16, u32, u64, isize, usize);

/// Past i128: the non-negative integers up to 2^128 - 1.
impl Decoder for u128 {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        let out_of_range = || ArgError::BadArg("integer out of range for u128 (0..=2^128-1)".into());
        match term {
            Term::BigInt(b) if !b.negative => {
                if b.magnitude.len() > 16 {
                    return Err(out_of_range());
                }
                let mut bytes = [0u8; 16];
                bytes[..b.magnitude.len()].copy_from_slice(&b.magnitude);
                Ok(u128::from_le_bytes(bytes))
            }
            other => u128::try_from(integer(other)?).map_err(|_| out_of_range()),
        }
    }
}

impl Encoder for u128 {
    fn encode(&self, out: &mut Vec<u8>) {
        match i128::try_from(*self) {
            Ok(v) => put_i128(out, v),
            Err(_) => encode::put_big(out, false, BigInt::trimmed(&self.to_le_bytes())),
        }
    }
}

impl Decoder for u8 {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        let v = integer(term)?;
        u8::try_from(v).map_err(|_| ArgError::BadArg(format!("integer {v} out of range for u8 (0..=255)")))
    }
    fn decode_vec_bytes(bytes: &[u8]) -> Result<Vec<Self>, ArgError> {
        match bytes {
            [etf::tags::BINARY_EXT, a, b, c, d, rest @ ..] if u32::from_be_bytes([*a, *b, *c, *d]) as usize == rest.len() => {
                Ok(rest.to_vec())
            }
            _ => {
                let term = term_of(bytes)?;
                Self::decode_vec(&term)
            }
        }
    }
    fn decode_vec(term: &Term) -> Result<Vec<Self>, ArgError> {
        match term {
            Term::Binary(b) => Ok(b.clone()),
            Term::List(items) => items.iter().map(Self::decode).collect(),
            other => Err(expected("a binary", other)),
        }
    }
}

impl Encoder for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_int(out, *self as i64);
    }
    fn encode_slice(items: &[u8], out: &mut Vec<u8>) {
        encode::put_binary(out, items).expect("binary under 4 GiB");
    }
}

// --- Other scalars -------------------------------------------------------------------------

impl Decoder for f64 {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::Float(v) => Ok(*v),
            Term::Int(v) => Ok(*v as f64),
            Term::BigInt(b) => {
                // The nearest float (magnitude little-endian, summed from the top digit down).
                let magnitude = b.magnitude.iter().rev().fold(0f64, |acc, &digit| acc * 256.0 + digit as f64);
                if magnitude.is_finite() {
                    Ok(if b.negative { -magnitude } else { magnitude })
                } else {
                    Err("integer too large for a float".into())
                }
            }
            other => Err(expected("a number", other)),
        }
    }
}

impl Encoder for f64 {
    fn encode(&self, out: &mut Vec<u8>) {
        // Not finite has no term; nan and infinities become the atom `nan` / `infinity`-like
        // values would lie, so they are refused loudly.
        encode::put_float(out, *self).expect("a finite float (NaN and infinities have no Erlang term)");
    }
}

impl Decoder for bool {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::Atom(a) if a.0 == "true" => Ok(true),
            Term::Atom(a) if a.0 == "false" => Ok(false),
            other => Err(expected("a boolean", other)),
        }
    }
}

impl Encoder for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_atom(out, if *self { "true" } else { "false" }).expect("short atom");
    }
}

impl Decoder for String {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::Binary(b) => String::from_utf8(b.clone()).map_err(|_| ArgError::from("expected a UTF-8 binary")),
            other => Err(expected("a binary", other)),
        }
    }
}

impl Encoder for String {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_binary(out, self.as_bytes()).expect("binary under 4 GiB");
    }
}

impl Encoder for &str {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_binary(out, self.as_bytes()).expect("binary under 4 GiB");
    }
}

impl Encoder for () {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_atom(out, "ok").expect("short atom");
    }
}

impl Decoder for Atom {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::Atom(a) => Ok(a.clone()),
            other => Err(expected("an atom", other)),
        }
    }
}

impl Encoder for Atom {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_atom(out, &self.0).expect("atom of at most 255 characters");
    }
}

/// Decoder and Encoder for a type that is one Term variant's content: taken from that
/// variant (else badarg, "expected `what`"), written back with `put`.
macro_rules! variant_type {
    ($ty:ident, $variant:ident, $what:literal, $put:ident, $valid:literal) => {
        impl Decoder for $ty {
            fn decode(term: &Term) -> Result<Self, ArgError> {
                match term {
                    Term::$variant(v) => Ok($ty::clone(v)),
                    other => Err(expected($what, other)),
                }
            }
        }

        impl Encoder for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                encode::$put(out, self).expect($valid);
            }
        }
    };
}

variant_type!(Pid, Pid, "a pid", put_pid, "a valid pid");
variant_type!(Reference, Ref, "a reference", put_reference, "a valid reference");

/// Any term, as it came.
impl Decoder for Term {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        Ok(term.clone())
    }
}

impl Encoder for Term {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::encode_into(self, out).expect("an encodable term");
    }
}

// --- Containers ----------------------------------------------------------------------------

impl<T: Decoder> Decoder for Vec<T> {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        T::decode_vec(term)
    }
    fn decode_bytes(bytes: &[u8]) -> Result<Self, ArgError> {
        T::decode_vec_bytes(bytes)
    }
}

impl<T: Encoder> Encoder for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        T::encode_slice(self, out);
    }
}

impl<T: Encoder> Encoder for &[T] {
    fn encode(&self, out: &mut Vec<u8>) {
        T::encode_slice(self, out);
    }
}

impl<T: Decoder> Decoder for Option<T> {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::Atom(a) if a.0 == "nil" => Ok(None),
            other => T::decode(other).map(Some),
        }
    }
}

impl<T: Encoder> Encoder for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => encode::put_atom(out, "nil").expect("short atom"),
            Some(v) => v.encode(out),
        }
    }
}

/// Decoder and Encoder for a map type whose keys need `key_bounds` to be collected.
macro_rules! map_type {
    ($map:ident, $($key_bounds:tt)+) => {
        impl<K: Decoder + $($key_bounds)+, V: Decoder> Decoder for $map<K, V> {
            fn decode(term: &Term) -> Result<Self, ArgError> {
                match term {
                    Term::Map(pairs) => pairs.iter().map(|(k, v)| Ok((K::decode(k)?, V::decode(v)?))).collect(),
                    other => Err(expected("a map", other)),
                }
            }
        }

        impl<K: Encoder, V: Encoder> Encoder for $map<K, V> {
            fn encode(&self, out: &mut Vec<u8>) {
                encode::put_map_header(out, self.len()).expect("map under 4G pairs");
                for (k, v) in self {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    };
}

map_type!(HashMap, Eq + Hash);
map_type!(BTreeMap, Ord);

macro_rules! tuple_type {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<$($t: Decoder),+> Decoder for ($($t,)+) {
            fn decode(term: &Term) -> Result<Self, ArgError> {
                match term {
                    Term::Tuple(items) if items.len() == $n => Ok(($($t::decode(&items[$i])?,)+)),
                    other => Err(expected(concat!("a tuple of ", stringify!($n)), other)),
                }
            }
        }
        impl<$($t: Encoder),+> Encoder for ($($t,)+) {
            fn encode(&self, out: &mut Vec<u8>) {
                encode::put_tuple_header(out, $n).expect("small tuple");
                $(self.$i.encode(out);)+
            }
        }
    };
}

tuple_type!(1; A 0);
tuple_type!(2; A 0, B 1);
tuple_type!(3; A 0, B 1, C 2);
tuple_type!(4; A 0, B 1, C 2, D 3);
tuple_type!(5; A 0, B 1, C 2, D 3, E 4);
tuple_type!(6; A 0, B 1, C 2, D 3, E 4, F 5);

// --- iodata and one-at-a-time iteration ------------------------------------------------------

/// A binary or an iolist (a list of bytes, binaries and iolists, whose tail may be a
/// binary), flattened into one run of bytes, as `IO.iodata_to_binary/1` makes it. Encodes as
/// a binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoData(pub Vec<u8>);

impl Decoder for IoData {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        /// What is left to flatten, last first (no recursion: an iolist may be deep).
        enum Part<'a> {
            Item(&'a Term),
            Tail(&'a Term),
        }
        fn expand<'a>(list: &'a Term, stack: &mut Vec<Part<'a>>) {
            match list {
                Term::List(items) => stack.extend(items.iter().rev().map(Part::Item)),
                Term::ImproperList(items, tail) => {
                    stack.push(Part::Tail(tail));
                    stack.extend(items.iter().rev().map(Part::Item));
                }
                _ => unreachable!("only lists are expanded"),
            }
        }
        let mut out = Vec::new();
        let mut stack = Vec::new();
        match term {
            Term::Binary(b) => return Ok(IoData(b.clone())),
            Term::List(_) | Term::ImproperList(..) => expand(term, &mut stack),
            other => return Err(expected("iodata (a binary or an iolist)", other)),
        }
        while let Some(part) = stack.pop() {
            match part {
                Part::Item(Term::Int(v)) => {
                    out.push(u8::try_from(*v).map_err(|_| ArgError::BadArg(format!("iolist byte {v} out of range (0..=255)")))?)
                }
                Part::Item(Term::Binary(b)) | Part::Tail(Term::Binary(b)) => out.extend_from_slice(b),
                Part::Item(list @ (Term::List(_) | Term::ImproperList(..))) => expand(list, &mut stack),
                Part::Item(other) => return Err(expected("a byte, a binary or an iolist in an iolist", other)),
                Part::Tail(other) => return Err(expected("a binary as an iolist's tail", other)),
            }
        }
        Ok(IoData(out))
    }
}

impl Encoder for IoData {
    fn encode(&self, out: &mut Vec<u8>) {
        encode::put_binary(out, &self.0).expect("binary under 4 GiB");
    }
}

/// Items of a list or pairs of a map, one at a time (in the order they came), decoded when
/// the native asks for them: [`ListIterator`] and [`MapIterator`].
#[derive(Debug)]
pub struct Items<T> {
    items: std::vec::IntoIter<T>,
}

impl<T> Items<T> {
    /// Items left.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.len() == 0
    }
}

impl<T> Iterator for Items<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.items.next()
    }
}

/// A proper list's items: `next_as::<T>()` decodes the next (a native can stop early, or
/// decode items of different types).
pub type ListIterator = Items<Term>;

/// A map's pairs: `next_as::<K, V>()` decodes the next pair.
pub type MapIterator = Items<(Term, Term)>;

impl ListIterator {
    /// The next item as a `T`: None at the end.
    pub fn next_as<T: Decoder>(&mut self) -> Option<Result<T, ArgError>> {
        self.items.next().map(|t| T::decode(&t))
    }
}

impl MapIterator {
    /// The next pair as a `(K, V)`: None at the end.
    pub fn next_as<K: Decoder, V: Decoder>(&mut self) -> Option<Result<(K, V), ArgError>> {
        self.items.next().map(|(k, v)| Ok((K::decode(&k)?, V::decode(&v)?)))
    }
}

impl Decoder for ListIterator {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::List(items) => Ok(Items { items: items.clone().into_iter() }),
            other => Err(expected("a list", other)),
        }
    }
}

impl Decoder for MapIterator {
    fn decode(term: &Term) -> Result<Self, ArgError> {
        match term {
            Term::Map(pairs) => Ok(Items { items: pairs.clone().into_iter() }),
            other => Err(expected("a map", other)),
        }
    }
}
