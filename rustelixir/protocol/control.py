"""Distribution control messages: one frozen dataclass per wire message, named as in the
"Distribution Protocol" chapter, and one table from opcode to class.

A control message is a tuple whose first element is the opcode; some are followed by a
second term, the payload (the message sent, or an exit reason for the PAYLOAD_ variants),
held here in the field `message` or `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

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


@dataclass(frozen=True)
class Control:
    OP: ClassVar[int] = -1
    # Names of the tuple elements after the opcode, in wire order; `_` is an unused slot.
    WIRE: ClassVar[tuple[str, ...]] = ()
    # The field holding the term that follows the control tuple, if this message has one.
    PAYLOAD: ClassVar[str | None] = None

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


@dataclass(frozen=True)
class Link(Control):
    OP = 1
    WIRE = ("from_pid", "to_pid")
    from_pid: Any
    to_pid: Any


@dataclass(frozen=True)
class Send(Control):
    OP = 2
    WIRE = ("_", "to_pid")
    PAYLOAD = "message"
    to_pid: Any
    message: Any


@dataclass(frozen=True)
class Exit(Control):
    OP = 3
    WIRE = ("from_pid", "to_pid", "reason")
    from_pid: Any
    to_pid: Any
    reason: Any


@dataclass(frozen=True)
class Unlink(Control):
    OP = 4
    WIRE = ("from_pid", "to_pid")
    from_pid: Any
    to_pid: Any


@dataclass(frozen=True)
class NodeLink(Control):
    OP = 5


@dataclass(frozen=True)
class RegSend(Control):
    OP = 6
    WIRE = ("from_pid", "_", "to_name")
    PAYLOAD = "message"
    from_pid: Any
    to_name: Any
    message: Any


@dataclass(frozen=True)
class GroupLeader(Control):
    OP = 7
    WIRE = ("from_pid", "to_pid")
    from_pid: Any
    to_pid: Any


@dataclass(frozen=True)
class Exit2(Control):
    OP = 8
    WIRE = ("from_pid", "to_pid", "reason")
    from_pid: Any
    to_pid: Any
    reason: Any


@dataclass(frozen=True)
class SendTT(Control):
    OP = 12
    WIRE = ("_", "to_pid", "trace_token")
    PAYLOAD = "message"
    to_pid: Any
    trace_token: Any
    message: Any


@dataclass(frozen=True)
class ExitTT(Control):
    OP = 13
    WIRE = ("from_pid", "to_pid", "trace_token", "reason")
    from_pid: Any
    to_pid: Any
    trace_token: Any
    reason: Any


@dataclass(frozen=True)
class RegSendTT(Control):
    OP = 16
    WIRE = ("from_pid", "_", "to_name", "trace_token")
    PAYLOAD = "message"
    from_pid: Any
    to_name: Any
    trace_token: Any
    message: Any


@dataclass(frozen=True)
class Exit2TT(Control):
    OP = 18
    WIRE = ("from_pid", "to_pid", "trace_token", "reason")
    from_pid: Any
    to_pid: Any
    trace_token: Any
    reason: Any


@dataclass(frozen=True)
class MonitorP(Control):
    OP = 19
    WIRE = ("from_pid", "to_proc", "ref")
    from_pid: Any
    to_proc: Any  # a pid, or an atom: a registered name
    ref: Any


@dataclass(frozen=True)
class DemonitorP(Control):
    OP = 20
    WIRE = ("from_pid", "to_proc", "ref")
    from_pid: Any
    to_proc: Any
    ref: Any


@dataclass(frozen=True)
class MonitorPExit(Control):
    OP = 21
    WIRE = ("from_proc", "to_pid", "ref", "reason")
    from_proc: Any
    to_pid: Any
    ref: Any
    reason: Any


@dataclass(frozen=True)
class SendSender(Control):
    OP = 22
    WIRE = ("from_pid", "to_pid")
    PAYLOAD = "message"
    from_pid: Any
    to_pid: Any
    message: Any


@dataclass(frozen=True)
class SendSenderTT(Control):
    OP = 23
    WIRE = ("from_pid", "to_pid", "trace_token")
    PAYLOAD = "message"
    from_pid: Any
    to_pid: Any
    trace_token: Any
    message: Any


@dataclass(frozen=True)
class PayloadExit(Control):
    OP = 24
    WIRE = ("from_pid", "to_pid")
    PAYLOAD = "reason"
    from_pid: Any
    to_pid: Any
    reason: Any


@dataclass(frozen=True)
class PayloadExitTT(Control):
    OP = 25
    WIRE = ("from_pid", "to_pid", "trace_token")
    PAYLOAD = "reason"
    from_pid: Any
    to_pid: Any
    trace_token: Any
    reason: Any


@dataclass(frozen=True)
class PayloadExit2(Control):
    OP = 26
    WIRE = ("from_pid", "to_pid")
    PAYLOAD = "reason"
    from_pid: Any
    to_pid: Any
    reason: Any


@dataclass(frozen=True)
class PayloadExit2TT(Control):
    OP = 27
    WIRE = ("from_pid", "to_pid", "trace_token")
    PAYLOAD = "reason"
    from_pid: Any
    to_pid: Any
    trace_token: Any
    reason: Any


@dataclass(frozen=True)
class PayloadMonitorPExit(Control):
    OP = 28
    WIRE = ("from_proc", "to_pid", "ref")
    PAYLOAD = "reason"
    from_proc: Any
    to_pid: Any
    ref: Any
    reason: Any


@dataclass(frozen=True)
class AliasSend(Control):
    OP = 33
    WIRE = ("from_pid", "alias")
    PAYLOAD = "message"
    from_pid: Any
    alias: Any
    message: Any


@dataclass(frozen=True)
class AliasSendTT(Control):
    OP = 34
    WIRE = ("from_pid", "alias", "trace_token")
    PAYLOAD = "message"
    from_pid: Any
    alias: Any
    trace_token: Any
    message: Any


@dataclass(frozen=True)
class UnlinkId(Control):
    OP = 35
    WIRE = ("id", "from_pid", "to_pid")
    id: int
    from_pid: Any
    to_pid: Any


@dataclass(frozen=True)
class UnlinkIdAck(Control):
    OP = 36
    WIRE = ("id", "from_pid", "to_pid")
    id: int
    from_pid: Any
    to_pid: Any


OPCODES: dict[int, type[Control]] = {
    cls.OP: cls
    for cls in (
        Link, Send, Exit, Unlink, NodeLink, RegSend, GroupLeader, Exit2, SendTT, ExitTT,
        RegSendTT, Exit2TT, MonitorP, DemonitorP, MonitorPExit, SendSender, SendSenderTT,
        PayloadExit, PayloadExitTT, PayloadExit2, PayloadExit2TT, PayloadMonitorPExit,
        AliasSend, AliasSendTT, UnlinkId, UnlinkIdAck,
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
