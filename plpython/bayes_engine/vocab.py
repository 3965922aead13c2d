"""Fixed vocabularies of MODEL.md section 1. Order matters: arrays are indexed by it."""

CHAPTERS = (1, 2, 3, 4, 5)

METRIC_KEYS = ("i", "p", "t", "s")
METRIC_NAMES = ("intimacy", "passion", "trust", "secureness")
# Composite weights, in METRIC_KEYS order. Fixed (section 1), not a parameter:
# the generated column user_bayesian_state.composite (bayes.state_composite)
# uses the same numbers, and a stored generated column cannot read a table.
METRIC_WEIGHTS = (0.30, 0.25, 0.25, 0.20)

VICES = (
    "intellectual_dominance",
    "risk_taking",
    "substances",
    "sexuality",
    "emotional_intensity",
    "rule_breaking",
    "dark_humor",
    "vulnerability",
)

MOODS = ("content", "playful", "anxious", "avoidant", "defensive", "withdrawn")

SYMBOLS = (
    "long_message",
    "short_message",
    "question",
    "compliment",
    "complaint",
    "emotional_content",
    "humor",
    "fast_response",
    "slow_response",
    "normal_response",
    "topic_continuation",
    "topic_change",
    "emoji_heavy",
    "no_emoji",
)
