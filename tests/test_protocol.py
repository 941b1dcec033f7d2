"""Sans-IO tests of the distribution protocol objects: no sockets, no BEAM.

In the manner of h11 and h2: two protocol objects back to back with the bytes shuttled between
them, tables of message <-> exact bytes built from the layouts in the "Distribution Protocol"
chapter of the ERTS documentation (and `dist_util.erl`), tables of malformed input, and
Hypothesis splitting the byte streams at random points and walking random message sequences.
The same protocol against real `erl` nodes is tested in test_node.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rustelixir import Atom, Pid, Reference
from rustelixir._native import encode
from rustelixir.errors import AuthenticationError, HandshakeError, LocalProtocolError, RemoteProtocolError
from rustelixir.protocol import control as control_module
from rustelixir.protocol.connection import DistConnection, TooLarge, encoded
from rustelixir.protocol.control import OPCODES, Control, from_terms
from rustelixir.protocol.flags import MANDATORY_25, OUR_FLAGS, DFlag
from rustelixir.protocol.handshake import (
    Handshake,
    HandshakeComplete,
    HandshakeEvent,
    NameReceived,
    Role,
    StatusReceived,
    digest,
)
from links import TICK, LinkPair, frame
from strategies import atoms, hashable_terms, pids, references, terms

# --- Handshake fixtures -------------------------------------------------------------------

INITIATOR = "py@127.0.0.1"
ACCEPTOR = "beam@127.0.0.1"
COOKIE = "secret"
INITIATOR_CREATION = 0x11223344
ACCEPTOR_CREATION = 0x55667788
INITIATOR_CHALLENGE = 0x01020304  # 16909060
ACCEPTOR_CHALLENGE = 0xDEADBEEF  # 3735928559
# MD5("secret3735928559") and MD5("secret16909060"), computed with md5sum(1), not with the code
# under test: what the initiator must answer the acceptor's challenge with, and vice versa.
REPLY_DIGEST = bytes.fromhex("c3939b31d7a913d82e2ace09247c7b41")
ACK_DIGEST = hashlib.md5(b"secret16909060").digest()

OPTIONAL_FLAGS = [
    DFlag.DIST_MONITOR,
    DFlag.DIST_MONITOR_NAME,
    DFlag.SMALL_ATOM_TAGS,
    DFlag.SEND_SENDER,
    DFlag.BIG_SEQTRACE_LABELS,
    DFlag.EXIT_PAYLOAD,
    DFlag.FRAGMENTS,
    DFlag.UNLINK_ID,
    DFlag.V4_NC,
    DFlag.ALIAS,
    DFlag.SPAWN,
    DFlag.PUBLISHED,
]


def msg(body: bytes) -> bytes:
    """A handshake message: 2-byte big-endian length, then the body."""
    return len(body).to_bytes(2, "big") + body


def name_msg(name: str = INITIATOR, flags: int = OUR_FLAGS, creation: int = INITIATOR_CREATION) -> bytes:
    """'N' flags:64 creation:32 nlen:16 name (the initiator's opening, OTP 23+)."""
    raw = name.encode()
    return msg(b"N" + flags.to_bytes(8, "big") + creation.to_bytes(4, "big") + len(raw).to_bytes(2, "big") + raw)


def old_name_msg(name: str = INITIATOR, flags: int = OUR_FLAGS & 0xFFFFFFFF, version: int = 5) -> bytes:
    """'n' version:16 flags:32 name (the opening before OTP 23)."""
    return msg(b"n" + version.to_bytes(2, "big") + flags.to_bytes(4, "big") + name.encode())


def complement_msg(flags_high: int = OUR_FLAGS >> 32, creation: int = INITIATOR_CREATION) -> bytes:
    """'c' flags_high:32 creation:32."""
    return msg(b"c" + flags_high.to_bytes(4, "big") + creation.to_bytes(4, "big"))


def challenge_msg(
    name: str = ACCEPTOR,
    flags: int = OUR_FLAGS,
    challenge: int = ACCEPTOR_CHALLENGE,
    creation: int = ACCEPTOR_CREATION,
) -> bytes:
    """'N' flags:64 challenge:32 creation:32 nlen:16 name (the acceptor's challenge)."""
    raw = name.encode()
    return msg(
        b"N"
        + flags.to_bytes(8, "big")
        + challenge.to_bytes(4, "big")
        + creation.to_bytes(4, "big")
        + len(raw).to_bytes(2, "big")
        + raw
    )


def reply_msg(challenge: int = INITIATOR_CHALLENGE, answer: bytes = REPLY_DIGEST) -> bytes:
    """'r' challenge:32 digest:16 bytes."""
    return msg(b"r" + challenge.to_bytes(4, "big") + answer)


def ack_msg(answer: bytes = ACK_DIGEST) -> bytes:
    return msg(b"a" + answer)


NODE_LINK_FRAME = bytes.fromhex("00000006" "70" "83680161" "05")  # a whole pass-through NODE_LINK


def initiator(**kw: Any) -> Handshake:
    args: dict[str, Any] = dict(
        name=INITIATOR,
        cookie=COOKIE,
        creation=INITIATOR_CREATION,
        peer_name=ACCEPTOR,
        challenge=INITIATOR_CHALLENGE,
    )
    args.update(kw)
    return Handshake(Role.INITIATOR, **args)


def acceptor(**kw: Any) -> Handshake:
    args: dict[str, Any] = dict(name=ACCEPTOR, cookie=COOKIE, creation=ACCEPTOR_CREATION, challenge=ACCEPTOR_CHALLENGE)
    args.update(kw)
    return Handshake(Role.ACCEPTOR, **args)


def whole(data: bytes) -> list[bytes]:
    return [data]


@dataclass
class PairRun:
    initiator_events: list[HandshakeEvent] = field(default_factory=list)
    acceptor_events: list[HandshakeEvent] = field(default_factory=list)
    # Every data_to_send() of either side, in order: ("initiator" | "acceptor", bytes).
    wire: list[tuple[str, bytes]] = field(default_factory=list)
    # Bytes that reached a side after its handshake had ended (what the connection would get).
    later: dict[str, bytes] = field(default_factory=lambda: {"initiator": b"", "acceptor": b""})

    def complete(self, side: str) -> HandshakeComplete:
        events = self.initiator_events if side == "initiator" else self.acceptor_events
        done = [e for e in events if isinstance(e, HandshakeComplete)]
        assert len(done) == 1, events
        return done[0]

    def events(self, side: str) -> list[HandshakeEvent]:
        """The side's events, the bytes that came after the handshake added to the leftover
        (how they were cut does not matter to the connection that takes them)."""
        events = self.initiator_events if side == "initiator" else self.acceptor_events
        return [
            replace(e, leftover=e.leftover + self.later[side]) if isinstance(e, HandshakeComplete) else e
            for e in events
        ]


def run_pair(
    init: Handshake,
    acc: Handshake,
    *,
    status: str = "ok",
    go_on: bool = True,
    split: Callable[[bytes], list[bytes]] = whole,
    after_ack: bytes = b"",
) -> PairRun:
    """Shuttles bytes between the two until neither has anything to say. The acceptor answers
    its NameReceived with `status`, the initiator an 'alive' with `go_on`; `after_ack` is glued
    to the acceptor's last write (the peer's first frames arriving with the ack); `split` cuts
    each write into the pieces the other side receives."""
    run = PairRun()

    def deliver(data: bytes, to: Handshake, side: str) -> list[HandshakeEvent]:
        events: list[HandshakeEvent] = []
        for piece in split(data):
            if to.state in ("done", "closed"):
                run.later[side] += piece
            else:
                events += to.receive_data(piece)
        return events

    while True:
        moved = False
        out = init.data_to_send()
        if out:
            moved = True
            run.wire.append(("initiator", out))
            events = deliver(out, acc, "acceptor")
            run.acceptor_events += events
            if any(isinstance(e, NameReceived) for e in events):
                acc.accept(status)
        out = acc.data_to_send()
        if out:
            moved = True
            if acc.state == "done":
                out += after_ack
            run.wire.append(("acceptor", out))
            events = deliver(out, init, "initiator")
            run.initiator_events += events
            if StatusReceived("alive") in events:
                init.answer_alive(go_on)
        if not moved:
            return run


# --- 1. Back to back ----------------------------------------------------------------------


def test_pair_completes_with_names_creations_and_common_flags() -> None:
    ours = OUR_FLAGS
    theirs = (OUR_FLAGS & ~DFlag.FRAGMENTS & ~DFlag.ALIAS) | DFlag.PUBLISHED | DFlag.DIST_HDR_ATOM_CACHE
    run = run_pair(initiator(flags=ours), acceptor(flags=theirs))
    a, b = run.complete("initiator"), run.complete("acceptor")
    assert (a.peer_name, a.peer_creation) == (ACCEPTOR, ACCEPTOR_CREATION)
    assert (b.peer_name, b.peer_creation) == (INITIATOR, INITIATOR_CREATION)
    assert a.peer_flags == theirs and b.peer_flags == ours
    assert a.flags == b.flags == ours & theirs
    assert not a.flags & DFlag.FRAGMENTS and not a.flags & DFlag.ALIAS and not a.flags & DFlag.DIST_HDR_ATOM_CACHE
    assert a.leftover == b.leftover == b""
    assert run.acceptor_events[0] == NameReceived(INITIATOR, DFlag(ours), INITIATOR_CREATION)
    assert run.initiator_events[0] == StatusReceived("ok")


def test_mandatory_digest_flag_stands_for_the_mandatory_flags() -> None:
    # OTP 26+ may send MANDATORY_25_DIGEST instead of the flags it stands for.
    theirs = DFlag.MANDATORY_25_DIGEST | DFlag.FRAGMENTS
    run = run_pair(initiator(), acceptor(flags=theirs))
    a = run.complete("initiator")
    assert a.peer_flags & MANDATORY_25 == MANDATORY_25
    assert a.flags == OUR_FLAGS & (MANDATORY_25 | theirs)


def test_frame_glued_to_the_ack_is_handed_over_as_leftover() -> None:
    first_frame = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x06p\x83h\x01a\x05"  # a tick, then NODE_LINK
    run = run_pair(initiator(), acceptor(), after_ack=first_frame)
    assert run.complete("initiator").leftover == first_frame
    with LinkPair(peer_name=ACCEPTOR, leftover=first_frame) as pair:
        assert pair.receive() == [control_module.NodeLink()] and pair.ticks == 1


def test_bytes_after_the_reply_are_the_acceptors_leftover() -> None:
    acc = acceptor()
    acc.receive_data(name_msg())
    acc.accept("ok")
    (done,) = acc.receive_data(reply_msg() + b"\x00\x00\x00\x00\x00")
    assert isinstance(done, HandshakeComplete) and done.leftover == b"\x00\x00\x00\x00\x00"


# --- 2. Exact bytes of every message we send ----------------------------------------------

EXPECTED_WIRE = [
    # (who, what, exact bytes)
    ("initiator", "name 'N'", name_msg()),
    ("acceptor", "status 'sok' + challenge 'N'", msg(b"sok") + challenge_msg()),
    ("initiator", "reply 'r'", reply_msg()),
    ("acceptor", "ack 'a'", ack_msg()),
]


@pytest.mark.parametrize("index", range(len(EXPECTED_WIRE)), ids=[w[1] for w in EXPECTED_WIRE])
def test_handshake_message_bytes(index: int) -> None:
    run = run_pair(initiator(), acceptor())
    who, _, expected = EXPECTED_WIRE[index]
    assert run.wire[index] == (who, expected)
    assert len(run.wire) == len(EXPECTED_WIRE)


def test_handshake_bytes_spelled_out() -> None:
    # The same, written out byte by byte once, so a mistake shared by the helpers above and
    # the code under test would still show.
    hs = initiator(flags=0x0000_0000_0100_0004, creation=7, name="a@b")
    assert hs.data_to_send() == bytes.fromhex("0012" "4e" "0000000001000004" "00000007" "0003") + b"a@b"
    acc = acceptor(name="b@c", creation=0x0102, challenge=0xA0B0C0D0, flags=OUR_FLAGS)
    acc.receive_data(name_msg())
    acc.accept("ok_simultaneous")
    assert acc.data_to_send() == (
        bytes.fromhex("0010") + b"sok_simultaneous"
        + bytes.fromhex("0016" "4e") + int(OUR_FLAGS).to_bytes(8, "big")
        + bytes.fromhex("a0b0c0d0" "00000102" "0003") + b"b@c"
    )  # fmt: skip
    assert reply_msg() == bytes.fromhex("0015" "72" "01020304" "c3939b31d7a913d82e2ace09247c7b41")


def test_digest_is_md5_of_cookie_and_decimal_challenge() -> None:
    assert digest(ACCEPTOR_CHALLENGE, COOKIE) == REPLY_DIGEST
    assert digest(INITIATOR_CHALLENGE, COOKIE) == hashlib.md5(b"secret" + b"16909060").digest()
    assert digest(0, "") == hashlib.md5(b"0").digest()


def test_challenge_must_fit_in_32_bits() -> None:
    with pytest.raises(LocalProtocolError):
        initiator(challenge=1 << 32)
    with pytest.raises(LocalProtocolError):
        acceptor(challenge=-1)


def test_random_challenges_differ() -> None:
    challenges = set()
    for _ in range(4):
        acc = acceptor(challenge=None)
        acc.receive_data(name_msg())
        acc.accept()
        challenges.add(acc.data_to_send()[-(2 + len(ACCEPTOR) + 4 + 4) : -(2 + len(ACCEPTOR) + 4)])
    assert len(challenges) > 1


# --- 3. Wrong cookie ----------------------------------------------------------------------


def test_wrong_cookie_acceptor_refuses_the_reply() -> None:
    init, acc = initiator(cookie="other"), acceptor()
    with pytest.raises(AuthenticationError):
        run_pair(init, acc)
    assert acc.state == "error" and init.state == "await_ack"
    assert acc.data_to_send() == b""  # no ack went out
    with pytest.raises(LocalProtocolError):
        acc.receive_data(b"")


def test_wrong_cookie_reply_digest_checked_by_hand() -> None:
    acc = acceptor()
    acc.receive_data(name_msg())
    acc.accept()
    acc.data_to_send()
    wrong = hashlib.md5(b"other" + str(ACCEPTOR_CHALLENGE).encode()).digest()
    # A frame glued to the bad reply is never handed on: no HandshakeComplete, no leftover.
    with pytest.raises(AuthenticationError):
        acc.receive_data(reply_msg(answer=wrong) + NODE_LINK_FRAME)
    assert acc.state == "error" and acc.data_to_send() == b""


def test_bad_ack_refused_by_initiator() -> None:
    init = initiator()
    init.receive_data(msg(b"sok") + challenge_msg())
    assert init.data_to_send()[-len(reply_msg()) :] == reply_msg()
    bad = hashlib.md5(b"other" + str(INITIATOR_CHALLENGE).encode()).digest()
    with pytest.raises(AuthenticationError):
        init.receive_data(ack_msg(bad))
    assert init.state == "error"
    with pytest.raises(LocalProtocolError):
        init.receive_data(ack_msg())


def test_ack_answering_another_challenge_is_refused() -> None:
    # The acceptor's digest must answer *our* challenge, not echo the one it sent.
    init = initiator()
    init.receive_data(msg(b"sok") + challenge_msg())
    with pytest.raises(AuthenticationError):
        init.receive_data(ack_msg(REPLY_DIGEST))


# --- 4. The pre-OTP-23 opening --------------------------------------------------------------


def test_old_name_with_handshake_23_and_complement_completes() -> None:
    acc = acceptor()
    (named,) = acc.receive_data(old_name_msg())
    assert named == NameReceived(INITIATOR, DFlag(OUR_FLAGS & 0xFFFFFFFF), 0)  # creation comes later
    acc.accept("ok")
    # Answered with the new challenge, as to a new-style opening.
    assert acc.data_to_send() == msg(b"sok") + challenge_msg()
    assert acc.state == "await_complement"
    assert acc.receive_data(complement_msg(creation=0x0A0B0C0D)) == []
    (done,) = acc.receive_data(reply_msg())
    assert acc.data_to_send() == ack_msg()
    assert isinstance(done, HandshakeComplete)
    assert done.peer_creation == 0x0A0B0C0D
    assert done.peer_flags == OUR_FLAGS  # high half from the complement
    assert done.flags & DFlag.ALIAS


def test_old_name_without_handshake_23_is_refused() -> None:
    acc = acceptor()
    with pytest.raises(HandshakeError, match="version 6"):
        acc.receive_data(old_name_msg(flags=OUR_FLAGS & 0xFFFFFFFF & ~DFlag.HANDSHAKE_23))
    assert acc.state == "error" and acc.data_to_send() == b""


def test_old_name_missing_mandatory_flags_refused_at_the_complement() -> None:
    acc = acceptor()
    acc.receive_data(old_name_msg(flags=DFlag.HANDSHAKE_23 | DFlag.UTF8_ATOMS))
    acc.accept()
    with pytest.raises(HandshakeError, match="mandatory"):
        acc.receive_data(complement_msg())
    assert acc.state == "error"


@pytest.mark.parametrize("missing", [DFlag.BIG_CREATION, DFlag.UTF8_ATOMS, DFlag.HANDSHAKE_23, DFlag.MAP_TAG])
def test_missing_mandatory_flags_refused(missing: DFlag) -> None:
    flags = OUR_FLAGS & ~DFlag.MANDATORY_25_DIGEST & ~missing
    acc = acceptor()
    with pytest.raises(HandshakeError, match="mandatory"):
        acc.receive_data(name_msg(flags=flags))
    init = initiator()
    with pytest.raises(HandshakeError, match="mandatory"):
        init.receive_data(msg(b"sok") + challenge_msg(flags=flags))
    assert init.data_to_send() == name_msg()  # no reply went out


def test_complement_in_a_new_style_handshake_is_refused() -> None:
    acc = acceptor()
    acc.receive_data(name_msg())
    acc.accept()
    with pytest.raises(HandshakeError):
        acc.receive_data(complement_msg())


# --- 5. Statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["nok", "not_allowed"])
def test_refusing_status_ends_both_sides(status: str) -> None:
    init, acc = initiator(), acceptor()
    run = run_pair(init, acc, status=status)
    assert run.wire[1] == ("acceptor", msg(b"s" + status.encode()))
    assert run.initiator_events == [StatusReceived(status)]
    assert init.state == acc.state == "closed"
    for hs in (init, acc):
        with pytest.raises(LocalProtocolError):
            hs.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        init.answer_alive(True)


def test_simultaneous_ok_continues() -> None:
    run = run_pair(initiator(), acceptor(), status="ok_simultaneous")
    assert run.initiator_events[0] == StatusReceived("ok_simultaneous")
    assert run.complete("initiator").peer_name == ACCEPTOR and run.complete("acceptor").peer_name == INITIATOR


def test_alive_answered_true_continues() -> None:
    init, acc = initiator(), acceptor()
    run = run_pair(init, acc, status="alive", go_on=True)
    assert [w for w in run.wire[1:3]] == [("acceptor", msg(b"salive")), ("initiator", msg(b"strue"))]
    assert run.complete("initiator") and run.complete("acceptor")


def test_alive_answered_false_closes_both() -> None:
    init, acc = initiator(), acceptor()
    run = run_pair(init, acc, status="alive", go_on=False)
    assert run.wire[2] == ("initiator", msg(b"sfalse"))
    assert init.state == acc.state == "closed"
    assert not any(isinstance(e, HandshakeComplete) for e in run.initiator_events + run.acceptor_events)


def test_alive_answer_that_is_neither_true_nor_false() -> None:
    acc = acceptor()
    acc.receive_data(name_msg())
    acc.accept("alive")
    with pytest.raises(HandshakeError):
        acc.receive_data(msg(b"smaybe"))


def test_decisions_out_of_turn_are_local_errors() -> None:
    init, acc = initiator(), acceptor()
    with pytest.raises(LocalProtocolError):
        init.accept("ok")  # the initiator decides nothing of the kind
    with pytest.raises(LocalProtocolError):
        acc.accept("ok")  # no name yet
    with pytest.raises(LocalProtocolError):
        init.answer_alive(True)  # nobody asked
    acc.receive_data(name_msg())
    with pytest.raises(LocalProtocolError):
        acc.accept("maybe")
    acc.accept("ok")
    with pytest.raises(LocalProtocolError):
        acc.accept("ok")  # decided already
    with pytest.raises(LocalProtocolError):
        Handshake(Role.INITIATOR, name=INITIATOR, cookie=COOKIE, creation=1)  # no peer_name
    with pytest.raises(HandshakeError):
        Handshake(Role.ACCEPTOR, name="no-host", cookie=COOKIE, creation=1)


# --- 6. Any split of the bytes gives the same result ----------------------------------------


def splitter(data: st.DataObject) -> Callable[[bytes], list[bytes]]:
    def split(chunk: bytes) -> list[bytes]:
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(chunk) - 1)), max_size=len(chunk))))
        bounds = [0, *[c for c in cuts if c < len(chunk)], len(chunk)]
        return [chunk[i:j] for i, j in zip(bounds, bounds[1:])]

    return split


def one_at_a_time(chunk: bytes) -> list[bytes]:
    return [chunk[i : i + 1] for i in range(len(chunk))]


@pytest.mark.parametrize("status", ["ok", "alive"])
def test_handshake_fed_one_byte_at_a_time(status: str) -> None:
    glued = b"\x00\x00\x00\x00"
    at_once = run_pair(initiator(), acceptor(), status=status, after_ack=glued)
    bytewise = run_pair(initiator(), acceptor(), status=status, after_ack=glued, split=one_at_a_time)
    assert bytewise.wire == at_once.wire
    for side in ("initiator", "acceptor"):
        assert bytewise.events(side) == at_once.events(side)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    status=st.sampled_from(["ok", "ok_simultaneous", "alive", "nok", "not_allowed"]),
    theirs=st.sets(st.sampled_from(OPTIONAL_FLAGS)),
    glued=st.binary(max_size=12),
)
def test_handshake_any_split_same_result(
    data: st.DataObject, status: str, theirs: set[DFlag], glued: bytes
) -> None:
    their_flags = MANDATORY_25
    for f in theirs:
        their_flags |= f
    at_once = run_pair(initiator(), acceptor(flags=their_flags), status=status, after_ack=glued)
    split = run_pair(initiator(), acceptor(flags=their_flags), status=status, after_ack=glued, split=splitter(data))
    assert split.wire == at_once.wire
    for side in ("initiator", "acceptor"):
        assert split.events(side) == at_once.events(side)
    if status in ("ok", "ok_simultaneous", "alive"):
        assert split.complete("initiator").flags == split.complete("acceptor").flags == OUR_FLAGS & their_flags
        assert at_once.complete("initiator").leftover == glued


# --- 7. Malformed input ---------------------------------------------------------------------


def fresh_acceptor() -> Handshake:
    return acceptor()


def acceptor_awaiting_reply() -> Handshake:
    acc = acceptor()
    acc.receive_data(name_msg())
    acc.accept()
    return acc


def old_acceptor_awaiting_complement() -> Handshake:
    acc = acceptor()
    acc.receive_data(old_name_msg())
    acc.accept()
    return acc


def fresh_initiator() -> Handshake:
    return initiator()


def initiator_awaiting_challenge() -> Handshake:
    init = initiator()
    init.receive_data(msg(b"sok"))
    return init


def initiator_awaiting_ack() -> Handshake:
    init = initiator()
    init.receive_data(msg(b"sok") + challenge_msg())
    return init


N_BODY_FIXED = 1 + 8 + 4 + 2
MALFORMED = [
    # (case, starting point, bytes, error)
    ("empty message", fresh_acceptor, b"\x00\x00", HandshakeError),
    ("name message too short", fresh_acceptor, msg(b"N" + bytes(10)), HandshakeError),
    ("name length claims more", fresh_acceptor, name_msg()[: 2 + N_BODY_FIXED - 2] + b"\x00\x63" + b"py@h", None),
    ("name length claims fewer", fresh_acceptor, msg(name_msg()[2:][:13] + b"\x00\x02" + b"py@host"), HandshakeError),
    ("unknown message kind", fresh_acceptor, msg(b"X" + bytes(20)), HandshakeError),
    ("reply before the name", fresh_acceptor, reply_msg(), HandshakeError),
    ("node name without a host", fresh_acceptor, name_msg(name="nohost"), HandshakeError),
    ("node name with two @", fresh_acceptor, name_msg(name="a@b@c"), HandshakeError),
    ("node name not UTF-8", fresh_acceptor, msg(name_msg()[2:-len(INITIATOR)] + b"\xff\xfe@xxxxxxxxxx"), HandshakeError),
    ("old name too short", fresh_acceptor, msg(b"n\x00\x05\x00"), HandshakeError),
    ("old name version 4", fresh_acceptor, old_name_msg(version=4), HandshakeError),
    ("reply of 20 bytes", acceptor_awaiting_reply, msg(reply_msg()[2:-1]), HandshakeError),
    ("reply of 22 bytes", acceptor_awaiting_reply, msg(reply_msg()[2:] + b"\x00"), HandshakeError),
    ("reply with a wrong digest", acceptor_awaiting_reply, reply_msg(answer=bytes(16)), AuthenticationError),
    ("second name instead of the reply", acceptor_awaiting_reply, name_msg(), HandshakeError),
    ("complement of 8 bytes", old_acceptor_awaiting_complement, msg(complement_msg()[2:-1]), HandshakeError),
    ("reply before the complement", old_acceptor_awaiting_complement, reply_msg(), HandshakeError),
    ("empty message to the initiator", fresh_initiator, b"\x00\x00", HandshakeError),
    ("unknown status", fresh_initiator, msg(b"sbogus"), HandshakeError),
    ("dynamic name status (not asked for)", fresh_initiator, msg(b"snamed:\x00\x03a@b\x00\x00\x00\x01"), HandshakeError),
    ("challenge before the status", fresh_initiator, challenge_msg(), HandshakeError),
    ("ack before anything", fresh_initiator, ack_msg(), HandshakeError),
    ("challenge too short", initiator_awaiting_challenge, msg(challenge_msg()[2:20]), HandshakeError),
    ("challenge name length claims more", initiator_awaiting_challenge, msg(challenge_msg()[2:19] + b"\x00\x20" + ACCEPTOR.encode()), HandshakeError),
    ("challenge from another node", initiator_awaiting_challenge, challenge_msg(name="impostor@127.0.0.1"), HandshakeError),
    ("second status", initiator_awaiting_challenge, msg(b"sok"), HandshakeError),
    ("ack of 16 bytes", initiator_awaiting_ack, msg(ack_msg()[2:-1]), HandshakeError),
    ("ack of 18 bytes", initiator_awaiting_ack, msg(ack_msg()[2:] + b"\x00"), HandshakeError),
    ("ack with a wrong digest", initiator_awaiting_ack, ack_msg(bytes(16)), AuthenticationError),
    ("challenge twice", initiator_awaiting_ack, challenge_msg(), HandshakeError),
]  # fmt: skip


@pytest.mark.parametrize(("start", "data", "error"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_handshake_input(start: Callable[[], Handshake], data: bytes, error: type[Exception] | None) -> None:
    hs = start()
    hs.data_to_send()
    state = hs.state
    if error is None:
        # A length that claims more than arrived is not an error yet: the rest may come.
        assert hs.receive_data(data) == [] and hs.state == state
        return
    with pytest.raises(error) as excinfo:
        hs.receive_data(data)
    assert excinfo.type is error  # a HandshakeError case is not reported as a wrong cookie
    assert hs.state == "error"
    assert hs.data_to_send() == b""  # nothing sent in answer to the bad message
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        hs.accept("ok")
    with pytest.raises(LocalProtocolError):
        hs.answer_alive(True)


def acceptor_awaiting_alive_answer() -> Handshake:
    acc = acceptor()
    acc.receive_data(name_msg())
    acc.accept("alive")
    return acc


def initiator_awaiting_alive_decision() -> Handshake:
    init = initiator()
    init.receive_data(msg(b"salive"))
    return init


HANDSHAKE_STARTS = [
    fresh_acceptor,
    acceptor_awaiting_reply,
    acceptor_awaiting_alive_answer,
    old_acceptor_awaiting_complement,
    fresh_initiator,
    initiator_awaiting_challenge,
    initiator_awaiting_alive_decision,
    initiator_awaiting_ack,
]
VALID_HANDSHAKE_MESSAGES = [
    name_msg(),
    old_name_msg(),
    complement_msg(),
    msg(b"sok"),
    msg(b"salive"),
    msg(b"strue"),
    msg(b"sfalse"),
    challenge_msg(),
    reply_msg(),
    ack_msg(),
]
handshake_input = st.one_of(
    st.sampled_from(VALID_HANDSHAKE_MESSAGES),
    # a known kind with a random body, under a true length
    st.builds(lambda kind, rest: msg(bytes([kind]) + rest), st.sampled_from(b"NnscraX"), st.binary(max_size=40)),
    # a valid message with one byte changed
    st.builds(
        lambda m, i, b: m[: i % len(m)] + bytes([b]) + m[i % len(m) + 1 :],
        st.sampled_from(VALID_HANDSHAKE_MESSAGES),
        st.integers(0, 100),
        st.integers(0, 255),
    ),
    st.binary(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(HANDSHAKE_STARTS), inputs=st.lists(handshake_input, min_size=1, max_size=4))
def test_any_input_in_any_handshake_state(start: Callable[[], Handshake], inputs: list[bytes]) -> None:
    """h2-style walk: whatever arrives in whatever state, the handshake either moves on or
    raises HandshakeError (never struct.error, IndexError, UnicodeDecodeError...) and then
    refuses further use."""
    hs = start()
    for data in inputs:
        if hs.state in ("done", "closed"):
            with pytest.raises(LocalProtocolError):
                hs.receive_data(data)
            return
        try:
            hs.receive_data(data)
        except HandshakeError:
            assert hs.state == "error"
            with pytest.raises(LocalProtocolError):
                hs.receive_data(b"")
            return
        assert hs.state != "error"


@pytest.mark.parametrize("cut", [1, 2, 5, len(name_msg()) - 1])
def test_truncated_message_waits_for_the_rest(cut: int) -> None:
    acc = acceptor()
    data = name_msg()
    assert acc.receive_data(data[:cut]) == [] and acc.state == "await_name"
    assert acc.receive_data(data[cut:]) == [NameReceived(INITIATOR, DFlag(OUR_FLAGS), INITIATOR_CREATION)]


def test_nothing_is_taken_after_done() -> None:
    init = initiator()
    init.receive_data(msg(b"sok") + challenge_msg())
    (done,) = init.receive_data(ack_msg() + b"garbage")
    assert isinstance(done, HandshakeComplete) and done.leftover == b"garbage"
    assert init.state == "done"
    with pytest.raises(LocalProtocolError):
        init.receive_data(b"more garbage")
    with pytest.raises(LocalProtocolError):
        init.answer_alive(True)


# The largest message body each state takes, counted by hand from the layouts above (a
# node name: at most 255 characters of up to 4 bytes).
LARGEST_BODY = [
    (fresh_acceptor, "await_name", 1 + 8 + 4 + 2 + 1020),
    (acceptor_awaiting_reply, "await_reply", 1 + 4 + 16),
    (acceptor_awaiting_alive_answer, "await_alive_answer", len(b"sfalse")),
    (old_acceptor_awaiting_complement, "await_complement", 1 + 4 + 4),
    (fresh_initiator, "await_status", len(b"sok_simultaneous")),
    (initiator_awaiting_challenge, "await_challenge", 1 + 8 + 4 + 4 + 2 + 1020),
    (initiator_awaiting_ack, "await_ack", 1 + 16),
]


@pytest.mark.parametrize(("start", "state", "largest"), LARGEST_BODY, ids=[c[1] for c in LARGEST_BODY])
def test_a_length_over_the_largest_message_is_refused_before_its_body(
    start: Callable[[], Handshake], state: str, largest: int
) -> None:
    hs = start()
    assert hs.state == state
    assert hs.receive_data(largest.to_bytes(2, "big")) == []  # a message that big may come
    hs = start()
    with pytest.raises(HandshakeError, match=f"{largest + 1} bytes"):
        hs.receive_data((largest + 1).to_bytes(2, "big"))  # the length alone is enough
    assert hs.state == "error"


def test_a_65535_byte_handshake_message_is_not_waited_for() -> None:
    acc = acceptor()
    with pytest.raises(HandshakeError, match="65535 bytes"):
        acc.receive_data(b"\xff\xff" + b"A" * 100)


@pytest.mark.parametrize(
    ("start", "ahead"),
    [(lambda: _awaiting_decision(acceptor(), name_msg()), 2 + 21), (initiator_awaiting_alive_decision, 2 + 19 + 1020)],
    ids=["acceptor awaiting its decision", "initiator awaiting its answer to alive"],
)
def test_bytes_sent_ahead_of_our_answer_are_bounded(start: Callable[[], Handshake], ahead: int) -> None:
    # The peer owes us nothing until we answer; what it sends meanwhile is kept (it may be
    # the next message, pipelined), but no more than the largest next message.
    hs = start()
    for _ in range(ahead):
        assert hs.receive_data(b"\x00") == []
    with pytest.raises(HandshakeError, match="sent ahead"):
        hs.receive_data(b"\x00")


def _awaiting_decision(hs: Handshake, name: bytes) -> Handshake:
    (event,) = hs.receive_data(name)
    assert isinstance(event, NameReceived) and hs.state == "await_decision"
    return hs


# --- Inside TLS: 4-byte lengths (inet_tls_dist reads the handshake with {packet, 4}) ------


def four_byte_lengths(data: bytes) -> bytes:
    """The same handshake messages with 4-byte lengths: two zero bytes before each."""
    out = b""
    while data:
        length = int.from_bytes(data[:2], "big")
        out += b"\x00\x00" + data[: 2 + length]
        data = data[2 + length :]
    return out


def test_a_pair_with_4_byte_lengths_writes_them_and_completes() -> None:
    run = run_pair(initiator(length_prefix=4), acceptor(length_prefix=4), after_ack=NODE_LINK_FRAME)
    assert [(who, data) for who, data in run.wire] == [
        (who, four_byte_lengths(expected)) for who, _, expected in EXPECTED_WIRE[:-1]
    ] + [("acceptor", four_byte_lengths(ack_msg()) + NODE_LINK_FRAME)]
    assert run.complete("initiator").leftover == NODE_LINK_FRAME
    assert run.complete("acceptor").peer_name == INITIATOR
    assert run.wire[0][1][:4] == bytes.fromhex("0000001b")  # spelled out: 'N' + 8 + 4 + 2 + 12


@pytest.mark.parametrize(
    ("start", "largest"),
    [(lambda: acceptor(length_prefix=4), 1 + 8 + 4 + 2 + 1020), (lambda: initiator(length_prefix=4), len(b"sok_simultaneous"))],
    ids=["await_name", "await_status"],
)
def test_a_4_byte_length_over_the_largest_message_is_refused_before_its_body(
    start: Callable[[], Handshake], largest: int
) -> None:
    assert start().receive_data(largest.to_bytes(4, "big")) == []
    hs = start()
    with pytest.raises(HandshakeError, match=f"{largest + 1} bytes"):
        hs.receive_data((largest + 1).to_bytes(4, "big"))


def test_a_4_gib_handshake_message_is_refused_from_its_length() -> None:
    with pytest.raises(HandshakeError, match="4294967295 bytes"):
        acceptor(length_prefix=4).receive_data(b"\xff\xff\xff\xff" + b"N" * 100)


def test_2_and_4_byte_lengths_do_not_mix() -> None:
    # A peer speaking plain TCP's handshake to one inside TLS (or the reverse) fails at once.
    with pytest.raises(HandshakeError):
        run_pair(initiator(length_prefix=4), acceptor())
    with pytest.raises(HandshakeError):
        run_pair(initiator(), acceptor(length_prefix=4))
    with pytest.raises(LocalProtocolError, match="2 or 4 bytes"):
        acceptor(length_prefix=3)


def test_node_names_are_atoms_of_at_most_255_characters() -> None:
    longest = "é" * 250 + "@host"  # 255 characters, 505 bytes
    (event,) = acceptor().receive_data(name_msg(name=longest))
    assert isinstance(event, NameReceived) and event.name == longest
    with pytest.raises(HandshakeError, match="256 characters"):
        acceptor().receive_data(name_msg(name="a" + longest))


# --- 8. DistConnection ------------------------------------------------------------------------
#
# After the handshake a Rust link (`_native.DistLink`) owns the socket: it cuts frames, joins
# fragments, counts ticks and frames what is sent; `DistConnection` decodes the frame bodies
# it leaves to Python. These tests drive both as the node does, through a loopback socket
# whose other end is the peer's raw socket (`LinkPair`, tests/links.py): the bytes each way
# are exact. A connection ends either because the link found a frame malformed (it closes
# and says why) or because Python could not decode one (RemoteProtocolError: the node then
# closes the link); either way the peer is hung up on.

PEER = "beam@127.0.0.1"
P1 = Pid(PEER, 41, 0, 3)
P2 = Pid(INITIATOR, 7, 1, 1_700_000_000)
REF = Reference(PEER, 3, [1, 2, 3])

SAMPLE_FIELDS: dict[str, Any] = {
    "from_pid": P1,
    "to_pid": P2,
    "from_proc": Atom("rex"),
    "to_proc": Atom("rustelixir"),
    "to_name": Atom("rustelixir"),
    "ref": REF,
    "alias": Reference(INITIATOR, 1, [9, 8, 7]),
    "reason": (Atom("shutdown"), b"bye"),
    "trace_token": (0, Atom("label"), 5, P1, 0),
    "message": (Atom("$gen_call"), (P1, [Atom("alias"), REF]), {b"k": [1, 2.5, None]}),
    "id": 2**64 + 1,
    "group_leader": P1,
    "mfa": (Atom("erpc"), Atom("execute_call"), 4),
    "options": [Atom("monitor"), (Atom("reply"), Atom("error_only"))],
    "args": [REF, Atom("rustelixir"), Atom("add"), [1, 2]],
    "flags": 2,
    "result": P2,
}

CONTROL_CLASSES = [getattr(control_module, n) for n in control_module.__all__ if n not in ("Control", "from_terms", "OPCODES")]
# The link sends a distribution header to a peer that offered FRAGMENTS, else pass-through.
HEADER_OR_NOT = pytest.mark.parametrize("header", [True, False], ids=["header", "pass-through"])


def sample(cls: type[Control]) -> Control:
    return cls(**{f.name: SAMPLE_FIELDS[f.name] for f in fields(cls)})


def test_every_control_class_is_in_the_opcode_table() -> None:
    assert sorted(OPCODES.values(), key=lambda c: c.OP) == sorted(CONTROL_CLASSES, key=lambda c: c.OP)
    assert len(CONTROL_CLASSES) == 30


@HEADER_OR_NOT
@pytest.mark.parametrize("cls", CONTROL_CLASSES, ids=lambda c: c.__name__)
def test_control_round_trip(cls: type[Control], header: bool) -> None:
    message = sample(cls)
    with LinkPair(header=header) as pair:
        pair.send(message)
        (body,) = pair.sent_message()
        assert body[:3] == b"\x83D\x00" if header else body[:2] == b"p\x83"
        assert pair.receive(frame(body)) == [message]
        assert pair.nothing_more_sent()


def test_control_tuples_follow_the_documented_layout() -> None:
    unused = Atom("")
    assert sample(control_module.Send).to_terms() == ((2, unused, P2), SAMPLE_FIELDS["message"])
    assert sample(control_module.RegSend).to_terms() == ((6, P1, unused, Atom("rustelixir")), SAMPLE_FIELDS["message"])
    assert sample(control_module.MonitorPExit).to_terms() == ((21, Atom("rex"), P2, REF, SAMPLE_FIELDS["reason"]), None)
    assert sample(control_module.UnlinkIdAck).to_terms() == ((36, 2**64 + 1, P1, P2), None)
    assert control_module.NodeLink().to_terms() == ((5,), None)
    for cls in CONTROL_CLASSES:
        control, payload = sample(cls).to_terms()
        assert from_terms(control, payload) == sample(cls) if cls.PAYLOAD else from_terms(control) == sample(cls)


PID_BYTES = b"X" + b"w\x03a@b" + bytes.fromhex("00000001" "00000002" "00000003")  # NEW_PID_EXT
CONNECTION_CASES = [
    # (case, message, whether the link sends a distribution header, exact frame)
    ("NODE_LINK pass-through", control_module.NodeLink(), False, bytes.fromhex("00000006" "70" "83680161" "05")),
    ("NODE_LINK header", control_module.NodeLink(), True, bytes.fromhex("00000007" "834400" "680161" "05")),
    (
        "SEND pass-through",
        control_module.Send(to_pid=Pid("a@b", 1, 2, 3), message=Atom("hi")),
        False,
        frame(b"p" + b"\x83h\x03a\x02w\x00" + PID_BYTES + b"\x83w\x02hi"),
    ),
    (
        "SEND header",
        control_module.Send(to_pid=Pid("a@b", 1, 2, 3), message=Atom("hi")),
        True,
        frame(b"\x83D\x00" + b"h\x03a\x02w\x00" + PID_BYTES + b"w\x02hi"),
    ),
    (
        "SEND with a nil message (payload present though nil)",
        control_module.Send(to_pid=Pid("a@b", 1, 2, 3), message=None),
        True,
        frame(b"\x83D\x00" + b"h\x03a\x02w\x00" + PID_BYTES + b"w\x03nil"),
    ),
    (
        "UNLINK_ID with a bignum id",
        control_module.UnlinkId(id=2**64, from_pid=Pid("a@b", 1, 2, 3), to_pid=Pid("a@b", 1, 2, 3)),
        True,
        frame(b"\x83D\x00" + b"h\x04a\x23" + b"n\x09\x00" + bytes(8) + b"\x01" + PID_BYTES + PID_BYTES),
    ),
]


@pytest.mark.parametrize(("message", "header", "wire"), [c[1:] for c in CONNECTION_CASES], ids=[c[0] for c in CONNECTION_CASES])
def test_connection_message_bytes(message: Control, header: bool, wire: bytes) -> None:
    with LinkPair(header=header) as pair:
        assert pair.receive(wire) == [message]
        pair.send(message)
        assert pair.sent(len(wire)) == wire
        assert pair.nothing_more_sent()


def test_tick_bytes() -> None:
    # An empty frame is a tick: counted by the link, not an event.
    with LinkPair() as pair:
        assert pair.receive(TICK) == [] and pair.ticks == 1
    # The link sends one when it sent nothing for a quarter of net_ticktime.
    with LinkPair(ticktime_ms=400) as pair:
        assert pair.sent(4, timeout=2) == TICK


def test_ticks_among_messages() -> None:
    with LinkPair() as pair:
        data = TICK * 2 + bytes.fromhex("00000006" "70" "83680161" "05") + TICK
        assert pair.receive(data) == [control_module.NodeLink()]
        assert pair.ticks == 3


# Fragments ---------------------------------------------------------------------------------


def big_send(size: int, byte: int = 0x61) -> Control:
    return control_module.Send(to_pid=P2, message=bytes([byte]) * size)


def test_large_message_is_sent_in_fragments_and_arrives_whole() -> None:
    message = big_send(1000)
    with LinkPair(fragment_size=64) as pair:
        pair.send(message)
        frames = pair.sent_message()
        count = len(frames)
        control, payload = message.to_terms()
        assert count == -(-(len(encode(control)) - 1 + len(encode(payload)) - 1) // 64)
        sequence = frames[0][2:10]  # the link's own counter: the same in every fragment
        assert frames[0][:19] == b"\x83E" + sequence + count.to_bytes(8, "big") + b"\x00"
        for index, body in enumerate(frames[1:], 1):
            assert body[:18] == b"\x83F" + sequence + (count - index).to_bytes(8, "big")
        assert all(len(body) - (19 if i == 0 else 18) <= 64 for i, body in enumerate(frames))
        assert pair.receive(b"".join(map(frame, frames[:-1]))) == []  # held until the last one
        assert pair.receive(frame(frames[-1])) == [message]
        # The sequence is over: another fragment of it is one of an unknown sequence.
        assert pair.receive(frame(frames[-1])) == []
        assert pair.closed is not None and "unknown sequence" in pair.closed


def test_no_fragments_to_a_peer_without_them() -> None:
    with LinkPair(header=False, fragment_size=64) as pair:
        pair.send(big_send(1000))
        (body,) = pair.sent_message()
        assert body[:1] == b"p"
        assert pair.receive(frame(body)) == [big_send(1000)]


def test_message_of_exactly_fragment_size_is_one_frame() -> None:
    message = big_send(50)
    control, payload = message.to_terms()
    size = len(encode(control)) - 1 + len(encode(payload)) - 1
    for fragment_size, frames in [(size, 1), (size - 1, 2)]:
        with LinkPair(fragment_size=fragment_size) as pair:
            pair.send(message)
            assert len(pair.sent_message()) == frames
            assert pair.nothing_more_sent()


def test_single_fragment_message() -> None:
    body = b"\x83E" + (9).to_bytes(8, "big") + (1).to_bytes(8, "big") + b"\x00" + b"h\x01a\x05"
    with LinkPair() as pair:
        assert pair.receive(frame(body)) == [control_module.NodeLink()]
        # Nothing of sequence 9 is left open.
        assert pair.receive(frag_cont(9, 1)) == []
        assert pair.closed is not None and "unknown sequence 9" in pair.closed


def test_interleaved_sequences_arrive_whole_in_completion_order() -> None:
    first, second = big_send(200, 0x61), big_send(120, 0x62)
    with LinkPair(fragment_size=50) as pair:
        pair.send(first)
        one = pair.sent_message()
        pair.send(second)
        two = pair.sent_message()
        assert len(one) == 5 and len(two) == 4
        # Started first, finished last: 1/5 2/4 1/4 2/3 1/3 2/2 2/1 (second done) 1/2 1/1.
        order = [one[0], two[0], one[1], two[1], one[2], two[2], two[3], one[3], one[4]]
        assert [e for body in order for e in pair.receive(frame(body))] == [second, first]
        # All at once: the same (both sequences were over, so they may start again).
        assert pair.receive(b"".join(map(frame, order))) == [second, first]


def frag_header(sequence: int, fragment: int, content: bytes = b"h\x01", refs: int = 0) -> bytes:
    return frame(b"\x83E" + sequence.to_bytes(8, "big") + fragment.to_bytes(8, "big") + bytes([refs]) + content)


def frag_cont(sequence: int, fragment: int, content: bytes = b"a\x05") -> bytes:
    return frame(b"\x83F" + sequence.to_bytes(8, "big") + fragment.to_bytes(8, "big") + content)


def test_fragments_by_hand_arrive_whole() -> None:
    with LinkPair() as pair:
        assert pair.receive(frag_header(5, 2) + frag_cont(5, 1)) == [control_module.NodeLink()]


NODE_LINK_PT = frame(b"p\x83h\x01a\x05")
BAD_CONNECTION_INPUT = [
    # (case, link options, bytes, part of why the connection ended: the link's "protocol
    # error: ...", or the RemoteProtocolError Python raised on a frame the link handed over)
    ("continuation of an unknown sequence", {}, frag_cont(99, 1), "protocol error: fragment 1 of unknown sequence 99"),
    ("continuation of a finished sequence", {}, frag_header(5, 2) + frag_cont(5, 1) + frag_cont(5, 1), "protocol error: fragment 1 of unknown sequence 5"),
    ("fragment id skipped", {}, frag_header(5, 3) + frag_cont(5, 1), "protocol error: fragment 1 of sequence 5, expected 2"),
    ("fragment id repeated", {}, frag_header(5, 3) + frag_cont(5, 3), "protocol error: fragment 3 of sequence 5, expected 2"),
    ("fragment id 0", {}, frag_header(5, 0), "protocol error: fragment id 0"),
    ("sequence started twice", {}, frag_header(5, 3) + frag_header(5, 3), "protocol error: fragment sequence 5 started twice"),
    ("fragment header with atom-cache references", {}, frag_header(5, 2, refs=1), "protocol error: fragment header with 1 atom-cache references"),
    ("truncated fragment header", {}, frame(b"\x83E" + bytes(10)), "protocol error: truncated fragment header"),
    ("truncated continuation", {}, frag_header(5, 2) + frame(b"\x83F" + bytes(10)), "protocol error: truncated fragment header"),
    ("fragment frame over the limit", {"max_message_size": 60}, frag_header(5, 3, bytes(60)), "protocol error: fragment frame of 79 bytes, over the limit of 60"),
    ("pass-through with garbage after the payload", {}, frame(b"p\x83h\x01a\x05\x83w\x01x\x00"), "RemoteProtocolError: malformed distribution message from beam@127.0.0.1: 1 trailing bytes"),
    ("pass-through with a half term after the control", {}, frame(b"p\x83h\x01a\x05\x83"), "RemoteProtocolError: malformed distribution message from beam@127.0.0.1: truncated"),
    ("header with garbage after the payload", {}, frame(b"\x83D\x00h\x01a\x05w\x01xw\x01y"), "RemoteProtocolError: malformed distribution message from beam@127.0.0.1: 3 trailing bytes"),
    ("header with atom-cache references", {}, frame(b"\x83D\x01" + bytes(5)), "RemoteProtocolError: malformed distribution message from beam@127.0.0.1: 1 atom-cache references"),
    ("unknown header kind", {}, frame(b"\x83c\x00h\x01a\x05"), "RemoteProtocolError: frame from beam@127.0.0.1 starts with b'\\x83c': not a distribution message"),
    ("not a distribution message", {}, frame(b"\x00\x01\x02"), "RemoteProtocolError: frame from beam@127.0.0.1 starts with b'\\x00\\x01': not a distribution message"),
    ("a lone version byte", {}, frame(b"\x83"), "RemoteProtocolError: frame from beam@127.0.0.1 starts with b'\\x83': not a distribution message"),
    ("unknown opcode", {}, frame(b"p\x83h\x01a\x63"), "RemoteProtocolError: unknown or unsupported control message opcode 99"),
    ("opcode 0", {}, frame(b"p\x83h\x01a\x00"), "RemoteProtocolError: unknown or unsupported control message opcode 0"),
    ("atom true as the opcode", {}, frame(b"p\x83h\x03w\x04true" + PID_BYTES + PID_BYTES), "RemoteProtocolError: control message is not a tuple with an opcode"),
    ("control not a tuple", {}, frame(b"p\x83w\x02hi"), "RemoteProtocolError: control message is not a tuple with an opcode"),
    ("empty control tuple", {}, frame(b"p\x83h\x00"), "RemoteProtocolError: control message is not a tuple with an opcode"),
    ("control tuple of the wrong size", {}, frame(b"p\x83h\x02a\x05a\x05"), "RemoteProtocolError: NodeLink control message has 2 elements (expected 1)"),
    ("SEND without its payload", {}, frame(b"p\x83h\x03a\x02w\x00" + PID_BYTES), "RemoteProtocolError: Send control message without a payload"),
    ("NODE_LINK with a payload", {}, frame(b"p\x83h\x01a\x05\x83w\x01x"), "RemoteProtocolError: NodeLink control message with a payload"),
    ("bad term in the control", {}, frame(b"p\x83h\x01\xff"), "RemoteProtocolError: malformed distribution message from beam@127.0.0.1: unknown tag 255"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "data", "says"), [c[1:] for c in BAD_CONNECTION_INPUT], ids=[c[0] for c in BAD_CONNECTION_INPUT])
def test_malformed_connection_input(options: dict[str, Any], data: bytes, says: str) -> None:
    with LinkPair(**options) as pair:
        pair.receive(data)
        assert pair.closed is not None and says in pair.closed, pair.closed
        assert pair.hung_up()
        if pair.error is not None:
            # Python found it: its DistConnection takes nothing more either.
            with pytest.raises(LocalProtocolError):
                pair.conn.receive_frames([NODE_LINK_PT[4:]])


def test_a_message_over_the_limit_is_discarded_and_the_connection_goes_on() -> None:
    # One frame: skipped as it arrives (never held whole); then the next frame decodes.
    with LinkPair(max_message_size=1000) as pair:
        pair.write((5000).to_bytes(4, "big") + bytes(3000))
        assert pair.receive(bytes(2000) + NODE_LINK_PT) == [control_module.NodeLink()]
        # At the limit: the link waits for the body, then hands it over.
        control, payload = encoded(control_module.Send(to_pid=P2, message=b""))
        message = control_module.Send(to_pid=P2, message=bytes(1000 - 3 - len(control) - len(payload)))
        body = b"\x83D\x00" + b"".join(p for p in encoded(message) if p)
        assert len(body) == 1000
        pair.write((1000).to_bytes(4, "big"))
        assert pair.receive(body) == [message]
    # Fragments: the message is dropped when it passes the limit, its later fragments too.
    with LinkPair(max_message_size=60) as pair:
        assert pair.receive(frag_header(5, 3, bytes(40)) + frag_cont(5, 2, bytes(40)) + frag_cont(5, 1)) == []
        # ... and its sequence is over (else starting it again would close the connection).
        assert pair.receive(frag_header(5, 2) + frag_cont(5, 1)) == [control_module.NodeLink()]
        assert pair.receive(NODE_LINK_PT) == [control_module.NodeLink()]
        assert pair.closed is None


def test_bad_frame_after_a_good_one_in_the_same_take() -> None:
    # DistConnection raises (the events of the good frames before it are not returned: the
    # connection is going down) and decodes nothing after, the good frame not again either.
    conn = DistConnection(peer_name=PEER, flags=DFlag(OUR_FLAGS))
    with pytest.raises(RemoteProtocolError):
        conn.receive_frames([NODE_LINK_PT[4:], b"\x00"])
    with pytest.raises(LocalProtocolError):
        conn.receive_frames([])
    # Through the link, however the two frames are taken: the connection ends.
    with LinkPair() as pair:
        pair.receive(NODE_LINK_PT + frame(b"\x00"))
        assert pair.error is not None and pair.hung_up()


# The most fragmented messages a link holds open at once (MAX_OPEN_SEQUENCES in
# native/dist/src/fast_path.rs).
MAX_OPEN_SEQUENCES = 1024


def test_too_many_open_sequences() -> None:
    with LinkPair() as pair:
        assert pair.receive(b"".join(frag_header(s, 2) for s in range(MAX_OPEN_SEQUENCES))) == []
        assert pair.closed is None
        pair.receive(frag_header(MAX_OPEN_SEQUENCES, 2))
        assert pair.closed is not None and f"more than {MAX_OPEN_SEQUENCES} fragmented messages" in pair.closed


@pytest.mark.parametrize(
    ("control", "said"),
    [
        (10**5000, "an integer of 16610 bits"),  # repr() of it raises ValueError (4,300 digits)
        (list(range(1_000_000)), "a list of length 1000000"),
        (b"x" * 10_000, "a bytes of length 10000"),
        (7, "7"),
    ],
    ids=["huge integer", "long list", "long binary", "small integer"],
)
def test_a_control_message_that_is_not_a_tuple_is_described_not_printed(control: Any, said: str) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError) as info:
            from_terms(control)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value) == f"control message is not a tuple with an opcode: {said}"
    assert peak < 64 * 1024  # no repr of the term: that alone was megabytes for the list



# --- Random splits and random traffic ---------------------------------------------------------

# Fields with a fixed kind (a peer sending anything else breaks the protocol); the others
# (messages, reasons, trace tokens) take any term.
FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.integers(0, 2**70),
    "from_pid": pids,
    "to_pid": pids,
    "to_name": atoms,
    "to_proc": st.one_of(pids, atoms),
    "from_proc": st.one_of(pids, atoms),
    "ref": references,
    "alias": references,
}


def controls_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Control]:
    return st.sampled_from(CONTROL_CLASSES).flatmap(
        lambda cls: st.builds(cls, **{f.name: FIELD_STRATEGIES.get(f.name, values) for f in fields(cls)})
    )


big_binaries = st.binary(min_size=50, max_size=600)  # fragmented at the fragment sizes used here
# Any term, nested; and quicker to draw (no filtered strategies), for the long stateful runs.
controls = controls_of(st.one_of(terms, big_binaries))
quick_controls = controls_of(st.one_of(hashable_terms, big_binaries))
# Messages, and ticks (TICK: the peer's, the link sends its own only when idle).
traffic = st.lists(st.one_of(st.just(TICK), controls), max_size=8)


def encode_traffic(pair: LinkPair, items: list[Any]) -> bytes:
    """What the link sends of `items` (each message as its frames), with the ticks among
    them."""
    wire = b""
    for item in items:
        if isinstance(item, bytes):
            wire += item
        else:
            pair.send(item)
            wire += b"".join(map(frame, pair.sent_message()))
    return wire


def messages_and_ticks(items: list[Any]) -> tuple[list[Control], int]:
    messages = [item for item in items if not isinstance(item, bytes)]
    return messages, len(items) - len(messages)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=traffic, header=st.booleans(), fragment_size=st.integers(1, 200), data=st.data())
def test_connection_any_split_same_events(items: list[Any], header: bool, fragment_size: int, data: st.DataObject) -> None:
    messages, ticks = messages_and_ticks(items)
    # The link sends the items to its peer, which sends them back, whole, then in random pieces.
    with LinkPair(header=header, fragment_size=fragment_size) as pair:
        wire = encode_traffic(pair, items)
        assert pair.receive(wire) == messages and pair.ticks == ticks
        for piece in splitter(data)(wire):
            pair.write(piece)
        assert pair.receive() == messages and pair.ticks == 2 * ticks
        assert pair.closed is None


connection_input = st.lists(
    st.one_of(
        st.just(NODE_LINK_PT),
        st.just(TICK),
        st.builds(lambda prefix, rest: frame(prefix + rest), st.sampled_from([b"", b"p", b"p\x83", b"\x83D\x00", b"\x83E", b"\x83F"]), st.binary(max_size=40)),
        st.builds(frag_header, st.integers(0, 3), st.integers(0, 4), st.binary(max_size=8)),
        st.builds(frag_cont, st.integers(0, 3), st.integers(0, 4), st.binary(max_size=8)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(inputs=connection_input)
def test_any_frames_give_events_or_end_the_connection(inputs: list[bytes]) -> None:
    with LinkPair(max_message_size=64) as pair:
        events = pair.receive(b"".join(inputs))
        # TooLarge: a compressed term claiming more than the limit, refused undecoded.
        assert all(isinstance(e, (Control, TooLarge)) for e in events)
        if pair.closed is not None:
            # For a protocol error (the link's or Python's), and nothing else; then hung up.
            assert pair.error is not None or pair.closed.startswith("protocol error:"), pair.closed
            assert pair.hung_up()


def test_connection_one_byte_at_a_time() -> None:
    items = [sample(cls) for cls in CONTROL_CLASSES] + [TICK, big_send(500)]
    messages, ticks = messages_and_ticks(items)
    with LinkPair(fragment_size=32) as pair:
        wire = encode_traffic(pair, items)
        for i in range(len(wire)):
            pair.write(wire[i : i + 1])
        assert pair.receive() == messages and pair.ticks == ticks


class ConnectionPair(RuleBasedStateMachine):
    """Two links, each sending random control messages (fragmented when it sends a
    distribution header and the message is over its random fragment size), and ticks; what
    one sends is relayed to the other in random pieces (by the test, which holds the far end
    of both links' sockets, and adds the ticks between messages). Each side must receive
    exactly what the other sent, in order."""

    @initialize(second_header=st.booleans(), sizes=st.tuples(st.integers(1, 64), st.integers(1, 64)))
    def connect(self, second_header: bool, sizes: tuple[int, int]) -> None:
        # The first end always sends a header (and fragments); the second may send only
        # pass-through frames.
        self.ends = [LinkPair(header=True, fragment_size=sizes[0]), LinkPair(header=second_header, fragment_size=sizes[1])]
        self.in_flight = [b"", b""]  # bytes on the way from end i to the other
        self.sent: list[list[Control]] = [[], []]
        self.ticks_sent = [0, 0]
        self.received: list[list[Control]] = [[], []]  # by end i, from the other

    @rule(side=st.integers(0, 1), message=quick_controls)
    def send(self, side: int, message: Control) -> None:
        self.ends[side].send(message)
        self.in_flight[side] += b"".join(map(frame, self.ends[side].sent_message()))
        self.sent[side].append(message)

    @rule(side=st.integers(0, 1))
    def tick(self, side: int) -> None:
        self.in_flight[side] += TICK
        self.ticks_sent[side] += 1

    @rule(side=st.integers(0, 1), amount=st.integers(0, 100))
    def deliver(self, side: int, amount: int) -> None:
        piece, self.in_flight[side] = self.in_flight[side][:amount], self.in_flight[side][amount:]
        other = self.ends[1 - side]
        other.write(piece)
        other.poll()
        self.received[1 - side] += other.taken()

    @precondition(lambda self: hasattr(self, "ends"))
    @invariant()
    def received_a_prefix_of_what_was_sent(self) -> None:
        for side in (0, 1):
            got = self.received[1 - side]
            assert got == self.sent[side][: len(got)]
            assert self.ends[side].closed is None

    def teardown(self) -> None:
        if not hasattr(self, "ends"):
            return
        try:
            for side in (0, 1):
                other = self.ends[1 - side]
                self.received[1 - side] += other.receive(self.in_flight[side])
                assert self.received[1 - side] == self.sent[side]
                assert other.ticks == self.ticks_sent[side]
        finally:
            for end in self.ends:
                end.close()


ConnectionPair.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_connection_pair = ConnectionPair.TestCase
