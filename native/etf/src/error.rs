use std::fmt;

/// Why bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// The bytes are not a valid encoded term: no limit would make them decode.
    Malformed,
    /// The bytes may well be a valid term, but decoding them would pass a limit the caller
    /// set in [`crate::Limits`] (nesting depth, uncompressed size, memory). A peer sending
    /// these is too big for us, not necessarily broken.
    Limit,
}

/// The bytes were refused. `offset` is where in the input the problem was found; inside a
/// compressed term, the offset of its tag (always within the input), and the message names
/// the offset inside the decompressed data. `kind` tells a malformed input from one over a
/// limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub offset: usize,
    pub message: String,
}

impl DecodeError {
    /// A malformed input.
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        DecodeError { kind: DecodeErrorKind::Malformed, offset, message: message.into() }
    }

    /// An input over one of the [`crate::Limits`].
    pub fn limit(offset: usize, message: impl Into<String>) -> Self {
        DecodeError { kind: DecodeErrorKind::Limit, offset, message: message.into() }
    }

    pub fn is_limit(&self) -> bool {
        self.kind == DecodeErrorKind::Limit
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// A value cannot be encoded (an atom longer than 255 characters, nesting past the limit, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    pub message: String,
}

impl EncodeError {
    pub fn new(message: impl Into<String>) -> Self {
        EncodeError { message: message.into() }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EncodeError {}
