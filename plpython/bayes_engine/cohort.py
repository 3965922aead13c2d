"""The rollout's cohorts (issue 14): a player's stable bucket, and his mode.

The same numbers as the SQL function ``bayes.user_bucket`` (the first 32
bits of md5(``salt:user_id``), mod 10,000), computed here so that the
writers add the mode to their result without another SQL call on the
per-message path (a test checks both agree).
"""

try:  # Debian's Python (the database's) has md5 built in: hashlib's import (OpenSSL) costs a fresh backend ~3 ms
    from _md5 import md5
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import md5

BUCKETS = 10_000


def user_bucket(user_id: str, salt: str) -> int:
    """The bucket 0..9999 of player `user_id` (the canonical lower-case text of his uuid) under `salt`."""
    return int.from_bytes(md5(f"{salt}:{user_id}".encode()).digest()[:4], "big") % BUCKETS


_ROLLOUT_BUCKETS = {}  # user id -> rollout bucket, per process (a writer's result names the mode every time)
_ROLLOUT_BUCKETS_MAX = 10_000


def player_mode(user_id: str, bayes_percent: float) -> str:
    """'bayes' when the player's rollout bucket is below bayes_percent * 100, else 'shadow'.

    bayes.rollout.bayes_percent has two decimals: its hundredfold is a whole
    number, rounded here so that float arithmetic (1.1 * 100 = 110.00000000000001)
    never moves the boundary. The bucket, a function of the user id alone,
    is kept for the players this process saw last (at most 10,000).
    """
    bucket = _ROLLOUT_BUCKETS.get(user_id)
    if bucket is None:
        if len(_ROLLOUT_BUCKETS) >= _ROLLOUT_BUCKETS_MAX:
            _ROLLOUT_BUCKETS.clear()
        bucket = _ROLLOUT_BUCKETS[user_id] = user_bucket(user_id, "rollout")
    return "bayes" if bucket < round(bayes_percent * 100) else "shadow"
