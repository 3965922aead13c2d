"""The exposition of public.bayes_metrics, read with Prometheus's own Python
parser, and what it must say computed in Python from the rows of the last
snapshot of bayes.health (bayes.health_snapshot) and bayes.health_threshold
(tests/db/test_metrics.py, tests/e2e/test_metrics_api.py).

A sample is keyed by (family, frozenset of its labels); its value is a float,
NaN where SQL has null."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

STATUS_CODE = {"ok": 0.0, "warn": 1.0, "critical": 2.0}

# The Accept header of a Prometheus scrape with its default scrape_protocols: 2.49 to 2.55 ...
PROMETHEUS_2_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
# ... and 3.x (PrometheusText1.0.0 added, UTF-8 names allowed)
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

# The contract of docs/operations.md ("Prometheus"): each signal's metric family.
METRIC_NAMES = {
    "messages_per_second": "bayes_messages_per_second",
    "fallback_rate": "bayes_fallback_ratio",
    "llm_granted": "bayes_llm_granted_ratio",
    "llm_refused": "bayes_llm_refused_ratio",
    "llm_budget_exhaustion": "bayes_llm_budget_exhaustion_ratio",
    "no_signal_share": "bayes_no_signal_ratio",
    "posterior_variance": "bayes_posterior_variance",
    "latency_p50_ms": "bayes_message_db_time_p50_seconds",
    "latency_p99_ms": "bayes_message_db_time_p99_seconds",
    "decay_lag_s": "bayes_decay_lag_seconds",
    "retention_lag_s": "bayes_retention_lag_seconds",
    "event_log_bytes": "bayes_event_log_bytes",
    "state_table_bytes": "bayes_state_table_bytes",
    "shadow_agreement": "bayes_shadow_agreement_ratio",
}

# the last snapshot's rows, and when it was taken (epoch seconds; null: none yet)
HEALTH_SQL = (
    "select signal, window_s, label, value, status::text from bayes.health_snapshot"
    " where taken_at = (select max(taken_at) from bayes.health_snapshot)"
)
SNAPSHOT_SQL = "select extract(epoch from max(taken_at))::float8 from bayes.health_snapshot"
THRESHOLD_SQL = (
    "select signal, metric_name, metric_scale, label_name, description, warn, critical from bayes.health_threshold"
)


def parse(text: str) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, frozenset], float]]:
    """{family: (type, help)} and {(family, labels): value}; a family written twice is an error."""
    families: dict[str, tuple[str, str]] = {}
    samples: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family {family.name} is written in two places"
        families[family.name] = (family.type, family.documentation)
        for sample in family.samples:
            assert sample.name == family.name, sample
            assert sample.timestamp is None, sample
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"sample {key} is written twice"
            samples[key] = sample.value
    return families, samples


def expected(
    health_rows, threshold_rows, taken_at: float | None
) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, frozenset], float]]:
    """What the exposition must hold, from the last snapshot (HEALTH_SQL, SNAPSHOT_SQL) and
    bayes.health_threshold (THRESHOLD_SQL)."""
    thresholds = {row[0]: row for row in threshold_rows}
    families: dict[str, tuple[str, str]] = {
        "bayes_health_status": ("gauge", None),
        "bayes_health_threshold": ("gauge", None),
        "bayes_health_snapshot_timestamp_seconds": ("gauge", None),
    }
    samples: dict[tuple[str, frozenset], float] = {
        ("bayes_health_snapshot_timestamp_seconds", frozenset()): math.nan if taken_at is None else taken_at
    }
    for signal, window_s, label, value, status in health_rows:
        _, metric_name, scale, label_name, description, _, _ = thresholds[signal]
        families[metric_name] = ("gauge", description)
        labels = {}
        if window_s is not None:
            labels["window"] = str(window_s)
        if label is not None:
            labels[label_name] = label
        samples[(metric_name, frozenset(labels.items()))] = math.nan if value is None else value * scale
        samples[("bayes_health_status", frozenset({**labels, "signal": signal}.items()))] = STATUS_CODE[status]
    for signal, _, scale, _, _, warn, critical in threshold_rows:
        for level, threshold in (("warn", warn), ("critical", critical)):
            if threshold is not None:
                samples[("bayes_health_threshold", frozenset({"signal": signal, "level": level}.items()))] = (
                    threshold * scale
                )
    return families, samples


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_exposition_is(text: str, health_rows, threshold_rows, taken_at) -> dict[tuple[str, frozenset], float]:
    """The exposition holds exactly the expected families (type, HELP) and samples (labels, values)."""
    families, samples = parse(text)
    want_families, want_samples = expected(health_rows, threshold_rows, taken_at)
    assert families.keys() == want_families.keys()
    for name, (kind, help_text) in want_families.items():
        assert families[name][0] == kind, name
        if help_text is not None:
            assert families[name][1] == help_text, name
    assert samples.keys() == want_samples.keys()
    wrong = {key: (samples[key], want) for key, want in want_samples.items() if not same_value(samples[key], want)}
    assert not wrong, wrong
    return samples
