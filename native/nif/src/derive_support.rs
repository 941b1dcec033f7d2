//! The pieces the derives (`rustelixir-derive`) generate calls to: shapes checked, fields
//! found, errors that name the type and the field.

use etf::encode;
use etf::Term;

use crate::convert::{kind, ArgError, Decoder};

/// The atom's name, if `term` is an atom.
pub fn atom_key(term: &Term) -> Option<&str> {
    match term {
        Term::Atom(a) => Some(&a.0),
        _ => None,
    }
}

/// Field `field` of `what` from `value`: its errors say where they are.
pub fn field<T: Decoder>(value: &Term, what: &str, field: &str) -> Result<T, ArgError> {
    T::decode(value).map_err(|e| match e {
        ArgError::BadArg(message) => ArgError::BadArg(format!("{what} field {field}: {message}")),
        other => other,
    })
}

pub fn missing(what: &str, field: &str) -> ArgError {
    ArgError::BadArg(format!("{what} is missing field {field}"))
}

pub fn map_pairs<'a>(term: &'a Term, what: &str) -> Result<&'a [(Term, Term)], ArgError> {
    match term {
        Term::Map(pairs) => Ok(pairs),
        other => Err(ArgError::BadArg(format!("expected a {what} (a map), got {}", kind(other)))),
    }
}

/// The map is the struct `atom` (its `__struct__`), shown as `%shown{}`.
pub fn check_struct(pairs: &[(Term, Term)], atom: &str, shown: &str) -> Result<(), ArgError> {
    match pairs.iter().find(|(k, _)| atom_key(k) == Some("__struct__")).map(|(_, v)| atom_key(v)) {
        Some(Some(module)) if module == atom => Ok(()),
        Some(Some(other)) => Err(ArgError::BadArg(format!(
            "expected a %{shown}{{}}, got a %{}{{}}",
            other.strip_prefix("Elixir.").unwrap_or(other)
        ))),
        _ => Err(ArgError::BadArg(format!("expected a %{shown}{{}}, got a map that is no struct"))),
    }
}

pub fn tuple_items<'a>(term: &'a Term, arity: usize, what: &str) -> Result<&'a [Term], ArgError> {
    match term {
        Term::Tuple(items) if items.len() == arity => Ok(items),
        Term::Tuple(items) => Err(ArgError::BadArg(format!("expected a {what} (a tuple of {arity}), got a tuple of {}", items.len()))),
        other => Err(ArgError::BadArg(format!("expected a {what} (a tuple of {arity}), got {}", kind(other)))),
    }
}

/// A record's first element is its tag.
pub fn check_tag(first: &Term, tag: &str, what: &str) -> Result<(), ArgError> {
    match atom_key(first) {
        Some(t) if t == tag => Ok(()),
        _ => Err(ArgError::BadArg(format!("expected a {what} (a tuple tagged {tag}), got another tag"))),
    }
}

/// `message` (ending in "got ") and what the term is: an atom by its name.
pub fn not_a_variant(message: &str, term: &Term) -> String {
    match term {
        Term::Atom(a) => format!("{message}the atom {}", a.0),
        Term::Tuple(items) => match items.first().and_then(atom_key) {
            Some(tag) => format!("{message}a tuple of {} tagged {tag}", items.len()),
            None => format!("{message}a tuple of {}", items.len()),
        },
        other => format!("{message}{}", kind(other)),
    }
}

pub fn map_header(out: &mut Vec<u8>, pairs: usize) {
    encode::put_map_header(out, pairs).expect("a struct's fields fit");
}

pub fn tuple_header(out: &mut Vec<u8>, arity: usize) {
    encode::put_tuple_header(out, arity).expect("a struct's fields fit");
}

pub fn atom(out: &mut Vec<u8>, name: &str) {
    encode::put_atom(out, name).expect("a field, tag or module name is an atom");
}
