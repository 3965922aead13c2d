"""The compact form of an event's input in ``bayes.player_event.input`` (issue 15).

The Python side keeps the JSON shape of :mod:`bayes_engine.events` (what
``events.apply`` and ``events.LogReplay`` read); on disk an input is a few
dozen bytes of ``bytea`` instead of about 480 bytes of ``jsonb``.
:func:`pack` and :func:`unpack` convert, exactly: ``unpack(kind, pack(kind,
data)) == data`` for every input a writer logs (v1 events without ``"v"``
included), floats as their 8 IEEE bytes, so that a replay of the log
reproduces the stored state bit for bit.

The first byte says the format:

* ``0``: the input as JSON text (UTF-8). Written for anything the compact
  format does not describe (a key it does not know, an integer that is not
  exact as a float, a feature list out of the encoder's order, an unknown
  kind): nothing a writer could log is ever refused or changed.
* ``1``: compact, per kind (little-endian; ``d`` a float64):

  - message: ``v`` (byte, 0: absent), flags (byte: 1 reply gap given,
    2 topic_changed given, 4 topic_changed true, 8 seed given), sent_at
    (d), [reply_gap_s (d)], the observation: features (u16, a bit per
    name of ``encoder.FEATURES`` in its order, which is the order the
    encoder lists them in), symbols (u16, a bit per symbol index, listed
    sorted), plus and minus (a byte whose bit j (plus) and 4 + j (minus)
    says that metric j's value is not +0.0, then those values (d) in that
    order), vices (a byte, bit j: vice j is not +0.0, then those values),
    then the seed's UTF-8 bytes to the end;
  - llm_scores: ``v``, flags (1 vices given, 2 mood given), a byte of the
    metrics present in ``deltas`` (bit j: ``vocab.METRIC_NAMES[j]``) and
    their values (d), [a byte of the vices present and their values (d)],
    [the mood's index in ``vocab.MOODS`` (byte)];
  - outcome: ``v``, engaged (byte 0/1), the decision's UTF-8 bytes;
  - chapter: ``v``, the chapter (byte).

A later change of ``encoder.FEATURES``, the vices or the moods must add a
format byte (2, ...) and keep reading 1 as it is.
"""

import json
import math
import struct

from . import vocab
from .encoder import FEATURES

JSON_FORMAT = 0
COMPACT_FORMAT = 1

FEATURE_NAMES = tuple(FEATURES)  # the encoder's order, which it lists the features that fired in
_FEATURE_BIT = {name: 1 << i for i, name in enumerate(FEATURE_NAMES)}
_N_SYMBOLS = len(vocab.SYMBOLS)

_HEAD = struct.Struct("<BBB")  # format, v, flags
_D = struct.Struct("<d")
_MESSAGE_FIXED = struct.Struct("<BBBd")  # format, v, flags, sent_at
_U16x2 = struct.Struct("<HH")

_MESSAGE_KEYS = frozenset(("v", "sent_at", "reply_gap_s", "topic_changed", "seed", "observation"))
_MESSAGE_REQUIRED = _MESSAGE_KEYS - {"v"}
_OBSERVATION_KEYS = frozenset(("plus", "minus", "features", "vices", "symbols"))
_LLM_KEYS = frozenset(("v", "deltas", "vices", "mood"))
_OUTCOME_KEYS = frozenset(("v", "decision", "engaged"))
_CHAPTER_KEYS = frozenset(("v", "chapter"))


class _NotCompact(Exception):
    """The input is outside what the compact format describes: it is written as JSON."""


def _number(x):
    """x as a float, when that is exact (a JSON number the compact format can carry)."""
    if type(x) is float:
        return x
    if type(x) is int and -(2**53) <= x <= 2**53:
        return float(x)
    raise _NotCompact


def _is_plain_zero(x):
    return x == 0.0 and math.copysign(1.0, x) > 0


def _version(data):
    v = data.get("v")
    if v is None and "v" not in data:
        return 0
    if type(v) is not int or not 1 <= v <= 255:
        raise _NotCompact
    return v


def _sparse(values, out):
    """A presence byte for `values` (bit i: values[i] is not +0.0) and those values."""
    mask = 0
    tail = []
    for i, x in enumerate(values):
        x = _number(x)
        if not _is_plain_zero(x):
            mask |= 1 << i
            tail.append(_D.pack(x))
    out.append(bytes((mask,)))
    out.extend(tail)


def _pack_message(data):
    if not _MESSAGE_REQUIRED <= data.keys() <= _MESSAGE_KEYS:
        raise _NotCompact
    obs = data["observation"]
    if type(obs) is not dict or obs.keys() != _OBSERVATION_KEYS:
        raise _NotCompact
    plus, minus, features, vices, symbols = obs["plus"], obs["minus"], obs["features"], obs["vices"], obs["symbols"]
    if not (type(plus) is list and type(minus) is list and len(plus) == len(minus) == len(vocab.METRIC_KEYS)):
        raise _NotCompact
    if type(vices) is not list or len(vices) != len(vocab.VICES):
        raise _NotCompact
    feature_bits = 0
    for name in features if type(features) is list else ():
        bit = _FEATURE_BIT.get(name) if type(name) is str else None
        if bit is None or bit <= feature_bits:  # unknown, repeated or out of the encoder's order
            raise _NotCompact
        feature_bits |= bit
    if type(features) is not list:
        raise _NotCompact
    symbol_bits = 0
    previous = -1
    for s in symbols if type(symbols) is list else ():
        if type(s) is not int or not previous < s < _N_SYMBOLS:
            raise _NotCompact
        symbol_bits |= 1 << s
        previous = s
    if type(symbols) is not list:
        raise _NotCompact
    gap, topic, seed = data["reply_gap_s"], data["topic_changed"], data["seed"]
    flags = 0
    if gap is not None:
        flags |= 1
        gap = _number(gap)
    if topic is not None:
        if type(topic) is not bool:
            raise _NotCompact
        flags |= 2 | (4 if topic else 0)
    if seed is not None:
        if type(seed) is not str:
            raise _NotCompact
        flags |= 8
    out = [_MESSAGE_FIXED.pack(COMPACT_FORMAT, _version(data), flags, _number(data["sent_at"]))]
    if gap is not None:
        out.append(_D.pack(gap))
    out.append(_U16x2.pack(feature_bits, symbol_bits))
    _sparse([*plus, *minus], out)
    _sparse(vices, out)
    if seed is not None:
        out.append(seed.encode("utf-8", "surrogatepass"))
    return b"".join(out)


def _pack_llm_scores(data):
    if "deltas" not in data or not data.keys() <= _LLM_KEYS:
        raise _NotCompact
    deltas, vices, mood = data["deltas"], data.get("vices"), data.get("mood")
    flags = (1 if "vices" in data else 0) | (2 if "mood" in data else 0)
    out = [_HEAD.pack(COMPACT_FORMAT, _version(data), flags)]
    _present(deltas, vocab.METRIC_NAMES, out)
    if flags & 1:
        _present(vices, vocab.VICES, out)
    if flags & 2:
        if mood not in vocab.MOODS or type(mood) is not str:
            raise _NotCompact
        out.append(bytes((vocab.MOODS.index(mood),)))
    return b"".join(out)


def _present(mapping, names, out):
    """A byte of the names present in `mapping` (bit i: names[i]) and their values."""
    if type(mapping) is not dict or not mapping.keys() <= set(names):
        raise _NotCompact
    mask = 0
    tail = []
    for i, name in enumerate(names):
        if name in mapping:
            mask |= 1 << i
            tail.append(_D.pack(_number(mapping[name])))
    out.append(bytes((mask,)))
    out.extend(tail)


def _pack_outcome(data):
    if data.keys() - {"v"} != {"decision", "engaged"}:
        raise _NotCompact
    decision, engaged = data["decision"], data["engaged"]
    if type(decision) is not str or type(engaged) is not bool:
        raise _NotCompact
    return _HEAD.pack(COMPACT_FORMAT, _version(data), int(engaged)) + decision.encode("utf-8", "surrogatepass")


def _pack_chapter(data):
    if data.keys() - {"v"} != {"chapter"}:
        raise _NotCompact
    chapter = data["chapter"]
    if type(chapter) is not int or not 0 <= chapter <= 255:
        raise _NotCompact
    return _HEAD.pack(COMPACT_FORMAT, _version(data), chapter)


_PACKERS = {
    "message": _pack_message,
    "llm_scores": _pack_llm_scores,
    "outcome": _pack_outcome,
    "chapter": _pack_chapter,
}


def pack(kind, data):
    """The bytes stored for an event input `data` (a JSON object as a dict) of kind `kind`."""
    packer = _PACKERS.get(kind)
    if packer is not None and type(data) is dict:
        try:
            return packer(data)
        except _NotCompact:
            pass
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return bytes((JSON_FORMAT,)) + text.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------
# Reading: bayes_engine.eventlog_reader, imported on first use (replay, the
# shadow tools, bayes.event_input), so that a backend's first message does
# not compile it.
# --------------------------------------------------------------------------


def unpack(kind, blob):
    """The event input (a dict, the JSON shape of bayes_engine.events) stored as `blob` for kind `kind`."""
    from . import eventlog_reader

    return eventlog_reader.unpack(kind, blob)


def input_text(kind, blob):
    """The stored input as JSON text (bayes.event_input)."""
    from . import eventlog_reader

    return eventlog_reader.input_text(kind, blob)
