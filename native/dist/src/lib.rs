//! The node's distribution side, with no PyO3 in it, so `cargo test` drives it on its own
//! (and fuzzes it): the frames of one connection cut and answered (`fast_path`), the natives
//! the node serves (`registry`) and its built-in natives (`builtins`). The binding crate
//! (`native/src`) puts the connection's threads and Python around it.

pub mod builtins;
pub mod fast_path;
pub mod registry;

pub use fast_path::{write_message, Config, FastPath, FrameError};
