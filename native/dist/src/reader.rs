//! Reading the terms of a message in place, as far as the node needs to route it: nothing is
//! built, every length is checked against what remains, and every term is walked under the
//! node's limits. `None` means "not what was looked for, or not well-formed".

use std::vec::Drain;

use etf::decode::{decode_at_with, Builder, Limits};
use etf::tags::*;
use etf::{DecodeError, Export, Fun, Port};

/// Walks a term without building anything, to find where it ends.
pub struct Skip;

macro_rules! skip_all {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(&mut self, $(_: $arg),*) -> Result<(), DecodeError> { Ok(()) })*
    };
}

impl Builder for Skip {
    type Value = ();
    type Error = DecodeError;
    skip_all! {
        int(i64);
        big_int(bool, &[u8]);
        float(f64);
        atom(&str);
        binary(&[u8]);
        bitstring(&[u8], u8);
        pid(&str, u32, u32, u32);
        port(Port);
        reference(&str, u32, &[u32]);
        fun(Fun);
        export(Export);
        tuple(Drain<'_, ()>);
        list(Drain<'_, ()>, Option<()>);
        string(&[u8]);
        map(Drain<'_, ()>, usize);
    }
}

/// Every small integer, encoded: the elements of a list written as STRING_EXT.
static SMALL_INTS: [[u8; 2]; 256] = {
    let mut all = [[SMALL_INTEGER_EXT, 0]; 256];
    let mut i = 0;
    while i < 256 {
        all[i][1] = i as u8;
        i += 1;
    }
    all
};

pub struct Reader<'a, 'l> {
    pub data: &'a [u8],
    pub pos: usize,
    pub limits: &'l Limits,
}

impl<'a, 'l> Reader<'a, 'l> {
    pub fn new(data: &'a [u8], pos: usize, limits: &'l Limits) -> Self {
        Reader { data, pos, limits }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    /// The version byte, when the terms of this message carry one.
    pub fn version(&mut self, versioned: bool) -> Option<()> {
        if versioned {
            (self.byte()? == VERSION).then_some(())
        } else {
            Some(())
        }
    }

    pub fn tuple(&mut self) -> Option<usize> {
        match self.byte()? {
            SMALL_TUPLE_EXT => Some(self.byte()? as usize),
            LARGE_TUPLE_EXT => Some(u32::from_be_bytes(self.bytes(4)?.try_into().ok()?) as usize),
            _ => None,
        }
    }

    pub fn small_int(&mut self) -> Option<i64> {
        match self.byte()? {
            SMALL_INTEGER_EXT => Some(self.byte()? as i64),
            INTEGER_EXT => Some(i32::from_be_bytes(self.bytes(4)?.try_into().ok()?) as i64),
            _ => None,
        }
    }

    /// An atom's name; legacy Latin-1 atoms only when ASCII (so the bytes are its UTF-8).
    pub fn atom(&mut self) -> Option<&'a [u8]> {
        let tag = self.byte()?;
        let len = match tag {
            SMALL_ATOM_UTF8_EXT | SMALL_ATOM_EXT => self.byte()? as usize,
            ATOM_UTF8_EXT | ATOM_EXT => u16::from_be_bytes(self.bytes(2)?.try_into().ok()?) as usize,
            _ => return None,
        };
        let name = self.bytes(len)?;
        if (tag == SMALL_ATOM_EXT || tag == ATOM_EXT) && !name.is_ascii() {
            return None;
        }
        // As the decoder: UTF-8, at most 255 characters (no node makes another; a name read
        // here may be written back into a reply or an exit's stack, as an atom).
        let name_str = std::str::from_utf8(name).ok()?;
        if len > 255 && name_str.chars().count() > 255 {
            return None;
        }
        Some(name)
    }

    /// The bytes of the next term, whatever it is (a compressed term only comes whole, at
    /// the top: one inside a message is left to Python, which refuses it).
    pub fn term(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        if matches!(self.data.get(start), Some(&COMPRESSED) | Some(&VERSION)) {
            return None;
        }
        let (_, end) = decode_at_with(self.data, start, &mut Skip, self.limits).ok()?;
        self.pos = end;
        Some(&self.data[start..end])
    }

    /// The elements of a proper list, each a term's bytes (collected as found: the length
    /// from the wire makes no room).
    pub fn list(&mut self) -> Option<Vec<&'a [u8]>> {
        let n = match self.byte()? {
            NIL_EXT => return Some(Vec::new()),
            STRING_EXT => {
                // A list of bytes, as BEAM writes [1, 2, 3]: each element a small integer.
                let len = u16::from_be_bytes(self.bytes(2)?.try_into().ok()?) as usize;
                return Some(self.bytes(len)?.iter().map(|&b| &SMALL_INTS[b as usize][..]).collect());
            }
            LIST_EXT => u32::from_be_bytes(self.bytes(4)?.try_into().ok()?),
            _ => return None,
        };
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(self.term()?);
        }
        (self.byte()? == NIL_EXT).then_some(items)
    }

    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    /// A pid's bytes and its node's name.
    pub fn pid(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let start = self.pos;
        if !matches!(self.peek()?, NEW_PID_EXT | PID_EXT) {
            return None;
        }
        self.byte()?;
        let node = self.atom()?;
        self.pos = start;
        Some((self.term()?, node))
    }

    /// A reference's bytes (any of the reference encodings).
    pub fn reference(&mut self) -> Option<&'a [u8]> {
        if !matches!(self.peek()?, NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT | REFERENCE_EXT) {
            return None;
        }
        self.term()
    }
}
