//! Erlang term order:
//! number < atom < reference < fun < port < pid < tuple < map < [] < list < bitstring.
//!
//! [`compare`] is the order of `<` and `==` (so `1 == 1.0`); [`compare_exact`] is the total
//! order of map keys, where every integer comes before every float and `-0.0 < 0.0`.
//! Within pids, ports and references the field order was read off a real VM
//! (see tests/test_term_order.py, which checks this against `lists:sort/1`).

use std::cmp::Ordering;

use crate::term::{BigInt, Term};

pub fn compare(a: &Term, b: &Term) -> Ordering {
    cmp(a, b, false)
}

pub fn compare_exact(a: &Term, b: &Term) -> Ordering {
    cmp(a, b, true)
}

fn rank(t: &Term) -> u8 {
    match t {
        Term::Int(_) | Term::BigInt(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Ref(_) => 2,
        Term::Fun(_) | Term::Export(_) => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(items) if items.is_empty() => 8,
        Term::List(_) | Term::ImproperList(..) => 9,
        Term::Binary(_) | Term::BitString { .. } => 10,
    }
}

/// Recursion depth follows the terms' nesting; the stack grows on the heap when it runs low,
/// so deep terms compare on any thread.
fn cmp(a: &Term, b: &Term, exact: bool) -> Ordering {
    stacker::maybe_grow(crate::STACK_RED_ZONE, crate::STACK_GROWTH, || cmp_inner(a, b, exact))
}

fn cmp_inner(a: &Term, b: &Term, exact: bool) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Term::Float(x), Term::Float(y)) => {
            if exact {
                x.total_cmp(y)
            } else {
                x.partial_cmp(y).unwrap_or(Ordering::Equal)
            }
        }
        (Term::Float(x), _) => {
            if exact {
                Ordering::Greater
            } else {
                cmp_int_float(b, *x).reverse()
            }
        }
        (_, Term::Float(y)) => {
            if exact {
                Ordering::Less
            } else {
                cmp_int_float(a, *y)
            }
        }
        (Term::Int(_) | Term::BigInt(_), Term::Int(_) | Term::BigInt(_)) => cmp_ints(a, b),
        (Term::Atom(x), Term::Atom(y)) => x.0.as_bytes().cmp(y.0.as_bytes()),
        (Term::Ref(x), Term::Ref(y)) => x
            .node
            .0
            .as_bytes()
            .cmp(y.node.0.as_bytes())
            .then(x.creation.cmp(&y.creation))
            .then(x.ids.len().cmp(&y.ids.len()))
            .then_with(|| x.ids.iter().rev().cmp(y.ids.iter().rev())),
        (Term::Fun(x), Term::Fun(y)) => x
            .module
            .0
            .as_bytes()
            .cmp(y.module.0.as_bytes())
            .then(x.index.cmp(&y.index))
            .then(x.uniq.cmp(&y.uniq))
            .then(x.old_uniq.cmp(&y.old_uniq))
            .then(x.free_vars.len().cmp(&y.free_vars.len()))
            .then_with(|| cmp_seq(&x.free_vars, &y.free_vars, exact)),
        (Term::Export(x), Term::Export(y)) => x
            .module
            .0
            .as_bytes()
            .cmp(y.module.0.as_bytes())
            .then_with(|| x.function.0.as_bytes().cmp(y.function.0.as_bytes()))
            .then(x.arity.cmp(&y.arity)),
        (Term::Fun(_), Term::Export(_)) => Ordering::Less,
        (Term::Export(_), Term::Fun(_)) => Ordering::Greater,
        (Term::Port(x), Term::Port(y)) => x
            .node
            .0
            .as_bytes()
            .cmp(y.node.0.as_bytes())
            .then(x.creation.cmp(&y.creation))
            .then(x.id.cmp(&y.id)),
        (Term::Pid(x), Term::Pid(y)) => x
            .serial
            .cmp(&y.serial)
            .then(x.id.cmp(&y.id))
            .then_with(|| x.node.0.as_bytes().cmp(y.node.0.as_bytes()))
            .then(x.creation.cmp(&y.creation)),
        (Term::Tuple(x), Term::Tuple(y)) => x.len().cmp(&y.len()).then_with(|| cmp_seq(x, y, exact)),
        (Term::Map(x), Term::Map(y)) => cmp_maps(x, y, exact),
        (Term::List(_) | Term::ImproperList(..), Term::List(_) | Term::ImproperList(..)) => cmp_lists(a, b, exact),
        (Term::Binary(_) | Term::BitString { .. }, Term::Binary(_) | Term::BitString { .. }) => {
            let (da, ba) = bits_of(a);
            let (db, bb) = bits_of(b);
            cmp_bits(da, ba, db, bb)
        }
        _ => unreachable!("terms of equal rank"),
    }
}

fn cmp_seq(x: &[Term], y: &[Term], exact: bool) -> Ordering {
    for (p, q) in x.iter().zip(y) {
        let o = cmp(p, q, exact);
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

/// Lists compare as chains of cons cells: head by head, and then whatever is left (the
/// shorter list's tail, `[]` or an improper tail) against the rest of the other.
fn cmp_lists(a: &Term, b: &Term, exact: bool) -> Ordering {
    fn parts(t: &Term) -> (&[Term], Option<&Term>) {
        match t {
            Term::List(items) => (items, None),
            Term::ImproperList(items, tail) => (items, Some(tail)),
            _ => unreachable!(),
        }
    }
    let (xa, ta) = parts(a);
    let (xb, tb) = parts(b);
    for (p, q) in xa.iter().zip(xb) {
        let o = cmp(p, q, exact);
        if o.is_ne() {
            return o;
        }
    }
    // Rank of what follows the common prefix on each side: 8 for [], 9 for a non-empty
    // list, or the improper tail's own rank.
    let n = xa.len().min(xb.len());
    let rest_rank = |items: &[Term], tail: Option<&Term>| -> u8 {
        if items.len() > n {
            9
        } else {
            tail.map_or(8, rank)
        }
    };
    let (ra, rb) = (rest_rank(xa, ta), rest_rank(xb, tb));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (xa.len() > n, xb.len() > n) {
        (false, false) => match (ta, tb) {
            (Some(p), Some(q)) => cmp(p, q, exact),
            _ => Ordering::Equal,
        },
        // Only reachable for a hand-built ImproperList whose tail is itself a list, which no
        // decoder produces; such a term compares by its elements and length alone.
        _ => xa.len().cmp(&xb.len()),
    }
}

fn cmp_maps(x: &[(Term, Term)], y: &[(Term, Term)], exact: bool) -> Ordering {
    if x.len() != y.len() {
        return x.len().cmp(&y.len());
    }
    fn sorted(m: &[(Term, Term)]) -> Vec<&(Term, Term)> {
        let mut v: Vec<&(Term, Term)> = m.iter().collect();
        v.sort_by(|p, q| compare_exact(&p.0, &q.0));
        v
    }
    let (sx, sy) = (sorted(x), sorted(y));
    for (p, q) in sx.iter().zip(&sy) {
        let o = compare_exact(&p.0, &q.0);
        if o.is_ne() {
            return o;
        }
    }
    for (p, q) in sx.iter().zip(&sy) {
        let o = cmp(&p.1, &q.1, exact);
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

fn bits_of(t: &Term) -> (&[u8], usize) {
    match t {
        Term::Binary(d) => (d, d.len() * 8),
        Term::BitString { data, tail_bits } => (data, data.len().saturating_sub(1) * 8 + *tail_bits as usize),
        _ => unreachable!(),
    }
}

fn cmp_bits(a: &[u8], abits: usize, b: &[u8], bbits: usize) -> Ordering {
    let n = abits.min(bbits);
    let full = n / 8;
    let o = a[..full].cmp(&b[..full]);
    if o.is_ne() {
        return o;
    }
    let rem = n % 8;
    if rem > 0 {
        let mask = 0xffu8 << (8 - rem);
        let o = (a[full] & mask).cmp(&(b[full] & mask));
        if o.is_ne() {
            return o;
        }
    }
    abits.cmp(&bbits)
}

/// Sign (-1, 0, 1) and little-endian magnitude of an integer term.
fn int_parts(t: &Term) -> (i8, Vec<u8>) {
    match t {
        Term::Int(v) => {
            let m = v.unsigned_abs().to_le_bytes();
            let len = 8 - (v.unsigned_abs().leading_zeros() / 8) as usize;
            (v.signum() as i8, m[..len].to_vec())
        }
        Term::BigInt(BigInt { negative, magnitude }) => (if *negative { -1 } else { 1 }, magnitude.to_vec()),
        _ => unreachable!(),
    }
}

fn cmp_magnitudes(x: &[u8], y: &[u8]) -> Ordering {
    x.len().cmp(&y.len()).then_with(|| x.iter().rev().cmp(y.iter().rev()))
}

fn cmp_signed(sa: i8, ma: &[u8], sb: i8, mb: &[u8]) -> Ordering {
    if sa != sb {
        return sa.cmp(&sb);
    }
    match sa {
        0 => Ordering::Equal,
        1 => cmp_magnitudes(ma, mb),
        _ => cmp_magnitudes(mb, ma),
    }
}

fn cmp_ints(a: &Term, b: &Term) -> Ordering {
    if let (Term::Int(x), Term::Int(y)) = (a, b) {
        return x.cmp(y);
    }
    let (sa, ma) = int_parts(a);
    let (sb, mb) = int_parts(b);
    cmp_signed(sa, &ma, sb, &mb)
}

/// Compares an integer with a float by their mathematical values.
fn cmp_int_float(i: &Term, f: f64) -> Ordering {
    let t = f.trunc();
    // The integer part of a finite float, exactly, as sign and magnitude.
    let (sf, mf) = float_int_parts(t);
    let (si, mi) = int_parts(i);
    let o = cmp_signed(si, &mi, sf, &mf);
    if o.is_ne() {
        return o;
    }
    // Same integer part: the fraction decides (a positive one puts the float above).
    0.0_f64.partial_cmp(&(f - t)).expect("the fraction of a finite float")
}

fn float_int_parts(t: f64) -> (i8, Vec<u8>) {
    if t == 0.0 {
        return (0, Vec::new());
    }
    let bits = t.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    // value = mant * 2^exp, an integer since t is integral.
    let mut mag: Vec<u8> = if exp >= 0 {
        let shift = exp as usize;
        let mut v = vec![0u8; shift / 8];
        let wide = (mant as u128) << (shift % 8);
        v.extend_from_slice(&wide.to_le_bytes());
        v
    } else {
        (mant >> (-exp) as u32).to_le_bytes().to_vec()
    };
    while mag.last() == Some(&0) {
        mag.pop();
    }
    (if t < 0.0 { -1 } else { 1 }, mag)
}
