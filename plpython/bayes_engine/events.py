"""Inputs as events: each writer applied to a state, with the event it logs,
and the replay of a player's event log.

Every write of a player's state appends one row to ``bayes.player_event``
whose ``input`` holds exactly what this module needs to apply it again. A
message event stores its *observation* (what the encoder extracted), not the
text: the log never keeps what the player wrote, and a replay reproduces the
stored state even after the lexicons change. Replaying a log with
:func:`replay` goes through the same decode/apply/encode cycle as the SQL
functions, so it rebuilds the stored state exactly, provided the parameter
tables have not changed since (replay uses the current parameters).

Events logged since schema v2 carry ``"v": 2`` in their input; older ones
carry no ``v``. Replaying a v1 event applies v1's decay formula (the only
part of the state update that v2 changed), and after it sets the LLM budget
to B, as the upgrade of a stored v1 state on read does: so the first v2
event starts from what the engine had when it wrote it.
"""

from . import SCHEMA_VERSION, codec, model
from .encoder import Observation
from .errors import DATA_CORRUPTED, BayesError


def apply_message(state, params, user_id, message, times, observation=None, schema=SCHEMA_VERSION):
    """One :class:`model.Message` (model.process_message); returns (result, event input).

    The event input is the message without its text, plus the observation.
    """
    result, observation = model.process_message(state, params, user_id, message, times, observation, schema)
    event_input = {
        "v": SCHEMA_VERSION,
        "sent_at": message.sent_at,
        "reply_gap_s": message.reply_gap_s,
        "topic_changed": message.topic_changed,
        "seed": message.seed,
        "observation": observation.to_json(),
    }
    return result, event_input


def apply_llm_scores(state, params, deltas, vices=None, mood=None):
    """The LLM's deltas as evidence; its vices and mood of the message (issue 14), when given,
    are checked and logged with them for the shadow report, and change nothing in the state."""
    model.check_llm_judgement(vices, mood)
    result = model.apply_llm_scores(state, params, deltas)
    event_input = {"v": SCHEMA_VERSION, "deltas": deltas}
    if vices is not None:
        event_input["vices"] = vices
    if mood is not None:
        event_input["mood"] = mood
    return result, event_input


def apply_outcome(state, params, decision, engaged):
    result = model.record_outcome(state, params, decision, engaged)
    return result, {"v": SCHEMA_VERSION, "decision": decision, "engaged": bool(engaged)}


def apply_chapter(state, params, chapter):
    """Returns (result, event input); result["changed"] says whether the state changed."""
    previous = state["c"]
    changed = model.advance_chapter(state, params, chapter)
    result = model.summary(state, params)
    result["previous_chapter"] = previous
    result["changed"] = changed
    return result, {"v": SCHEMA_VERSION, "chapter": chapter}


NO_TIMES = model.RowTimes()


def apply(state, params, user_id, kind, data, times=NO_TIMES, schema=SCHEMA_VERSION):
    """Any writer's input, by kind; returns (result, event input).

    `data` is a JSON object: what a writer RPC passes (a message with its
    ``text`` and ``received_at``, the database clock, which bounds its
    ``sent_at``: :func:`model.check_sent_at`), or what the event log stores (a message with its
    ``observation``, which then replaces the encoding). `times` is the row's
    :class:`model.RowTimes`, needed by a message only; `schema` the version
    of the engine that logged the event (replay: 1 for an event without "v").
    """
    if kind == "message":
        if "received_at" in data:  # a writer RPC's message (the event log holds none)
            model.check_sent_at(params, data["sent_at"], data["received_at"])
        observation = data.get("observation")
        message = model.Message(
            data.get("text"), data["sent_at"], data["reply_gap_s"], data["topic_changed"], data["seed"]
        )
        if observation is not None:
            observation = Observation.from_json(observation)
        return apply_message(state, params, user_id, message, times, observation, schema)
    if kind == "llm_scores":
        return apply_llm_scores(state, params, data["deltas"], data.get("vices"), data.get("mood"))
    if kind == "outcome":
        return apply_outcome(state, params, data["decision"], data["engaged"])
    if kind == "chapter":
        return apply_chapter(state, params, data["chapter"])
    raise KeyError(kind)


def decayed_text(params, state_text, last_message_at, decayed_at, now):
    """A stored state decayed up to `now` (section 5); the bulk decay's batch step (bulk.py) equals it row by row."""
    state = codec.decode(state_text, params)
    before = {key: list(pair) for key, pair in state["m"].items()}
    model.decay(state, params, last_message_at, decayed_at, now)
    from . import stored_decay  # not on the per-message path

    return stored_decay.encode_decayed(state, before)


class Checkpoint:
    """A replay's position after a prefix of a player's log (a row of bayes.player_checkpoint).

    `text` is the encoded state after the last folded event (None: no event
    folded yet, start from a new player's state), `last_message_at` and
    `decayed_at` the row's clock as :class:`LogReplay` tracks it (epoch
    seconds or None), `events` how many events were folded. Replaying the
    rest of the log from it equals replaying the whole log: a replay is a
    left fold of the events, and its whole state between two events is this.
    """

    __slots__ = ("text", "last_message_at", "decayed_at", "events")

    def __init__(self, text=None, last_message_at=None, decayed_at=None, events=0):
        self.text = text
        self.last_message_at = last_message_at
        self.decayed_at = decayed_at
        self.events = events

    def __eq__(self, other):
        return isinstance(other, Checkpoint) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return "Checkpoint(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


class LogReplay:
    """A player's log applied again event by event, exactly as the database applied it.

    The state starts as the RPCs create it for a new player; each event is
    decoded, applied and encoded again (``text`` holds the stored text),
    an event logged by v1 (no ``"v"``) with v1's rules and then a full LLM
    budget (as the upgrade on read), and the row's clock (last message,
    decayed up to) advanced by each message. :func:`replay` and the
    counterfactual replay of bayes_engine.shadow share it.
    """

    __slots__ = ("params", "user_id", "text", "last_message_at", "decayed_at", "position")

    def __init__(self, params, user_id, start_chapter=1, start=None):
        """`start`: a :class:`Checkpoint` to continue from (the events it folded are gone from the
        log), or None to start from the state the RPCs create for a new player."""
        self.params = params
        self.user_id = str(user_id)
        if start is None or start.text is None:
            self.text = codec.encode(codec.default_state(start_chapter, params))
            self.last_message_at = self.decayed_at = None
            self.position = 0
        else:
            self.text = start.text
            self.last_message_at, self.decayed_at = start.last_message_at, start.decayed_at
            self.position = start.events

    def checkpoint(self):
        """Where this replay stands, as a :class:`Checkpoint` that a later replay can start from."""
        return Checkpoint(self.text, self.last_message_at, self.decayed_at, self.position)

    def apply(self, kind, data, evidence=None, skip=False):
        """Apply the next logged event; returns (result, the state after it).

        `evidence(observation)`, for a message: the (plus, minus) to apply
        instead of the logged ones. `skip`: the event is passed over (its
        result is None), except for what every v1 event does to the budget.
        A log the engine cannot apply is DATA_CORRUPTED, naming the event.
        """
        state = codec.decode(self.text, self.params)
        result = None
        try:
            schema = data.get("v", 1)
            if not skip:
                if kind == "message":
                    observation = data["observation"]  # the log holds observations, never texts
                    if evidence is not None:
                        plus, minus = evidence(observation)
                        data = dict(data, observation=dict(observation, plus=plus, minus=minus))
                    times = model.RowTimes(self.last_message_at, self.decayed_at)
                    result, _ = apply(state, self.params, self.user_id, kind, data, times, schema)
                    sent_at = data["sent_at"]
                    self.last_message_at = (
                        sent_at if self.last_message_at is None else max(self.last_message_at, sent_at)
                    )
                    self.decayed_at = sent_at if self.decayed_at is None else max(self.decayed_at, sent_at)
                else:
                    result, _ = apply(state, self.params, self.user_id, kind, data, schema=schema)
            if schema == 1:  # as the upgrade on read: the v2 engine found a full budget
                state["lb"] = float(self.params.g["llm_budget_tokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BayesError(
                DATA_CORRUPTED,
                f"event {self.position} ({kind}) of player {self.user_id} cannot be replayed: {exc!r}",
                "bayes.player_event rows are append-only; check for manual edits",
            ) from None
        self.position += 1
        self.text = codec.encode(state)
        return result, state


def replay(params, user_id, events, start_chapter=1, decayed_to=None, start=None):
    """Rebuild a state from (kind, input) pairs in log order; returns its encoded text.

    The first state is the one the RPCs create for a new player (chapter 1
    priors), or the :class:`Checkpoint` `start` (the state after the events
    that retention folded and deleted; the events then are the rest of the
    log). Each event is decoded, applied and encoded again, exactly as
    the SQL functions do (:class:`LogReplay`), so the result equals the
    stored state. The bulk decay writes no event: `decayed_to` (the row's
    decayed_at) decays the result up to where the stored state has been
    decayed. Because decay composes, that equals the stored state up to the
    rounding of the states the bulk runs stored in between (6 significant
    digits).
    """
    log = LogReplay(params, user_id, start_chapter, start)
    for kind, data in events:
        log.apply(kind, data)
    if decayed_to is not None and log.last_message_at is not None and decayed_to > log.decayed_at:
        return decayed_text(params, log.text, log.last_message_at, log.decayed_at, decayed_to)
    return log.text


def fold(params, user_id, start, events, horizon):
    """Retention's step for one player: the longest prefix of his log whose events all occurred
    before `horizon` (epoch seconds), folded into a :class:`Checkpoint`.

    `events` are (event_id, kind, input, occurred_at) in log order, after the
    checkpoint `start` (None: from the first event); the iteration stops at
    the first event at or after the horizon, so a caller that streams the log
    reads only what is folded and one event more. Returns (the new
    checkpoint, the id of the last folded event or None, how many were
    folded, the occurred_at of the first event kept or None when none is).
    The prefix ends at the first recent event rather than at the last old
    one: an event sent earlier than the one before it (a send time is
    accepted up to max_message_age_h in the past) waits for the events
    before it, so a prefix is all that is ever deleted and the log left is
    the rest of the one that was folded.
    """
    log = LogReplay(params, user_id, start=start)
    last_id, folded = None, 0
    for event_id, kind, data, occurred_at in events:
        if occurred_at >= horizon:
            return log.checkpoint(), last_id, folded, occurred_at
        log.apply(kind, data)
        last_id, folded = event_id, folded + 1
    return log.checkpoint(), last_id, folded, None
