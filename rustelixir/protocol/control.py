"""Distribution control messages: one frozen dataclass per wire message, named as in the
"Distribution Protocol" chapter, and one table from opcode to class.

A control message is a tuple whose first element is the opcode; some are followed by a
second term, the payload (the message sent, or an exit reason for the PAYLOAD_ variants),
held here in the field `message` or `reason`. The opcodes are the Rust side's
(`rustelixir_dist::control`, where they are written once).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, dataclass_transform

from rustelixir._native import OPCODES as _WIRE_OPCODES
from rustelixir.errors import RemoteProtocolError
from rustelixir.terms import Atom, Pid, Reference

__all__ = [
    "Control",
    "Link",
    "Send",
    "Exit",
    "Unlink",
    "NodeLink",
    "RegSend",
    "GroupLeader",
    "Exit2",
    "SendTT",
    "ExitTT",
    "RegSendTT",
    "Exit2TT",
    "MonitorP",
    "DemonitorP",
    "MonitorPExit",
    "SendSender",
    "SendSenderTT",
    "PayloadExit",
    "PayloadExitTT",
    "PayloadExit2",
    "PayloadExit2TT",
    "PayloadMonitorPExit",
    "AliasSend",
    "AliasSendTT",
    "UnlinkId",
    "UnlinkIdAck",
    "SpawnRequest",
    "SpawnRequestTT",
    "SpawnReply",
    "SpawnReplyTT",
    "from_terms",
    "OPCODES",
]

_UNUSED = Atom("")

# What each field must be; a peer sending anything else breaks the protocol.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "from_pid": (Pid,),
    "to_pid": (Pid,),
    "to_name": (Atom,),
    "to_proc": (Pid, Atom),
    "from_proc": (Pid, Atom),
    "ref": (Reference,),
    "alias": (Reference,),
    "id": (int,),
}


def _describe(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _glimpse(term: Any) -> str:
    """A term from the wire, for an error message: its repr when that is short, else its
    kind and size. A repr is as large as the term (up to max_message_size, and more), and
    an integer of more than 4,300 digits has none at all (ValueError)."""
    if term is None or isinstance(term, (bool, float, Atom, Pid, Reference)):
        return repr(term)[:100]
    if isinstance(term, int):
        return repr(term) if term.bit_length() <= 64 else f"an integer of {term.bit_length()} bits"
    if isinstance(term, (bytes, str)) and len(term) <= 64:
        return repr(term)
    if isinstance(term, (bytes, str, tuple, list, dict)):
        return f"a {type(term).__name__} of length {len(term)}"
    return f"a {type(term).__name__}"


@dataclass_transform(frozen_default=True)
@dataclass(frozen=True)
class Control:
    """A control message. Each kind is a subclass that names its opcode, wire layout and
    payload field in its class line and lists its fields; it is made a frozen dataclass."""

    OP: ClassVar[int] = -1
    # Names of the tuple elements after the opcode, in wire order; `_` is an unused slot.
    WIRE: ClassVar[tuple[str, ...]] = ()
    # The field holding the term that follows the control tuple, if this message has one.
    PAYLOAD: ClassVar[str | None] = None

    def __init_subclass__(cls, *, op: int | None = None, wire: tuple[str, ...] = (), payload: str | None = None) -> None:
        """`op` names a message; without it the class is a set of fields that messages share."""
        super().__init_subclass__()
        if op is not None:
            cls.OP, cls.WIRE, cls.PAYLOAD = op, wire, payload
        dataclass(frozen=True)(cls)

    def to_terms(self) -> tuple[tuple[Any, ...], Any]:
        """(control tuple, payload or None)."""
        items: list[Any] = [self.OP]
        for name in self.WIRE:
            items.append(_UNUSED if name == "_" else getattr(self, name))
        payload = getattr(self, self.PAYLOAD) if self.PAYLOAD else None
        return tuple(items), payload

    @classmethod
    def _from(cls, control: tuple[Any, ...], payload: Any) -> Control:
        if len(control) != len(cls.WIRE) + 1:
            raise RemoteProtocolError(
                f"{cls.__name__} control message has {len(control)} elements (expected {len(cls.WIRE) + 1})"
            )
        has_payload = payload is not _NO_PAYLOAD
        if has_payload != (cls.PAYLOAD is not None):
            raise RemoteProtocolError(
                f"{cls.__name__} control message {'with' if has_payload else 'without'} a payload"
            )
        kwargs = {name: value for name, value in zip(cls.WIRE, control[1:]) if name != "_"}
        for name, value in kwargs.items():
            allowed = _FIELD_TYPES.get(name)
            if allowed is not None and not isinstance(value, allowed):
                raise RemoteProtocolError(
                    f"{cls.__name__} control message: {name} is {type(value).__name__}, not {_describe(allowed)}"
                )
        if cls.PAYLOAD:
            kwargs[cls.PAYLOAD] = payload
        return cls(**kwargs)


# Fields that several messages have, in the same order.


class _Between(Control):
    from_pid: Any
    to_pid: Any


class _Exit(_Between):
    reason: Any


class _ExitTT(_Between):
    trace_token: Any
    reason: Any


class _Monitor(Control):
    from_pid: Any
    to_proc: Any  # a pid, or an atom: a registered name
    ref: Any


class _MonitorExit(Control):
    from_proc: Any
    to_pid: Any
    ref: Any
    reason: Any


class _UnlinkIds(Control):
    id: int
    from_pid: Any
    to_pid: Any


class Link(_Between, op=_WIRE_OPCODES["LINK"], wire=("from_pid", "to_pid")):
    pass


class Send(Control, op=_WIRE_OPCODES["SEND"], wire=("_", "to_pid"), payload="message"):
    to_pid: Any
    message: Any


class Exit(_Exit, op=_WIRE_OPCODES["EXIT"], wire=("from_pid", "to_pid", "reason")):
    pass


class Unlink(_Between, op=_WIRE_OPCODES["UNLINK"], wire=("from_pid", "to_pid")):
    pass


class NodeLink(Control, op=_WIRE_OPCODES["NODE_LINK"]):
    pass


class RegSend(Control, op=_WIRE_OPCODES["REG_SEND"], wire=("from_pid", "_", "to_name"), payload="message"):
    from_pid: Any
    to_name: Any
    message: Any


class GroupLeader(_Between, op=_WIRE_OPCODES["GROUP_LEADER"], wire=("from_pid", "to_pid")):
    pass


class Exit2(_Exit, op=_WIRE_OPCODES["EXIT2"], wire=("from_pid", "to_pid", "reason")):
    pass


class SendTT(Control, op=_WIRE_OPCODES["SEND_TT"], wire=("_", "to_pid", "trace_token"), payload="message"):
    to_pid: Any
    trace_token: Any
    message: Any


class ExitTT(_ExitTT, op=_WIRE_OPCODES["EXIT_TT"], wire=("from_pid", "to_pid", "trace_token", "reason")):
    pass


class RegSendTT(Control, op=_WIRE_OPCODES["REG_SEND_TT"], wire=("from_pid", "_", "to_name", "trace_token"), payload="message"):
    from_pid: Any
    to_name: Any
    trace_token: Any
    message: Any


class Exit2TT(_ExitTT, op=_WIRE_OPCODES["EXIT2_TT"], wire=("from_pid", "to_pid", "trace_token", "reason")):
    pass


class MonitorP(_Monitor, op=_WIRE_OPCODES["MONITOR_P"], wire=("from_pid", "to_proc", "ref")):
    pass


class DemonitorP(_Monitor, op=_WIRE_OPCODES["DEMONITOR_P"], wire=("from_pid", "to_proc", "ref")):
    pass


class MonitorPExit(_MonitorExit, op=_WIRE_OPCODES["MONITOR_P_EXIT"], wire=("from_proc", "to_pid", "ref", "reason")):
    pass


class SendSender(_Between, op=_WIRE_OPCODES["SEND_SENDER"], wire=("from_pid", "to_pid"), payload="message"):
    message: Any


class SendSenderTT(_Between, op=_WIRE_OPCODES["SEND_SENDER_TT"], wire=("from_pid", "to_pid", "trace_token"), payload="message"):
    trace_token: Any
    message: Any


class PayloadExit(_Exit, op=_WIRE_OPCODES["PAYLOAD_EXIT"], wire=("from_pid", "to_pid"), payload="reason"):
    pass


class PayloadExitTT(_ExitTT, op=_WIRE_OPCODES["PAYLOAD_EXIT_TT"], wire=("from_pid", "to_pid", "trace_token"), payload="reason"):
    pass


class PayloadExit2(_Exit, op=_WIRE_OPCODES["PAYLOAD_EXIT2"], wire=("from_pid", "to_pid"), payload="reason"):
    pass


class PayloadExit2TT(_ExitTT, op=_WIRE_OPCODES["PAYLOAD_EXIT2_TT"], wire=("from_pid", "to_pid", "trace_token"), payload="reason"):
    pass


class PayloadMonitorPExit(_MonitorExit, op=_WIRE_OPCODES["PAYLOAD_MONITOR_P_EXIT"], wire=("from_proc", "to_pid", "ref"), payload="reason"):
    pass


class AliasSend(Control, op=_WIRE_OPCODES["ALIAS_SEND"], wire=("from_pid", "alias"), payload="message"):
    from_pid: Any
    alias: Any
    message: Any


class AliasSendTT(Control, op=_WIRE_OPCODES["ALIAS_SEND_TT"], wire=("from_pid", "alias", "trace_token"), payload="message"):
    from_pid: Any
    alias: Any
    trace_token: Any
    message: Any


class UnlinkId(_UnlinkIds, op=_WIRE_OPCODES["UNLINK_ID"], wire=("id", "from_pid", "to_pid")):
    pass


class UnlinkIdAck(_UnlinkIds, op=_WIRE_OPCODES["UNLINK_ID_ACK"], wire=("id", "from_pid", "to_pid")):
    pass


class _SpawnRequest(Control):
    ref: Any
    from_pid: Any
    group_leader: Any
    mfa: Any  # {Module, Function, Arity}
    options: Any
    args: Any


class SpawnRequest(_SpawnRequest, op=_WIRE_OPCODES["SPAWN_REQUEST"], wire=("ref", "from_pid", "group_leader", "mfa", "options"), payload="args"):
    pass


class SpawnRequestTT(_SpawnRequest, op=_WIRE_OPCODES["SPAWN_REQUEST_TT"], wire=("ref", "from_pid", "group_leader", "mfa", "options", "trace_token"), payload="args"):
    trace_token: Any


class _SpawnReply(Control):
    ref: Any
    to_pid: Any
    flags: int
    result: Any  # the new process's pid, or an atom: why there is none


class SpawnReply(_SpawnReply, op=_WIRE_OPCODES["SPAWN_REPLY"], wire=("ref", "to_pid", "flags", "result")):
    pass


class SpawnReplyTT(_SpawnReply, op=_WIRE_OPCODES["SPAWN_REPLY_TT"], wire=("ref", "to_pid", "flags", "result", "trace_token")):
    trace_token: Any


OPCODES: dict[int, type[Control]] = {
    cls.OP: cls
    for cls in (
        Link, Send, Exit, Unlink, NodeLink, RegSend, GroupLeader, Exit2, SendTT, ExitTT,
        RegSendTT, Exit2TT, MonitorP, DemonitorP, MonitorPExit, SendSender, SendSenderTT,
        PayloadExit, PayloadExitTT, PayloadExit2, PayloadExit2TT, PayloadMonitorPExit,
        AliasSend, AliasSendTT, UnlinkId, UnlinkIdAck, SpawnRequest, SpawnRequestTT, SpawnReply,
        SpawnReplyTT,
    )  # fmt: skip
}

_NO_PAYLOAD: Any = object()


def from_terms(control: Any, payload: Any = _NO_PAYLOAD) -> Control:
    """The dataclass for a decoded control tuple (and its payload, when it has one). A
    control message that is not a tuple with a known opcode is a RemoteProtocolError."""
    # bool is an int subclass: without the second test the atoms true/false would pass as
    # opcodes 1 and 0 (`{true, From, To}` read as LINK).
    if not isinstance(control, tuple) or not control or not isinstance(control[0], int) or isinstance(control[0], bool):
        raise RemoteProtocolError(f"control message is not a tuple with an opcode: {_glimpse(control)}")
    cls = OPCODES.get(control[0])
    if cls is None:
        raise RemoteProtocolError(f"unknown or unsupported control message opcode {control[0]}")
    return cls._from(control, payload)


def _check_fields() -> None:
    for cls in OPCODES.values():
        names = {f.name for f in fields(cls)}
        wire = {n for n in cls.WIRE if n != "_"} | ({cls.PAYLOAD} if cls.PAYLOAD else set())
        assert names == wire, cls


_check_fields()
