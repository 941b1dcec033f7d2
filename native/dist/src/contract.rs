//! The call contract's requests (shared/DESIGN.md section 1), read here once: the server's
//! registered name, the names the contract reserves, the gen_server messages a caller sends
//! and the request shapes inside them. The replies are written in `rustelixir_nif::reply`.

use etf::tags::{LARGE_TUPLE_EXT, LIST_EXT, NEWER_REFERENCE_EXT, NEW_REFERENCE_EXT, SMALL_TUPLE_EXT};

use crate::frame::Caller;
use crate::reader::Reader;

/// The name the node's server is registered under.
pub const SERVER_NAME: &str = "rustelixir";

/// Names the call contract keeps for itself: no native may take them.
pub const RESERVED: &[&str] = &["functions", "info", "release", "share", "resource_info", "reload"];

/// One request of the contract; every term is its bytes (no version byte).
#[derive(Debug)]
pub enum Request<'a> {
    /// `{fun, Arg1, ..., ArgN}`, `fun` or `{fun}`: call native `fun/N`.
    Native { name: &'a [u8], args: Vec<&'a [u8]> },
    Functions,
    Info,
    Release(&'a [u8]),
    Share(&'a [u8], &'a [u8]),
    ResourceInfo(&'a [u8]),
    /// `{reload, Module}`: load the served module's new build (its term's bytes).
    Reload(&'a [u8]),
    /// None of the shapes: `{badrequest, Message}`.
    Bad(String),
}

/// A gen_server message to the server.
#[derive(Debug)]
pub enum Message<'a> {
    /// `{'$gen_call', {Pid, Tag}, Request}`; `node` is the caller's node.
    Call { caller: Caller<'a>, node: &'a [u8], request: Request<'a> },
    /// `{'$gen_cast', Request}`
    Cast(Request<'a>),
    /// Any other well-formed term: a gen_server drops it.
    Other,
}

/// The message (a whole term) at the reader's position. `None`: not well-formed as far as
/// the node can read it in place (then the general decoder judges it).
pub fn message<'a>(r: &mut Reader<'a, '_>) -> Option<Message<'a>> {
    let start = r.pos;
    let found = (|| match r.tuple()? {
        3 if r.atom()? == b"$gen_call" => {
            let (caller, node) = from(r)?;
            Some(Message::Call { caller, node, request: request(r)? })
        }
        2 if r.atom()? == b"$gen_cast" => Some(Message::Cast(request(r)?)),
        _ => None,
    })();
    if found.is_some() {
        return found;
    }
    r.pos = start;
    r.term().map(|_| Message::Other)
}

/// `{'$gen_call', {Pid, Tag}, ` at the reader's position (the request may follow, or be cut
/// off): the caller and its node.
pub fn call_header<'a>(r: &mut Reader<'a, '_>) -> Option<(Caller<'a>, &'a [u8])> {
    if r.tuple()? != 3 || r.atom()? != b"$gen_call" {
        return None;
    }
    from(r)
}

/// A call's `{Pid, Tag}`.
fn from<'a>(r: &mut Reader<'a, '_>) -> Option<(Caller<'a>, &'a [u8])> {
    if r.tuple()? != 2 {
        return None;
    }
    let (pid, node) = r.pid()?;
    let tag_start = r.pos;
    let alias = alias_in_tag(r);
    r.pos = tag_start;
    let tag = r.term()?;
    Some((Caller { pid, tag, alias, spawned: None }, node))
}

/// The alias reference of an OTP 24+ tag `[alias | Ref]`.
fn alias_in_tag<'a>(r: &mut Reader<'a, '_>) -> Option<&'a [u8]> {
    if r.byte()? != LIST_EXT {
        return None;
    }
    let b = r.data.get(r.pos..r.pos + 4)?;
    r.pos += 4;
    if u32::from_be_bytes(b.try_into().ok()?) != 1 || r.atom()? != b"alias" {
        return None;
    }
    if r.peek()? != NEWER_REFERENCE_EXT {
        return None;
    }
    r.term()
}

/// The request term at the reader's position.
fn request<'a>(r: &mut Reader<'a, '_>) -> Option<Request<'a>> {
    let start = r.pos;
    let (name, args) = match r.peek()? {
        SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
            let n = r.tuple()?;
            let name = if n == 0 { None } else { r.atom() };
            let Some(name) = name else {
                r.pos = start;
                r.term()?;
                return Some(bad_shape());
            };
            // The arity comes from the wire: the arguments are collected as they are found,
            // never room made for as many as it claims.
            let mut args = Vec::new();
            for _ in 1..n {
                args.push(r.term()?);
            }
            (name, args)
        }
        _ => match r.atom() {
            Some(name) => (name, Vec::new()),
            None => {
                r.pos = start;
                r.term()?;
                return Some(bad_shape());
            }
        },
    };
    Some(classify(name, args))
}

/// The request `{name, Args...}`: one of the reserved ones, or a native's.
pub fn classify<'a>(name: &'a [u8], args: Vec<&'a [u8]>) -> Request<'a> {
    let reserved = |expected: usize| -> Option<Request<'a>> {
        (args.len() != expected).then(|| {
            Request::Bad(format!(
                "{}/{} is reserved and takes other arguments",
                String::from_utf8_lossy(name),
                args.len()
            ))
        })
    };
    match name {
        b"functions" => reserved(0).unwrap_or(Request::Functions),
        b"info" => reserved(0).unwrap_or(Request::Info),
        b"release" => reserved(1).unwrap_or_else(|| Request::Release(args[0])),
        b"share" => reserved(2).unwrap_or_else(|| Request::Share(args[0], args[1])),
        b"resource_info" => reserved(1).unwrap_or_else(|| Request::ResourceInfo(args[0])),
        b"reload" => reserved(1).unwrap_or_else(|| Request::Reload(args[0])),
        _ => Request::Native { name, args },
    }
}

/// A distributed spawn (SPAWN_REQUEST, as `spawn_request/5` and so `erpc` and `rpc` send
/// it): the request's id, who asks, the function to run and how the asker hears of the
/// process (monitor, link).
#[derive(Debug)]
pub struct Spawn<'a> {
    pub id: &'a [u8],
    pub from: &'a [u8],
    pub from_node: &'a [u8],
    pub module: &'a [u8],
    pub function: &'a [u8],
    pub args: Vec<&'a [u8]>,
    pub monitor: bool,
    pub link: bool,
}

/// The module whose functions `erpc` runs for its callers: `execute_call(Res, M, F, A)`
/// (the result is the process's exit reason, `{Res, return, Value}`) and
/// `execute_cast(M, F, A)`.
const ERPC: &[u8] = b"erpc";

/// What a spawned process is to do.
#[derive(Debug, PartialEq)]
pub enum SpawnWork<'a> {
    /// `erpc:execute_call`: run `function` and exit with `{result, return, Value}` (or the
    /// error as erpc's callers expect it).
    Call { result: &'a [u8], module: &'a [u8], function: &'a [u8], args: Vec<&'a [u8]> },
    /// `erpc:execute_cast`, or a function spawned as it is: run it, exit `normal`.
    Run { module: &'a [u8], function: &'a [u8], args: Vec<&'a [u8]> },
}

/// A SPAWN_REQUEST (`arity` 6) or SPAWN_REQUEST_TT (7), the reader just after its opcode,
/// its payload (the argument list) after it.
pub fn spawn<'a>(r: &mut Reader<'a, '_>, arity: usize, versioned: bool) -> Option<Spawn<'a>> {
    if arity != 6 && arity != 7 {
        return None;
    }
    let id = r.reference()?;
    let (from, from_node) = r.pid()?;
    r.term()?; // the group leader: the node has no I/O to give one
    if r.tuple()? != 3 {
        return None;
    }
    let (module, function) = (r.atom()?, r.atom()?);
    r.small_int()?;
    let options = r.list()?;
    if arity == 7 {
        r.term()?; // a trace token
    }
    r.version(versioned)?;
    let args = r.list()?;
    if !r.at_end() {
        return None;
    }
    let (mut monitor, mut link) = (false, false);
    let limits = etf::Limits::default();
    for option in options {
        let mut o = Reader::new(option, 0, &limits);
        // `monitor`, `{monitor, Options}`, `link`; the others concern the process itself.
        let name = if o.peek() == Some(SMALL_TUPLE_EXT) { o.tuple().and_then(|_| o.atom()) } else { o.atom() };
        match name {
            Some(b"monitor") => monitor = true,
            Some(b"link") => link = true,
            _ => {}
        }
    }
    Some(Spawn { id, from, from_node, module, function, args, monitor, link })
}

/// What `spawn` asks for: erpc's calls and casts unwrapped, any other function as it is.
pub fn spawn_work<'a>(spawn: &Spawn<'a>) -> SpawnWork<'a> {
    let limits = etf::Limits::default();
    let mfa = |m: &'a [u8], f: &'a [u8], a: &'a [u8]| -> Option<(&'a [u8], &'a [u8], Vec<&'a [u8]>)> {
        let atom = |bytes: &'a [u8]| {
            let mut r = Reader::new(bytes, 0, &limits);
            r.atom().filter(|_| r.at_end())
        };
        let mut args = Reader::new(a, 0, &limits);
        Some((atom(m)?, atom(f)?, args.list()?))
    };
    if spawn.module == ERPC {
        match (spawn.function, spawn.args.as_slice()) {
            (b"execute_call", [result, m, f, a]) if matches!(result.first(), Some(&NEWER_REFERENCE_EXT | &NEW_REFERENCE_EXT)) => {
                if let Some((module, function, args)) = mfa(m, f, a) {
                    return SpawnWork::Call { result, module, function, args };
                }
            }
            (b"execute_cast", [m, f, a]) => {
                if let Some((module, function, args)) = mfa(m, f, a) {
                    return SpawnWork::Run { module, function, args };
                }
            }
            _ => {}
        }
    }
    SpawnWork::Run { module: spawn.module, function: spawn.function, args: spawn.args.clone() }
}

fn bad_shape<'a>() -> Request<'a> {
    Request::Bad("expected an atom or a tuple starting with an atom".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reserved_name_is_read_as_reserved() {
        let limits = etf::Limits::default();
        for name in super::RESERVED {
            let mut bytes = Vec::new();
            etf::encode::put_atom(&mut bytes, name).unwrap();
            let mut r = super::Reader::new(&bytes, 0, &limits);
            let request = super::request(&mut r).unwrap();
            assert!(!matches!(request, super::Request::Native { .. }), "{name} read as a native");
        }
    }
}
