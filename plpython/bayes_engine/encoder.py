"""Observation encoding (MODEL.md section 3): text and timing become evidence.

:func:`encode_message` turns one player message into an :class:`Observation`:
per-metric positive and negative evidence (before scaling, halving and the
budget of section 4), the number of metric features that fired, the vice
weights and the HMM symbols. It is a pure function of its arguments.

Words match on word boundaries in the lower-cased text: the text is split
into runs of word characters (``\\w+``, Unicode-aware), and each run is looked
up in the lexicons, so "high" never matches "highway" and "real" never
matches "really". Counts are occurrences.
"""

import re

from .vocab import VICES as VICE_NAMES

POSITIVE = frozenset(
    "love amazing wonderful beautiful great happy excited thank appreciate care adore perfect "
    "incredible sweet kind".split()
)
NEGATIVE = frozenset(
    "hate boring annoying stupid ugly angry frustrated disappointed terrible awful worst whatever fine goodbye".split()
)
PERSONAL = frozenset("feel think want like love miss hope dream fear wish remember".split())
HUMOR_WORDS = frozenset("haha hahaha lol lmao rofl hehe".split())
HUMOR_EMOJI = ("\U0001f602", "\U0001f923", "\U0001f606")  # 😂 🤣 😆
VICE_WORDS = (
    frozenset("debate think logic smart read theory argue philosophy science intellectual research".split()),
    frozenset("dare risk adventure crazy wild extreme adrenaline dangerous spontaneous impulsive".split()),
    frozenset("drink bar party wine beer smoke weed high club cocktail shots".split()),
    frozenset("kiss touch attractive sexy bed desire body lips cuddle intimate".split()),
    frozenset("feel heart soul intense passion cry deeply overwhelm emotion burning".split()),
    frozenset("rules rebel authority system break illegal convention defy against freedom".split()),
    frozenset("dark morbid dead twisted ironic gallows sick disturbing macabre inappropriate".split()),
    frozenset("afraid fear weak vulnerable honest real scared open secret confession".split()),
)
EMOTIONAL_VICE = 4  # symbol 5 (emotional_content) also fires on vice-4 words

# Feature table of section 3: name -> ((metric index, evidence), ...).
# Metric indexes follow vocab.METRIC_KEYS (i, p, t, s); evidence < 0 is negative.
FEATURES = {
    "long": ((0, 0.35), (1, 0.15)),
    "medium": ((0, 0.15),),
    "short": ((0, -0.12), (1, -0.045)),
    "quick_reply": ((2, 0.30), (3, 0.15)),
    "slow_reply": ((3, -0.25),),
    "personal_question": ((0, 0.56), (2, 0.35)),
    "questions": ((2, 0.15),),
    "warm": ((1, 0.49),),
    "warm_one": ((1, 0.15),),
    "cold": ((1, -0.42), (2, -0.25)),
    "cold_one": ((1, -0.12),),
    "steady": ((3, 0.30),),
    "absent": ((3, -0.49), (2, -0.12)),
}

LONG_CHARS = 300
MEDIUM_CHARS = 150
SHORT_CHARS = 20
SYMBOL_LONG_CHARS = 200
SYMBOL_SHORT_CHARS = 30
VICE_LONG_CHARS = 200
VICE_LONG_BONUS = 1.3
QUICK_FRACTION = 0.5  # quick reply: gap < 0.5 * fast_c
SLOW_FRACTION = 0.8  # slow reply: gap > 0.8 * slow_c
STEADY_MESSAGES = 3  # 1st-3rd message of the UTC day
STEADY_MAX_GAP_S = 24 * 3600
ABSENT_GAP_S = 48 * 3600
FAST_SYMBOL_S = 120  # symbols 7/8/9: < 2 min, > 30 min, otherwise
SLOW_SYMBOL_S = 1800
EMOJI_HEAVY = 3


LEXICON_NAMES = ("positive", "negative", "personal", "humor")  # then one per vice: vice_<name>


class Lexicon:
    """The word lists and the feature evidence of section 3, compiled for :func:`encode_message`.

    ``words`` are the lexicons by name (positive, negative, personal, humor,
    vice_<vice name>): each entry a lower-case word, matched on word
    boundaries, or a token without word characters (an emoji), counted as
    occurrences in the text. ``evidence`` maps each feature of
    :data:`FEATURES` and ``intercept`` to its signed evidence per metric
    (METRIC_KEYS order). Built once per parameter revision
    (:func:`lexicon_of`), or from the defaults (:data:`DEFAULT_LEXICON`).
    """

    __slots__ = ("index", "symbols", "evidence", "intercept", "evidence_by_features")

    def __init__(self, words: dict, evidence: dict) -> None:
        lists = [words[name] for name in LEXICON_NAMES] + [words["vice_" + v] for v in VICE_NAMES]
        index = {}
        symbols = {}
        for position, entries in enumerate(lists):
            for entry in entries:
                target = index if _WORD.fullmatch(entry) else symbols
                target.setdefault(entry, set()).add(position)
        self.index = {word: _hits(lists_of) for word, lists_of in index.items()}
        self.symbols = tuple((token, _hits(lists_of)) for token, lists_of in sorted(symbols.items()))
        self.evidence = {
            name: tuple((metric, value) for metric, value in enumerate(evidence[name]) if value) for name in FEATURES
        }
        self.intercept = tuple((metric, value) for metric, value in enumerate(evidence["intercept"]) if value)
        # (plus, minus) of each combination of features seen (a few hundred at most), as evidence_of sums them.
        self.evidence_by_features = {}


def _hits(lists_of: set) -> tuple:
    """(positive, negative, personal, humor, vice indexes) of an entry found in the lists `lists_of`."""
    return (
        int(0 in lists_of),
        int(1 in lists_of),
        int(2 in lists_of),
        int(3 in lists_of),
        tuple(j for j in range(len(VICE_NAMES)) if 4 + j in lists_of),
    )


def default_words() -> dict:
    """The lexicons of MODEL.md section 3 by name, each a sorted list (the seed of bayes.params)."""
    words = {
        "positive": POSITIVE,
        "negative": NEGATIVE,
        "personal": PERSONAL,
        "humor": HUMOR_WORDS | frozenset(HUMOR_EMOJI),
    }
    for name, lexicon in zip(VICE_NAMES, VICE_WORDS):
        words["vice_" + name] = lexicon
    return {name: sorted(entries) for name, entries in words.items()}


def default_evidence() -> dict:
    """Section 3's feature table as {feature: 4 signed evidences in METRIC_KEYS order}, plus the intercept (0)."""
    table = {}
    for name, pairs in FEATURES.items():
        row = [0.0, 0.0, 0.0, 0.0]
        for metric, value in pairs:
            row[metric] += value
        table[name] = tuple(row)
    table["intercept"] = (0.0, 0.0, 0.0, 0.0)
    return table


def evidence_of(features, lexicon: "Lexicon") -> tuple:
    """(plus, minus) per metric of the features that fired, and the intercept, under `lexicon`'s evidence."""
    plus = [0.0, 0.0, 0.0, 0.0]
    minus = [0.0, 0.0, 0.0, 0.0]
    for name in features:
        for metric, value in lexicon.evidence[name]:
            if value > 0:
                plus[metric] += value
            else:
                minus[metric] -= value
    for metric, value in lexicon.intercept:
        if value > 0:
            plus[metric] += value
        else:
            minus[metric] -= value
    return plus, minus


_WORD = re.compile(r"\w+")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


def default_lexicon() -> Lexicon:
    """MODEL.md's lists and weights as a :class:`Lexicon`, built on first use: a database
    backend encodes with its parameters' own (params.lexicon_of) and never needs it."""
    lexicon = globals().get("DEFAULT_LEXICON")
    if lexicon is None:
        lexicon = globals()["DEFAULT_LEXICON"] = Lexicon(default_words(), default_evidence())
    return lexicon


def __getattr__(name):
    """DEFAULT_LEXICON: :func:`default_lexicon`."""
    if name == "DEFAULT_LEXICON":
        return default_lexicon()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Observation:
    """What one message says, before the per-message rules of section 4.

    ``plus`` and ``minus`` are the summed positive and negative evidence per
    metric (METRIC_KEYS order, both >= 0); ``features`` the names of the
    metric features that fired (their count is the message's
    ``observations``); ``vices`` the 8 Dirichlet increments; ``symbols`` the
    sorted HMM symbol indexes.
    """

    __slots__ = ("plus", "minus", "features", "vices", "symbols")

    def __init__(self, plus, minus, features, vices, symbols):
        self.plus = plus
        self.minus = minus
        self.features = features
        self.vices = vices
        self.symbols = symbols

    @property
    def observations(self) -> int:
        return len(self.features)

    def to_json(self) -> dict:
        """The observation as stored in the event log (what replay re-applies)."""
        return {
            "plus": self.plus,
            "minus": self.minus,
            "features": self.features,
            "vices": self.vices,
            "symbols": self.symbols,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Observation":
        return cls(
            [float(x) for x in data["plus"]],
            [float(x) for x in data["minus"]],
            list(data["features"]),
            [float(x) for x in data["vices"]],
            [int(x) for x in data["symbols"]],
        )

    def __eq__(self, other):
        return isinstance(other, Observation) and self.to_json() == other.to_json()

    def __repr__(self):
        return f"Observation({self.to_json()!r})"


def is_word(entry: str) -> bool:
    """A lexicon entry matched on word boundaries: one run of word characters."""
    return _WORD.fullmatch(entry) is not None


def is_symbol(entry: str) -> bool:
    """A lexicon entry counted as occurrences in the text: no word character at all, no white space."""
    return _WORD.search(entry) is None and not any(ch.isspace() for ch in entry)


def count_emoji(text: str) -> int:
    """Code points in U+1F300-U+1FAFF or U+2600-U+27BF."""
    return len(_EMOJI.findall(text))


def encode_message(text, gap_s, topic_changed, day_position, fast_s, slow_s, lexicon=None) -> Observation:
    """Encode one message.

    text: the message; gap_s: reply gap in seconds or None (unknown);
    topic_changed: True, False or None (not reported); day_position: the
    message's number within its UTC day (the first is 1), or None when not
    known; fast_s, slow_s: the chapter's fast_c and slow_c; lexicon: the
    word lists and feature evidence (:class:`Lexicon`; the parameters' own:
    :func:`lexicon_of`; None: MODEL.md's, :data:`DEFAULT_LEXICON`).
    """
    if lexicon is None:
        lexicon = default_lexicon()
    length = len(text)
    lowered = text.lower()
    words = _WORD.findall(lowered)
    positive = negative = personal = humor = 0
    vice_matches = [0, 0, 0, 0, 0, 0, 0, 0]
    index = lexicon.index
    found = list(filter(None, map(index.get, words)))  # the hits of the words in the lexicons, in text order
    for token, hits in lexicon.symbols:
        found.extend([hits] * lowered.count(token))
    for p, n, s, h, vices in found:
        positive += p
        negative += n
        personal += s
        humor += h
        for j in vices:
            vice_matches[j] += 1
    questions = text.count("?")
    emoji = count_emoji(text)
    known_gap = gap_s is not None

    features = []
    if length > LONG_CHARS:
        features.append("long")
    elif length > MEDIUM_CHARS:
        features.append("medium")
    elif length < SHORT_CHARS:
        features.append("short")
    if known_gap and gap_s < QUICK_FRACTION * fast_s:
        features.append("quick_reply")
    if known_gap and gap_s > SLOW_FRACTION * slow_s:
        features.append("slow_reply")
    if questions >= 1 and personal >= 1:
        features.append("personal_question")
    elif questions >= 2:
        features.append("questions")
    if positive >= 2:
        features.append("warm")
    elif positive == 1:
        features.append("warm_one")
    if negative >= 2:
        features.append("cold")
    elif negative == 1:
        features.append("cold_one")
    if known_gap and day_position is not None and day_position <= STEADY_MESSAGES and gap_s < STEADY_MAX_GAP_S:
        features.append("steady")
    if known_gap and gap_s > ABSENT_GAP_S:
        features.append("absent")

    known = lexicon.evidence_by_features.get(tuple(features))
    if known is None:
        known = lexicon.evidence_by_features[tuple(features)] = evidence_of(features, lexicon)
    plus, minus = list(known[0]), list(known[1])

    if any(vice_matches):
        bonus = VICE_LONG_BONUS if length > VICE_LONG_CHARS else 1.0
        vices = [min(1.0, bonus * min(1.0, 0.25 * m)) for m in vice_matches]
    else:
        vices = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # min(1.0, bonus * min(1.0, 0.25 * 0)) for each

    symbols = []
    if length > SYMBOL_LONG_CHARS:
        symbols.append(0)
    elif length < SYMBOL_SHORT_CHARS:
        symbols.append(1)
    if questions >= 1:
        symbols.append(2)
    if positive:
        symbols.append(3)
    if negative:
        symbols.append(4)
    if personal or vice_matches[EMOTIONAL_VICE]:
        symbols.append(5)
    if humor:
        symbols.append(6)
    if known_gap:
        if gap_s < FAST_SYMBOL_S:
            symbols.append(7)
        elif gap_s > SLOW_SYMBOL_S:
            symbols.append(8)
        else:
            symbols.append(9)
    if topic_changed is not None:
        symbols.append(11 if topic_changed else 10)
    if emoji >= EMOJI_HEAVY:
        symbols.append(12)
    elif emoji == 0:
        symbols.append(13)
    return Observation(plus, minus, features, vices, symbols)
