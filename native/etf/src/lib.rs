//! The Erlang External Term Format, for rustelixir.
//!
//! - [`decode`] / [`decode::decode_with`]: bytes to a [`Term`] (or, through a [`decode::Builder`],
//!   to anything else, such as Python objects) with limits for untrusted input.
//! - [`encode`]: a [`Term`] to the bytes `term_to_binary/1` of OTP 26+ gives.
//! - [`order`]: Erlang term order.
//!
//! No Python here: the binding crate converts terms to and from Python objects.

pub mod decode;
pub mod encode;
mod error;
pub mod order;
pub mod tags;
mod term;

pub use decode::{decode, Limits};

/// Recursive walks over terms (encoding, comparing) switch to a fresh heap-allocated stack
/// segment of `STACK_GROWTH` bytes when fewer than `STACK_RED_ZONE` bytes remain.
pub(crate) const STACK_RED_ZONE: usize = 64 * 1024;
pub(crate) const STACK_GROWTH: usize = 1024 * 1024;
pub use encode::encode;
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use term::{Atom, BigInt, Export, Fun, Pid, Port, Reference, Term};
