//! The node's distribution side, with no PyO3 in it, so `cargo test` drives it on its own
//! (and fuzzes it): the connection's threads (`link`), the frames it reads (`fast_path`) and
//! writes (`frame`), the control messages' opcodes (`control`), the call contract's
//! requests (`contract`), the server that answers them (`server`, with its `registry` of
//! natives, its worker `pool` and the `runtime` of async natives) and the node's built-in natives (`builtins`). The binding
//! crate (`native/src`) only converts between Python objects and these.

pub mod builtins;
pub mod contract;
pub mod control;
pub mod fast_path;
pub mod frame;
pub mod link;
pub mod pool;
pub mod reader;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod tls;

pub use fast_path::{FastPath, FrameError};
pub use server::{Peer, Server, ServerConfig};
