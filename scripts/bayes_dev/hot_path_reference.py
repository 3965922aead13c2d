"""The per-message path as it was written before issue 15's cuts, for the tests.

Issue 15 rewrote parts of the per-message Python for speed (written-out
loops for the six moods and four metrics, the metrics' moments computed once,
fewer generators, one encoding pass in the codec, cached evidence per set of
features, a result text without json.dumps). The outputs must not move by a
single byte. This module keeps the plain versions of every rewritten piece
(loops over the vocabularies, sorts with explicit keys, each rule evaluated
as MODEL.md states it) and composes them into :func:`step`, the reference of
``bayes_engine.pg.step`` for a message; tests/unit/test_hot_path.py runs a
corpus through both and compares the texts.

The pieces the cuts did not touch (decay, the metric update, the timing
update, the delay, the encoder's matching) are called from bayes_engine.
"""

import json
import math

from bayes_engine import SCHEMA_VERSION, codec, cohort, encoder, model, rng, vocab
from bayes_engine.params import lexicon_of


def mood_step(belief, transition, emission, symbols):
    size = len(belief)
    predicted = [0.0] * size
    for i, b_i in enumerate(belief):
        if b_i:
            row = transition[i]
            for j in range(size):
                predicted[j] += b_i * row[j]
    posterior = predicted
    if symbols:
        posterior = []
        for j in range(size):
            value = predicted[j]
            row = emission[j]
            for o in symbols:
                value *= row[o]
            posterior.append(value)
        if not math.fsum(posterior) > 0.0:
            posterior = predicted
    total = math.fsum(posterior)
    return [x / total for x in posterior]


def metric_summary(state):
    metrics = {}
    composite = 0.0
    composite_var = 0.0
    for key, name, w in zip(vocab.METRIC_KEYS, vocab.METRIC_NAMES, vocab.METRIC_WEIGHTS):
        alpha, beta = state["m"][key]
        s = alpha + beta
        mean = alpha / s
        var = alpha * beta / (s * s * (s + 1.0))
        metrics[name] = {"mean": mean, "var": var}
        composite += w * mean
        composite_var += w * w * var
    return metrics, 100.0 * composite, 100.0 * math.sqrt(composite_var)


def composite_cumulants(state):
    k1 = k2 = k3 = k4 = 0.0
    for key, w in zip(vocab.METRIC_KEYS, vocab.METRIC_WEIGHTS):
        c = 100.0 * w
        alpha, beta = state["m"][key]
        s = alpha + beta
        ab = alpha * beta
        var = ab / (s * s * (s + 1.0))
        third = 2.0 * ab * (beta - alpha) / (s * s * s * (s + 1.0) * (s + 2.0))
        fourth = 6.0 * ab * ((alpha - beta) ** 2 * (s + 1.0) - ab * (s + 2.0))
        fourth /= s**4 * (s + 1.0) ** 2 * (s + 2.0) * (s + 3.0)
        c2 = c * c
        k1 += c * (alpha / s)
        k2 += c2 * var
        k3 += c2 * c * third
        k4 += c2 * c2 * fourth
    return k1, k2, k3, k4


def boss_readiness(state, params):
    threshold = params.chapter(state["c"]).boss_threshold
    k1, k2, k3, k4 = composite_cumulants(state)
    sd = math.sqrt(k2)
    z = (threshold - k1) / sd
    g1 = k3 / (k2 * sd)
    g2 = k4 / (k2 * k2)
    z2 = z * z
    he2 = z2 - 1.0
    he3 = z * (z2 - 3.0)
    he5 = z * (z2 * (z2 - 10.0) + 15.0)
    phi = 0.3989422804014327 * math.exp(-0.5 * z2)
    cdf = 0.5 * math.erfc(-z / math.sqrt(2.0)) - phi * (g1 / 6.0 * he2 + g2 / 24.0 * he3 + g1 * g1 / 72.0 * he5)
    p = min(1.0, max(0.0, 1.0 - cdf))
    return {
        "threshold": threshold,
        "p_ready": p,
        "ready": p >= params.g["ready_probability"],
        "confidence": model.confidence_label(p),
    }


def vice_summary(state):
    d = state["d"]
    total = math.fsum(d)
    mixture = [x / total for x in d]
    order = sorted(range(len(mixture)), key=lambda j: (-mixture[j], j))
    entropy = 0.0
    for p in mixture:
        if p > 0.0:
            entropy -= p * math.log2(p)
    return {"top": [[vocab.VICES[j], mixture[j]] for j in order[:3]], "entropy_bits": max(entropy, 0.0)}


def mood_name(state):
    h = state["h"]
    return vocab.MOODS[max(range(len(h)), key=lambda j: (h[j], -j))]


def decide_skip(state, params, user_id, n, session_seed):
    a_skip, a_respond, run = state["k"]
    cap = params.chapter(state["c"]).skip_cap
    theta = rng.generator(user_id, n, rng.SKIP_THETA, session_seed).betavariate(a_skip, a_respond)
    p = min(theta, cap) * 0.5**run
    if run >= params.g["max_consecutive_skips"]:
        p = 0.0
        skip = False
    else:
        skip = rng.generator(user_id, n, rng.SKIP_UNIFORM, session_seed).random() < p
    state["k"] = [a_skip, a_respond, run + 1 if skip else 0]
    return skip, p


def message_fallback(state, params, p_ready, observations, user_id, session_seed):
    g = params.g
    cap = codec.micro_tokens(g["llm_budget_tokens"])
    refill = math.floor(g["llm_budget_tokens"] * codec.MICRO / g["llm_budget_window"])
    state["lb"] = min(cap, codec.micro_tokens(state["lb"]) + refill) / codec.MICRO
    reason = model.fallback_reason(state, params, p_ready, observations)
    if reason == "bayesian_sufficient":
        audit = rng.generator(user_id, state["n"], rng.AUDIT, session_seed).random()
        reason = model.fallback_reason(state, params, p_ready, observations, audit)
    needed = False
    if reason == "cold_start":
        needed = True
    elif reason != "bayesian_sufficient" and state["lb"] >= 1.0:
        needed = True
        state["lb"] = (codec.micro_tokens(state["lb"]) - codec.MICRO) / codec.MICRO
    return {"needed": needed, "reason": reason, "budget_left": state["lb"]}


def encode_message(text, gap_s, topic_changed, position, fast_s, slow_s, lexicon):
    """encoder.encode_message with the evidence summed for every message and the vices computed for every one."""
    observation = encoder.encode_message(text, gap_s, topic_changed, position, fast_s, slow_s, lexicon)
    plus, minus = encoder.evidence_of(observation.features, lexicon)
    words = encoder._WORD.findall(text.lower())
    vice_matches = [0] * len(vocab.VICES)
    found = [lexicon.index[word] for word in words if word in lexicon.index]
    for token, hits in lexicon.symbols:
        found.extend([hits] * text.lower().count(token))
    for *_, vices in found:
        for j in vices:
            vice_matches[j] += 1
    bonus = encoder.VICE_LONG_BONUS if len(text) > encoder.VICE_LONG_CHARS else 1.0
    vices = [min(1.0, bonus * min(1.0, 0.25 * m)) for m in vice_matches]
    return encoder.Observation(plus, minus, observation.features, vices, observation.symbols)


def process_message(state, params, user_id, message, times):
    sent_at = message.sent_at
    decay_h = model.decay(state, params, times.last_message_at, times.decayed_at, sent_at)
    cp = params.chapter(state["c"])
    position = model.day_position(state, sent_at)
    observation = encode_message(
        message.text,
        message.reply_gap_s,
        message.topic_changed,
        position,
        cp.fast_reply_s,
        cp.slow_reply_s,
        lexicon_of(params),
    )
    model.update_metrics(state, observation.plus, observation.minus, params, sent_at)
    state["d"] = [d + x for d, x in zip(state["d"], observation.vices)]
    raw_a = state.get("A")
    transition = model.chapter_transition(params.g["mood_transition"] if raw_a is None else raw_a, cp.mood_volatility)
    emission = state.get("B") or params.g["mood_emission"]
    state["h"] = mood_step(state["h"], transition, emission, observation.symbols)
    model.update_timing(state, message.reply_gap_s, params)
    state["n"] += 1
    state["nc"] += 1
    n = state["n"]
    skip, p_skip = decide_skip(state, params, user_id, n, message.seed)
    delay_s = model.reply_delay(state, params, user_id, n, message.seed)
    boss = boss_readiness(state, params)
    fallback = message_fallback(state, params, boss["p_ready"], len(observation.features), user_id, message.seed)
    metrics, composite, composite_sd = metric_summary(state)
    result = {
        "n": state["n"],
        "chapter": state["c"],
        "composite": composite,
        "composite_sd": composite_sd,
        "composite_ci95": [
            max(0.0, composite - 1.959963984540054 * composite_sd),
            min(100.0, composite + 1.959963984540054 * composite_sd),
        ],
        "metrics": metrics,
        "fallback": fallback,
        "boss": boss,
        "vices": vice_summary(state),
        "mood": {"state": mood_name(state), "belief": dict(zip(vocab.MOODS, state["h"]))},
        "skip": {"skip": skip, "p": p_skip},
        "delay_s": delay_s,
        "observations": len(observation.features),
        "features": observation.features,
        "decay_hours": decay_h,
    }
    return result, observation


_BOOL = {True: "true", False: "false"}


def message_result(r):
    """The result text, field by field with f-strings (bayes_engine.wire writes it with one %-template)."""
    metrics = ",".join(
        f'"{name}":{{"mean":{r["metrics"][name]["mean"]:.6g},"var":{r["metrics"][name]["var"]:.6g}}}'
        for name in vocab.METRIC_NAMES
    )
    top = ",".join(f'["{name}",{share:.6g}]' for name, share in r["vices"]["top"])
    belief = ",".join(f'"{name}":{r["mood"]["belief"][name]:.6g}' for name in vocab.MOODS)
    features = ",".join(f'"{name}"' for name in r["features"])
    low, high = r["composite_ci95"]
    skip, fallback, boss = r["skip"], r["fallback"], r["boss"]
    return (
        f'{{"user_id":"{r["user_id"]}","message_id":{json.dumps(r["message_id"])},'
        f'"duplicate":{_BOOL[r["duplicate"]]},"version":{r["version"]},"n":{r["n"]},"chapter":{r["chapter"]},'
        f'"composite":{r["composite"]:.6g},"composite_sd":{r["composite_sd"]:.6g},'
        f'"composite_ci95":[{low:.6g},{high:.6g}],"metrics":{{{metrics}}},'
        f'"vices":{{"top":[{top}],"entropy_bits":{r["vices"]["entropy_bits"]:.6g}}},'
        f'"mood":{{"state":"{r["mood"]["state"]}","belief":{{{belief}}}}},'
        f'"skip":{{"skip":{_BOOL[skip["skip"]]},"p":{skip["p"]:.6g}}},"delay_s":{r["delay_s"]:.6g},'
        f'"observations":{r["observations"]},"features":[{features}],'
        f'"fallback":{{"needed":{_BOOL[fallback["needed"]]},"reason":"{fallback["reason"]}",'
        f'"budget_left":{fallback["budget_left"]:.12g}}},'
        f'"boss":{{"threshold":{boss["threshold"]:.6g},"p_ready":{boss["p_ready"]:.6g},'
        f'"ready":{_BOOL[boss["ready"]]},"confidence":"{boss["confidence"]}"}},'
        f'"decay_hours":{r["decay_hours"]:.6g},"mode":"{r["mode"]}"}}'
    )


def quantize_probabilities(row):
    total = math.fsum(row)
    scaled = [x / total * codec.PROBABILITY_UNITS for x in row]
    units = [math.floor(x) for x in scaled]
    missing = codec.PROBABILITY_UNITS - sum(units)
    by_remainder = sorted(range(len(row)), key=lambda j: (-(scaled[j] - units[j]), j))
    for j in by_remainder[:missing]:
        units[j] += 1
    return [u / codec.PROBABILITY_UNITS for u in units]


def encode(state):
    """codec.encode by the full validation and the generic writer (no fast path)."""
    s = codec.validate_fully(state, what="state to store")
    s["h"] = quantize_probabilities(s["h"])
    if "A" in s:
        s["A"] = [quantize_probabilities(row) for row in s["A"]]
    s["b"] = [0.0 if x < 1e-6 else x for x in s["b"][:4]] + [int(round(s["b"][4]))]
    s["lb"] = codec._Tokens(codec.tokens_text(s["lb"]))
    return codec._write({key: s[key] for key in codec.KEY_ORDER if key in s})


def step(user_id, message_id, input_text, state_text, version, last_message_at, decayed_at, params, bayes_percent):
    """bayes_engine.pg.step for a message, from the pieces above: (state text, result text, event input text)."""
    state = codec.validate_fully(codec.upgrade(json.loads(state_text), params))
    data = json.loads(input_text)
    model.check_sent_at(params, data["sent_at"], data["received_at"])
    message = model.Message(data["text"], data["sent_at"], data["reply_gap_s"], data["topic_changed"], data["seed"])
    result, observation = process_message(state, params, user_id, message, model.RowTimes(last_message_at, decayed_at))
    result.update(user_id=user_id, message_id=message_id, duplicate=False, version=version + 1)
    result["mode"] = "bayes" if cohort.user_bucket(user_id, "rollout") < round(bayes_percent * 100) else "shadow"
    event_input = {
        "v": SCHEMA_VERSION,
        "sent_at": message.sent_at,
        "reply_gap_s": message.reply_gap_s,
        "topic_changed": message.topic_changed,
        "seed": message.seed,
        "observation": observation.to_json(),
    }
    return (
        encode(state),
        message_result(result),
        json.dumps(event_input, separators=(",", ":"), allow_nan=False),
    )
