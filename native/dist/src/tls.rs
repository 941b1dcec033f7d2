//! TLS for the distribution, as `-proto_dist inet_tls` speaks it (OTP's `inet_tls_dist`):
//! TLS 1.2 or 1.3 over the TCP connection, each side proving a certificate signed by a CA
//! the other trusts; then, inside it, the distribution handshake (with 4-byte lengths) and
//! the frames as over plain TCP. EPMD stays plain.
//!
//! What is verified, as OTP does with `verify_peer` and `fail_if_no_peer_cert`: the peer's
//! certificate chain up to the CA file (expiry, signatures, key usage); a node that dials
//! also checks that the certificate names the host it dialled (the host part of the node
//! name, as OTP's client checks it through `server_name_indication`). A peer without a
//! valid certificate is refused within the TLS handshake, before any distribution byte.
//!
//! A `TlsSession` never touches a socket: bytes read from the socket go in (`receive`),
//! the plaintext they carried comes out; plaintext to send goes in (`encrypt`, `send`) and
//! the records to write come out (`take_output`). The handshake code drives it on the event
//! loop, then hands it to the link, whose threads read and write through it.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection};

/// TLS failed: the configuration could not be loaded, or the peer broke TLS (a record that
/// is not TLS, an alert, a certificate that does not verify). The connection must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError(e.to_string())
    }
}

/// The node's certificate, key and trusted CAs, made into the configurations of both roles
/// once, when the node starts (so a missing or malformed file is an error then, not at the
/// first connection).
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn read_error(what: &str, path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError(format!("cannot read the {what} from {}: {e}", path.display()))
}

fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let found = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(what, path, e))?;
    if found.is_empty() {
        return Err(read_error(what, path, "no PEM CERTIFICATE in it"));
    }
    Ok(found)
}

impl TlsConfig {
    /// From PEM files: `cert` the node's certificate (its chain, leaf first), `key` its
    /// private key (PKCS#8, PKCS#1 or SEC1), `cacert` the CA certificates a peer's chain
    /// must lead to.
    pub fn from_pem_files(cert: &Path, key_file: &Path, cacert: &Path) -> Result<TlsConfig, TlsError> {
        let chain = certificates("certificate", cert)?;
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| read_error("private key", key_file, e))?;
        let mismatch = |e: rustls::Error| {
            TlsError(format!("the certificate in {} with the key in {}: {e}", cert.display(), key_file.display()))
        };
        let mut roots = RootCertStore::empty();
        for ca in certificates("CA certificates", cacert)? {
            roots.add(ca).map_err(|e| read_error("CA certificates", cacert, e))?;
        }
        let roots = Arc::new(roots);
        // ring, deprecated by rustls for lacking post-quantum key exchange, which OTP's ssl
        // does not offer either; aws-lc-rs would add a large C build to every build of the
        // node for nothing a BEAM peer uses.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        // A peer that dials us must show a certificate (fail_if_no_peer_cert).
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError(format!("the CA certificates in {}: {e}", cacert.display())))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(mismatch)?;
        // One long-lived connection per peer: nothing to resume, so no tickets or cache.
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(NoServerSessionStorage {});

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(mismatch)?;
        client.resumption = Resumption::disabled();
        Ok(TlsConfig { server: Arc::new(server), client: Arc::new(client) })
    }

    /// A session for a connection a peer made to us.
    pub fn accept(&self) -> Result<TlsSession, TlsError> {
        Ok(TlsSession::new(Connection::Server(ServerConnection::new(self.server.clone())?)))
    }

    /// A session for a connection we make to `host` (the host part of the peer's node
    /// name, a DNS name or an IP address), whose certificate must name it.
    pub fn connect(&self, host: &str) -> Result<TlsSession, TlsError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| TlsError(format!("{host:?} is neither a DNS name nor an IP address")))?;
        Ok(TlsSession::new(Connection::Client(ClientConnection::new(self.client.clone(), name)?)))
    }
}

/// What one `receive` found besides plaintext.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The peer ended the session (close_notify): nothing more will come.
    pub closed: bool,
}

/// One connection's TLS state (see the module's documentation).
pub struct TlsSession {
    conn: Connection,
    failed: bool,
}

impl TlsSession {
    fn new(mut conn: Connection) -> TlsSession {
        // What is given to encrypt is taken whole: the callers bound what they give at once,
        // and drain the records after each call.
        conn.set_buffer_limit(None);
        TlsSession { conn, failed: false }
    }

    /// Bytes read from the socket: the plaintext they carried is appended to `plaintext`
    /// (nothing while the handshake runs, or while a record is incomplete). An error: the
    /// peer broke TLS or failed verification; `take_output` then has the alert that tells
    /// it why, and the connection must close. Every later call fails too.
    pub fn receive(&mut self, mut data: &[u8], plaintext: &mut Vec<u8>) -> Result<Received, TlsError> {
        if self.failed {
            return Err(TlsError("the TLS session has failed".into()));
        }
        let result = self.receive_records(&mut data, plaintext);
        self.failed = result.is_err();
        result
    }

    fn receive_records(&mut self, data: &mut &[u8], plaintext: &mut Vec<u8>) -> Result<Received, TlsError> {
        // (Never an empty read: rustls takes one for the end of the stream.)
        while !data.is_empty() {
            // Reads at most one buffer's worth (a record at most); the loop takes the rest.
            let read = self.conn.read_tls(data).map_err(|e| TlsError(e.to_string()))?;
            let state = self.conn.process_new_packets()?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plaintext.len();
                plaintext.resize(start + ready, 0);
                self.conn.reader().read_exact(&mut plaintext[start..]).map_err(|e| TlsError(e.to_string()))?;
            }
            if state.peer_has_closed() || read == 0 {
                return Ok(Received { closed: true });
            }
        }
        Ok(Received::default())
    }

    /// Plaintext for the peer, encrypted now into records `take_output` gives (or, before the
    /// handshake is done, kept and encrypted when it is).
    pub fn send(&mut self, plaintext: &[u8]) {
        // Cannot fail: the buffer has no limit (`new`).
        let _ = self.conn.writer().write_all(plaintext);
    }

    /// `send`, then the records to write appended to `out`.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        self.send(plaintext);
        self.take_output(out);
    }

    /// The records to write to the socket, in order, appended to `out`.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(out).unwrap_or(0) == 0 {
                break;
            }
        }
    }

    /// Records wait to be written (`take_output`).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// The TLS handshake is not over yet.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The TLS version and cipher suite agreed, once the handshake is over (for logs).
    pub fn describe(&self) -> Option<String> {
        let version = self.conn.protocol_version()?;
        let suite = self.conn.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }
}
