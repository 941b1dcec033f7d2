//! The distribution control messages' opcodes ("Distribution Protocol", section Protocol
//! between connected nodes), written once for the Rust side; Python's `protocol/control.py`
//! reads them from here (`rustelixir._native.OPCODES`).

pub const LINK: u8 = 1;
pub const SEND: u8 = 2;
pub const EXIT: u8 = 3;
pub const UNLINK: u8 = 4;
pub const NODE_LINK: u8 = 5;
pub const REG_SEND: u8 = 6;
pub const GROUP_LEADER: u8 = 7;
pub const EXIT2: u8 = 8;
pub const SEND_TT: u8 = 12;
pub const EXIT_TT: u8 = 13;
pub const REG_SEND_TT: u8 = 16;
pub const EXIT2_TT: u8 = 18;
pub const MONITOR_P: u8 = 19;
pub const DEMONITOR_P: u8 = 20;
pub const MONITOR_P_EXIT: u8 = 21;
pub const SEND_SENDER: u8 = 22;
pub const SEND_SENDER_TT: u8 = 23;
pub const PAYLOAD_EXIT: u8 = 24;
pub const PAYLOAD_EXIT_TT: u8 = 25;
pub const PAYLOAD_EXIT2: u8 = 26;
pub const PAYLOAD_EXIT2_TT: u8 = 27;
pub const PAYLOAD_MONITOR_P_EXIT: u8 = 28;
pub const ALIAS_SEND: u8 = 33;
pub const ALIAS_SEND_TT: u8 = 34;
pub const UNLINK_ID: u8 = 35;
pub const UNLINK_ID_ACK: u8 = 36;
pub const SPAWN_REQUEST: u8 = 29;
pub const SPAWN_REQUEST_TT: u8 = 30;
pub const SPAWN_REPLY: u8 = 31;
pub const SPAWN_REPLY_TT: u8 = 32;

/// Every opcode by its name in the protocol's documentation.
pub const OPCODES: &[(&str, u8)] = &[
    ("LINK", LINK),
    ("SEND", SEND),
    ("EXIT", EXIT),
    ("UNLINK", UNLINK),
    ("NODE_LINK", NODE_LINK),
    ("REG_SEND", REG_SEND),
    ("GROUP_LEADER", GROUP_LEADER),
    ("EXIT2", EXIT2),
    ("SEND_TT", SEND_TT),
    ("EXIT_TT", EXIT_TT),
    ("REG_SEND_TT", REG_SEND_TT),
    ("EXIT2_TT", EXIT2_TT),
    ("MONITOR_P", MONITOR_P),
    ("DEMONITOR_P", DEMONITOR_P),
    ("MONITOR_P_EXIT", MONITOR_P_EXIT),
    ("SEND_SENDER", SEND_SENDER),
    ("SEND_SENDER_TT", SEND_SENDER_TT),
    ("PAYLOAD_EXIT", PAYLOAD_EXIT),
    ("PAYLOAD_EXIT_TT", PAYLOAD_EXIT_TT),
    ("PAYLOAD_EXIT2", PAYLOAD_EXIT2),
    ("PAYLOAD_EXIT2_TT", PAYLOAD_EXIT2_TT),
    ("PAYLOAD_MONITOR_P_EXIT", PAYLOAD_MONITOR_P_EXIT),
    ("ALIAS_SEND", ALIAS_SEND),
    ("ALIAS_SEND_TT", ALIAS_SEND_TT),
    ("UNLINK_ID", UNLINK_ID),
    ("UNLINK_ID_ACK", UNLINK_ID_ACK),
    ("SPAWN_REQUEST", SPAWN_REQUEST),
    ("SPAWN_REQUEST_TT", SPAWN_REQUEST_TT),
    ("SPAWN_REPLY", SPAWN_REPLY),
    ("SPAWN_REPLY_TT", SPAWN_REPLY_TT),
];

/// `{MONITOR_P, FromPid, ToProc, Ref}`, each part already encoded (no version bytes).
pub fn monitor_p(from_pid: &[u8], to_proc: &[u8], reference: &[u8]) -> Vec<u8> {
    monitor_control(MONITOR_P, from_pid, to_proc, reference)
}

/// `{DEMONITOR_P, FromPid, ToProc, Ref}`, as `monitor_p`.
pub fn demonitor_p(from_pid: &[u8], to_proc: &[u8], reference: &[u8]) -> Vec<u8> {
    monitor_control(DEMONITOR_P, from_pid, to_proc, reference)
}

fn monitor_control(op: u8, from_pid: &[u8], to_proc: &[u8], reference: &[u8]) -> Vec<u8> {
    let mut control = Vec::with_capacity(4 + from_pid.len() + to_proc.len() + reference.len());
    control.extend_from_slice(&[etf::tags::SMALL_TUPLE_EXT, 4, etf::tags::SMALL_INTEGER_EXT, op]);
    control.extend_from_slice(from_pid);
    control.extend_from_slice(to_proc);
    control.extend_from_slice(reference);
    control
}

/// The bit of SPAWN_REPLY's `Flags` saying a link was set up.
pub const SPAWN_LINKED: u8 = 1;
/// The bit of SPAWN_REPLY's `Flags` saying a monitor was set up.
pub const SPAWN_MONITORED: u8 = 2;

/// `{SPAWN_REPLY, ReqId, To, Flags, Result}`, each part already encoded (no version bytes):
/// `result` is the new process's pid or an atom saying why there is none.
pub fn spawn_reply(request: &[u8], to: &[u8], flags: u8, result: &[u8]) -> Vec<u8> {
    let mut control = Vec::with_capacity(8 + request.len() + to.len() + result.len());
    control.extend_from_slice(&[etf::tags::SMALL_TUPLE_EXT, 5, etf::tags::SMALL_INTEGER_EXT, SPAWN_REPLY]);
    control.extend_from_slice(request);
    control.extend_from_slice(to);
    control.extend_from_slice(&[etf::tags::SMALL_INTEGER_EXT, flags]);
    control.extend_from_slice(result);
    control
}
