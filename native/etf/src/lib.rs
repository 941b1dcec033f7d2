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
pub use encode::encode;
pub use error::{DecodeError, EncodeError};
pub use term::{Atom, BigInt, Export, Fun, Pid, Port, Reference, Term};
