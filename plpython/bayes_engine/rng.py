"""Reproducible randomness (MODEL.md section 4.4).

Every draw comes from its own generator, seeded by (user_id, n, purpose) and
an optional session seed (the setting ``bayes.seed``): the seed is the first
8 bytes (little-endian) of BLAKE2b over ``"<user_id>|<n>|<purpose>|<seed>"``
(an empty seed when the setting is unset). The generator is SplitMix64
(Steele, Lea and Flood, 2014), whose 53 high bits give each uniform; the
Beta and Normal draws are Python's ``random.Random.betavariate`` and
``gauss`` on top of it. Seeding costs one hash (Python's Mersenne Twister
would spend most of a message's budget filling its 624-word state).

A replay of the event log therefore makes the same decisions, and two
purposes never share a stream.
"""

import random

try:  # the builtin module: hashlib would first load OpenSSL (2 ms in a fresh backend)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - CPython always has _blake2
    from hashlib import blake2b

SKIP_THETA = "skip_theta"  # theta ~ Beta(a_skip, a_respond)
SKIP_UNIFORM = "skip_u"  # U ~ Uniform(0, 1), skip when U < theta
DELAY = "delay"  # y ~ N(mu, 1/tau + 1/tau_x)
AUDIT = "audit"  # U ~ Uniform(0, 1), the fallback's audit when U < audit_rate (MODEL.md section 7)

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_UNIT = 2.0**-53


def seed_of(user_id: str, n: int, purpose: str, session_seed=None) -> int:
    """The integer seed of one draw's generator."""
    key = f"{user_id}|{n}|{purpose}|{'' if session_seed is None else session_seed}"
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "little")


class SplitMix64(random.Random):
    """random.Random driven by SplitMix64: random() in [0, 1) with 53 bits."""

    def seed(self, a=None, version=2):  # noqa: D102 - random.Random API
        if not isinstance(a, int):
            raise TypeError("SplitMix64 needs an integer seed")
        self._state = a & _MASK
        self.gauss_next = None

    def random(self):
        self._state = z = (self._state + _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) >> 11) * _UNIT

    def getrandbits(self, k):
        raise NotImplementedError("SplitMix64 draws floats only")

    def getstate(self):
        return self._state, self.gauss_next

    def setstate(self, state):
        self._state, self.gauss_next = state


def generator(user_id: str, n: int, purpose: str, session_seed=None) -> SplitMix64:
    """A generator for one purpose of message n of a player."""
    return SplitMix64(seed_of(user_id, n, purpose, session_seed))


_SHARED = SplitMix64(0)


def draw(user_id: str, n: int, purpose: str, session_seed=None) -> SplitMix64:
    """The generator of :func:`generator`, without building one: a single instance of
    the module reseeded in place, good until the next call (the per-message draws
    each use theirs at once)."""
    shared = _SHARED
    shared._state = seed_of(user_id, n, purpose, session_seed)  # < 2**64: seed() would mask nothing
    shared.gauss_next = None
    return shared
