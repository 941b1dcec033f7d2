"""Distribution capability flags (DFLAG_*), exchanged in the handshake.

Values from the "Distribution Protocol" chapter of the ERTS documentation.
"""

from __future__ import annotations

import enum

__all__ = ["DFlag", "MANDATORY_25", "OUR_FLAGS", "expand_mandatory"]


class DFlag(enum.IntFlag):
    PUBLISHED = 0x01
    ATOM_CACHE = 0x02
    EXTENDED_REFERENCES = 0x04
    DIST_MONITOR = 0x08
    FUN_TAGS = 0x10
    DIST_MONITOR_NAME = 0x20
    HIDDEN_ATOM_CACHE = 0x40
    NEW_FUN_TAGS = 0x80
    EXTENDED_PIDS_PORTS = 0x100
    EXPORT_PTR_TAG = 0x200
    BIT_BINARIES = 0x400
    NEW_FLOATS = 0x800
    UNICODE_IO = 0x1000
    DIST_HDR_ATOM_CACHE = 0x2000
    SMALL_ATOM_TAGS = 0x4000
    ETS_COMPRESSED = 0x8000
    UTF8_ATOMS = 0x10000
    MAP_TAG = 0x20000
    BIG_CREATION = 0x40000
    SEND_SENDER = 0x80000
    BIG_SEQTRACE_LABELS = 0x100000
    PENDING_CONNECT = 0x200000
    EXIT_PAYLOAD = 0x400000
    FRAGMENTS = 0x800000
    HANDSHAKE_23 = 0x1000000
    UNLINK_ID = 0x2000000
    MANDATORY_25_DIGEST = 0x4000000
    SPAWN = 1 << 32
    NAME_ME = 1 << 33
    V4_NC = 1 << 34
    ALIAS = 1 << 35


# What OTP 25+ requires of a peer; a peer may send MANDATORY_25_DIGEST in their place.
MANDATORY_25 = (
    DFlag.EXTENDED_REFERENCES
    | DFlag.FUN_TAGS
    | DFlag.EXTENDED_PIDS_PORTS
    | DFlag.NEW_FUN_TAGS
    | DFlag.EXPORT_PTR_TAG
    | DFlag.BIT_BINARIES
    | DFlag.NEW_FLOATS
    | DFlag.UTF8_ATOMS
    | DFlag.MAP_TAG
    | DFlag.BIG_CREATION
    | DFlag.HANDSHAKE_23
)

# A hidden node (no PUBLISHED) with everything OTP 25-28 make mandatory (OTP 26 adds V4_NC
# and UNLINK_ID), plus the optional capabilities we implement. Not DIST_HDR_ATOM_CACHE: peers
# then send a header with no atom-cache references, so terms need no per-connection cache.
OUR_FLAGS = (
    MANDATORY_25
    | DFlag.MANDATORY_25_DIGEST
    | DFlag.DIST_MONITOR
    | DFlag.DIST_MONITOR_NAME
    | DFlag.SMALL_ATOM_TAGS
    | DFlag.SEND_SENDER
    | DFlag.BIG_SEQTRACE_LABELS
    | DFlag.EXIT_PAYLOAD
    | DFlag.FRAGMENTS
    | DFlag.UNLINK_ID
    | DFlag.V4_NC
    | DFlag.ALIAS
    | DFlag.SPAWN
)


def expand_mandatory(flags: int) -> DFlag:
    """The peer's flags with MANDATORY_25_DIGEST expanded into the flags it stands for."""
    if flags & DFlag.MANDATORY_25_DIGEST:
        flags |= MANDATORY_25
    return DFlag(flags)
