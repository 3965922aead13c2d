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
"""

from . import codec, model
from .encoder import Observation
from .errors import DATA_CORRUPTED, BayesError


def apply_message(
    state,
    params,
    user_id,
    text,
    sent_at,
    last_message_at,
    decayed_at,
    reply_gap_s=None,
    topic_changed=None,
    session_seed=None,
    observation=None,
):
    """One message (model.process_message); returns (result, event input)."""
    result, observation = model.process_message(
        state,
        params,
        user_id,
        text,
        sent_at,
        last_message_at,
        decayed_at,
        reply_gap_s,
        topic_changed,
        session_seed,
        observation,
    )
    event_input = {
        "sent_at": sent_at,
        "reply_gap_s": reply_gap_s,
        "topic_changed": topic_changed,
        "seed": session_seed,
        "observation": observation.to_json(),
    }
    return result, event_input


def apply_llm_scores(state, params, deltas):
    result = model.apply_llm_scores(state, params, deltas)
    return result, {"deltas": deltas}


def apply_outcome(state, params, decision, engaged):
    result = model.record_outcome(state, params, decision, engaged)
    return result, {"decision": decision, "engaged": bool(engaged)}


def apply_chapter(state, params, chapter):
    """Returns (changed, result, event input)."""
    previous = state["c"]
    changed = model.advance_chapter(state, params, chapter)
    result = model.summary(state, params)
    result["previous_chapter"] = previous
    result["changed"] = changed
    return changed, result, {"chapter": chapter}


def decayed_text(params, state_text, last_message_at, decayed_at, now):
    """A stored state decayed up to `now` (section 5); the bulk decay's batch step (bulk.py) equals it row by row."""
    state = codec.decode(state_text)
    model.decay(state, params, last_message_at, decayed_at, now)
    return codec.encode_decayed(state)


def replay(params, user_id, events, start_chapter=1, decayed_to=None):
    """Rebuild a state from (kind, input) pairs in log order; returns its encoded text.

    The first state is the one the RPCs create for a new player (chapter 1
    priors). Each event is decoded, applied and encoded again, exactly as
    the SQL functions do, so the result equals the stored state. The bulk
    decay writes no event: `decayed_to` (the row's decayed_at) decays the
    result up to where the stored state has been decayed. Because decay
    composes, that equals the stored state up to the rounding of the
    states the bulk runs stored in between (6 significant digits).
    """
    text = codec.encode(codec.default_state(start_chapter, params))
    last_message_at = decayed_at = None
    for position, (kind, data) in enumerate(events):
        state = codec.decode(text)
        try:
            if kind == "message":
                sent_at = data["sent_at"]
                apply_message(
                    state,
                    params,
                    str(user_id),
                    None,
                    sent_at,
                    last_message_at,
                    decayed_at,
                    data["reply_gap_s"],
                    data["topic_changed"],
                    data["seed"],
                    Observation.from_json(data["observation"]),
                )
                last_message_at = sent_at if last_message_at is None else max(last_message_at, sent_at)
                decayed_at = sent_at if decayed_at is None else max(decayed_at, sent_at)
            elif kind == "llm_scores":
                apply_llm_scores(state, params, data["deltas"])
            elif kind == "outcome":
                apply_outcome(state, params, data["decision"], data["engaged"])
            elif kind == "chapter":
                apply_chapter(state, params, data["chapter"])
            else:
                raise KeyError(kind)
        except (KeyError, TypeError, ValueError) as exc:
            raise BayesError(
                DATA_CORRUPTED,
                f"event {position} ({kind}) of player {user_id} cannot be replayed: {exc!r}",
                "bayes.player_event rows are append-only; check for manual edits",
            ) from None
        text = codec.encode(state)
    if decayed_to is not None and last_message_at is not None and decayed_to > decayed_at:
        text = decayed_text(params, text, last_message_at, decayed_at, decayed_to)
    return text
