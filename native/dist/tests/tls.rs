//! TLS sessions against each other and against what a hostile peer sends, and a link
//! carrying the fast path, large replies and ticks over TLS. Certificates are made here
//! (rcgen), in a directory of the test's own.

mod common;
use common::*;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etf::Term;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustelixir_dist::link::Link;
use rustelixir_dist::tls::{TlsConfig, TlsError, TlsSession};

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rustelixir-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ca { cert: params.self_signed(&key).unwrap(), key }
}

/// A node's certificate (for `hosts`) and key signed by `ca`, as PEM.
fn issue(ca: &Ca, hosts: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "node");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The TLS configuration of a node whose certificate `ca` signed, trusting `trusted`.
fn config(dir: &TempDir, name: &str, ca: &Ca, trusted: &Ca) -> TlsConfig {
    let (cert, key) = issue(ca, &["localhost", "127.0.0.1"]);
    TlsConfig::from_pem_files(
        &dir.write(&format!("{name}.pem"), &cert),
        &dir.write(&format!("{name}.key"), &key),
        &dir.write(&format!("{name}-ca.pem"), &trusted.cert.pem()),
    )
    .unwrap()
}

/// Moves bytes between two sessions until neither has any to send; the plaintext each
/// received. The first error, with the side that raised it.
fn pump(a: &mut TlsSession, b: &mut TlsSession) -> Result<(Vec<u8>, Vec<u8>), (char, TlsError)> {
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
        a.take_output(&mut a_out);
        b.take_output(&mut b_out);
        if a_out.is_empty() && b_out.is_empty() {
            return Ok((to_a, to_b));
        }
        if !a_out.is_empty() {
            b.receive(&a_out, &mut to_b).map_err(|e| ('b', e))?;
        }
        if !b_out.is_empty() {
            a.receive(&b_out, &mut to_a).map_err(|e| ('a', e))?;
        }
    }
    panic!("the sessions never went quiet");
}

/// A session dialling `host` and one accepting, each (signer, trusted) CAs: (client, server).
fn sessions(dir: &TempDir, host: &str, client: (&Ca, &Ca), server: (&Ca, &Ca)) -> (TlsSession, TlsSession) {
    (
        config(dir, "client", client.0, client.1).connect(host).unwrap(),
        config(dir, "server", server.0, server.1).accept().unwrap(),
    )
}

fn established(dir: &TempDir) -> (TlsSession, TlsSession) {
    let authority = ca("test CA");
    let (mut client, mut server) = sessions(dir, "127.0.0.1", (&authority, &authority), (&authority, &authority));
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking() && !server.is_handshaking());
    (client, server)
}

#[test]
fn two_sessions_of_one_ca_carry_bytes_both_ways() {
    let dir = TempDir::new("carry");
    let (mut client, mut server) = established(&dir);
    let large: Vec<u8> = (0..(1 << 20) + 17).map(|i| (i * 7) as u8).collect();
    client.send(b"hello");
    client.send(&large);
    server.send(b"world");
    let (to_client, to_server) = pump(&mut client, &mut server).unwrap();
    assert_eq!(to_client, b"world");
    assert_eq!(&to_server[..5], b"hello");
    assert_eq!(&to_server[5..], &large[..]);
    assert!(server.describe().unwrap().starts_with("TLSv1_3"));
}

#[test]
fn plaintext_sent_before_the_handshake_is_done_follows_it() {
    let dir = TempDir::new("early");
    let authority = ca("test CA");
    let (mut client, mut server) = sessions(&dir, "localhost", (&authority, &authority), (&authority, &authority));
    client.send(b"\0\0\0\x0fN..."); // the initiator's first handshake message, queued at once
    let (_, to_server) = pump(&mut client, &mut server).unwrap();
    assert_eq!(to_server, b"\0\0\0\x0fN...");
}

#[test]
fn a_client_certificate_of_another_ca_is_refused_in_the_tls_handshake() {
    let dir = TempDir::new("rogue-client");
    let (ours, rogue) = (ca("our CA"), ca("rogue CA"));
    let (mut client, mut server) = sessions(&dir, "127.0.0.1", (&rogue, &ours), (&ours, &ours));
    client.send(b"\0\0\0\x0fN...");
    let (side, error) = pump(&mut client, &mut server).unwrap_err();
    assert_eq!(side, 'b', "the server refuses it");
    assert!(error.0.contains("UnknownIssuer"), "{error}");
    // The client hears why (the alert), and nothing it sent was ever plaintext to the server.
    let mut alert = Vec::new();
    server.take_output(&mut alert);
    assert!(client.receive(&alert, &mut Vec::new()).unwrap_err().0.contains("alert"));
    assert!(server.receive(b"more", &mut Vec::new()).is_err(), "a failed session stays failed");
}

#[test]
fn a_server_certificate_of_another_ca_is_refused_by_the_node_that_dials() {
    let dir = TempDir::new("rogue-server");
    let (ours, rogue) = (ca("our CA"), ca("rogue CA"));
    let (mut client, mut server) = sessions(&dir, "127.0.0.1", (&ours, &ours), (&rogue, &ours));
    let (side, error) = pump(&mut client, &mut server).unwrap_err();
    assert_eq!(side, 'a');
    assert!(error.0.contains("UnknownIssuer"), "{error}");
}

#[test]
fn the_node_that_dials_wants_the_host_it_dialled_named_in_the_certificate() {
    let dir = TempDir::new("host");
    let authority = ca("test CA");
    let (mut client, mut server) = sessions(&dir, "other.example", (&authority, &authority), (&authority, &authority));
    let (side, error) = pump(&mut client, &mut server).unwrap_err();
    assert_eq!(side, 'a');
    assert!(error.0.contains("not valid for name \"other.example\""), "{error}");
    assert!(config(&dir, "x", &authority, &authority).connect("not a host!").is_err());
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let dir = TempDir::new("anonymous");
    let authority = ca("test CA");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(authority.cert.der().clone()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let anonymous = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client =
        rustls::ClientConnection::new(Arc::new(anonymous), "localhost".try_into().unwrap()).unwrap();
    let mut server = config(&dir, "server", &authority, &authority).accept().unwrap();
    client.writer().write_all(b"\0\0\0\x0fN...").unwrap();
    let mut refused = None;
    for _ in 0..10 {
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        if let Err(e) = server.receive(&out, &mut Vec::new()) {
            refused = Some(e);
            break;
        }
        let mut back = Vec::new();
        server.take_output(&mut back);
        let _ = client.read_tls(&mut &back[..]);
        let _ = client.process_new_packets();
    }
    let refused = refused.expect("the server refuses a client with no certificate");
    assert!(refused.0.contains("no certificates"), "{refused}");
}

#[test]
fn what_is_not_tls_is_refused_at_once() {
    let dir = TempDir::new("plain");
    let authority = ca("test CA");
    let tls = config(&dir, "server", &authority, &authority);
    // A plain TCP peer's first handshake message ('N', 2-byte length).
    let mut plaintext = Vec::new();
    let error = tls.accept().unwrap().receive(b"\x00\x0fN\x00\x00\x00\x00\x00\x00\x00\x00", &mut plaintext).unwrap_err();
    assert!(plaintext.is_empty());
    assert!(error.0.contains("corrupt message"), "{error}");
    // A record header claiming more than TLS allows in one record: refused from the header.
    assert!(tls.accept().unwrap().receive(&[0x16, 3, 3, 0xFF, 0xFF], &mut plaintext).is_err());
}

#[test]
fn a_malformed_record_after_the_handshake_fails_the_session() {
    let dir = TempDir::new("malformed");
    let (mut client, mut server) = established(&dir);
    let mut record = Vec::new();
    client.encrypt(b"a frame", &mut record);
    let last = record.len() - 1;
    record[last] ^= 1; // its authentication tag no longer matches
    let mut plaintext = Vec::new();
    assert!(server.receive(&record, &mut plaintext).is_err());
    assert!(plaintext.is_empty());
    assert!(server.receive(&[], &mut plaintext).is_err());
}

#[test]
fn configuration_files_that_cannot_be_used_are_named() {
    let dir = TempDir::new("config");
    let (ours, other) = (ca("our CA"), ca("other CA"));
    let (cert, key) = issue(&ours, &["localhost"]);
    let (_, other_key) = issue(&other, &["localhost"]);
    let cert = dir.write("node.pem", &cert);
    let key = dir.write("node.key", &key);
    let other_key = dir.write("other.key", &other_key);
    let cacert = dir.write("ca.pem", &ours.cert.pem());
    let not_pem = dir.write("not.pem", "hello");
    let missing = dir.0.join("missing.pem");
    let error = |cert: &Path, key: &Path, cacert: &Path| TlsConfig::from_pem_files(cert, key, cacert).err().unwrap().0;
    assert!(error(&missing, &key, &cacert).contains("missing.pem"));
    assert!(error(&not_pem, &key, &cacert).contains("not.pem"));
    assert!(error(&cert, &not_pem, &cacert).contains("not.pem"));
    assert!(error(&cert, &key, &not_pem).contains("not.pem"));
    let mismatch = error(&cert, &other_key, &cacert);
    assert!(mismatch.contains("node.pem") && mismatch.contains("other.key"), "{mismatch}");
    assert!(TlsConfig::from_pem_files(&cert, &key, &cacert).is_ok());
}

/// A link over TLS on a real socket: the peer's side, with its session.
struct TlsPeer {
    stream: TcpStream,
    session: TlsSession,
    plaintext: Vec<u8>,
}

impl TlsPeer {
    fn send(&mut self, plaintext: &[u8]) {
        let mut records = Vec::new();
        self.session.encrypt(plaintext, &mut records);
        self.stream.write_all(&records).unwrap();
    }

    /// Reads until `done` says the plaintext so far is enough (or the link closes).
    fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 1 << 16];
        while !done(&self.plaintext) {
            assert!(Instant::now() < deadline, "nothing came in time");
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if self.session.receive(&buf[..n], &mut self.plaintext).is_err() {
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return false,
            }
        }
        true
    }
}

fn tls_link(ticktime: Duration) -> (Link, TlsPeer, File, TempDir) {
    let dir = TempDir::new("link");
    let (client, server) = established(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut fds = [0; 2];
    // SAFETY: a two-int array, as pipe(2) wants.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors, each owned once.
    let (wake_r, wake_w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let link = Link::start(accepted, Vec::new(), wake_w, peer_config(1 << 30), Some(server_with(&[])), ticktime, Some(server)).unwrap();
    (link, TlsPeer { stream, session: client, plaintext: Vec::new() }, wake_r, dir)
}

/// The frames in `plaintext` (length-prefixed; ticks are empty), when they are all whole.
fn whole_frames(plaintext: &[u8]) -> Option<Vec<&[u8]>> {
    let mut frames = Vec::new();
    let mut rest = plaintext;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().unwrap()) as usize;
        frames.push(rest.get(4..4 + len)?);
        rest = &rest[4 + len..];
    }
    Some(frames)
}

/// The plaintext ends with a whole message: its last frame is one, or the last fragment of
/// one (fragment id 1; the peer's flags allow fragments).
fn whole_messages(plaintext: &[u8]) -> bool {
    let Some(frames) = whole_frames(plaintext) else { return false };
    match frames.iter().rev().find(|f| !f.is_empty()) {
        Some(last) if last.starts_with(&[131, 69]) || last.starts_with(&[131, 70]) => {
            last.get(10..18) == Some(&1u64.to_be_bytes()[..])
        }
        Some(_) => true,
        None => false,
    }
}

#[test]
fn a_link_over_tls_answers_calls_sends_large_replies_and_ticks() {
    let (mut link, mut peer, _wake, _dir) = tls_link(Duration::from_millis(400));
    peer.send(&call_frame(&Term::Tuple(vec![atom("add"), Term::Int(1), Term::Int(2)]), 1));
    assert!(peer.read_until(|p| whole_frames(p).is_some_and(|f| f.iter().any(|f| !f.is_empty()))));
    let answered: Vec<u8> = std::mem::take(&mut peer.plaintext);
    assert_eq!(replies(&answered), vec![(vec![1, 7, 9], ok(Term::Int(3)))]);

    let large: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    peer.send(&call_frame(&Term::Tuple(vec![atom("echo"), Term::Binary(large.clone())]), 2));
    assert!(peer.read_until(|p| p.len() > 1 << 20 && whole_messages(p)));
    let answered: Vec<u8> = std::mem::take(&mut peer.plaintext);
    assert_eq!(replies(&answered), vec![(vec![2, 7, 9], ok(Term::Binary(large)))]);

    // Nothing to send for a quarter of net_ticktime: a tick, inside TLS.
    assert!(peer.read_until(|p| whole_frames(p).is_some_and(|f| f.iter().any(|f| f.is_empty()))));
    assert!(!link.is_closing());
    link.close();
}

#[test]
fn a_malformed_record_closes_the_link_with_a_protocol_error() {
    let (link, mut peer, _wake, _dir) = tls_link(Duration::from_secs(60));
    peer.send(&call_frame(&Term::Tuple(vec![atom("add"), Term::Int(1), Term::Int(2)]), 1));
    assert!(peer.read_until(|p| whole_frames(p).is_some_and(|f| !f.is_empty())));
    peer.stream.write_all(&[0x17, 3, 3, 0, 40]).unwrap();
    peer.stream.write_all(&[0xAB; 40]).unwrap();
    assert!(!peer.read_until(|_| false), "the link closes the connection");
    let deadline = Instant::now() + Duration::from_secs(5);
    let reason = loop {
        if let (_, _, Some(reason)) = link.take() {
            break reason;
        }
        assert!(Instant::now() < deadline, "the link never said it closed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(reason.starts_with("protocol error: TLS"), "{reason}");
}
