//! The one place Rust errors become Python exceptions. The exception classes are defined
//! once, in Python (`rustelixir/errors.py`), and imported here.

use pyo3::prelude::*;

pyo3::import_exception!(rustelixir.errors, DecodeError);
pyo3::import_exception!(rustelixir.errors, TermTooLarge);
pyo3::import_exception!(rustelixir.errors, EncodeError);
pyo3::import_exception!(rustelixir.errors, RemoteProtocolError);
pyo3::import_exception!(rustelixir.errors, BadResource);
pyo3::import_exception!(rustelixir.errors, Overloaded);
pyo3::import_exception!(rustelixir.errors, TlsError);
pyo3::import_exception!(rustelixir.errors, TlsConfigError);

pub enum Error {
    Decode(etf::DecodeError),
    Encode(etf::EncodeError),
    Python(PyErr),
    /// TLS with a peer failed.
    Tls(rustelixir_dist::tls::TlsError),
    /// The node's TLS files could not be loaded.
    TlsConfig(rustelixir_dist::tls::TlsError),
}

impl From<etf::DecodeError> for Error {
    fn from(e: etf::DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<etf::EncodeError> for Error {
    fn from(e: etf::EncodeError) -> Self {
        Error::Encode(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Python(e)
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Decode(e) => match e.kind {
                etf::DecodeErrorKind::Malformed => DecodeError::new_err((e.message, e.offset)),
                etf::DecodeErrorKind::Limit => TermTooLarge::new_err((e.message, e.offset)),
            },
            Error::Encode(e) => EncodeError::new_err(e.message),
            Error::Python(e) => e,
            Error::Tls(e) => TlsError::new_err(e.0),
            Error::TlsConfig(e) => TlsConfigError::new_err(e.0),
        }
    }
}
