"""The health of the engine as a person would rather look at it than read it:
the recorded snapshots of bayes.health (bayes.health_snapshot, one a minute by
the pg_cron job bayes-record-health), their changes of status
(bayes.health_change) and the thresholds (bayes.health_threshold) drawn as one
small panel per main signal into a PNG; what fires now (bayes.alerts()) as one
line per alert. Shared by scripts/health and the demo (scripts/demo.py), which
draw with the same code.

Everything read here is read from the database given: nothing is computed
again in Python but the drawing."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

# The panels, in reading order: (signal, what a person asks of it).
PANELS = (
    ("fallback_rate", "messages on which the LLM was asked"),
    ("no_signal_share", "messages with no signal found"),
    ("posterior_variance", "mean variance of the players who wrote"),
    ("latency_p50_ms", "median time of a message in the database"),
    ("latency_p99_ms", "99th percentile of that time"),
    ("messages_per_second", "messages scored per second"),
    ("llm_budget_exhaustion", "budgeted LLM requests refused"),
    ("decay_lag_s", "wait of the most overdue player for decay"),
    ("retention_lag_s", "how far retention is behind its horizon"),
    ("shadow_agreement", "sign agreement with the LLM, last day"),
)
SIGNALS = tuple(signal for signal, _ in PANELS)
STATUS_COLOR = {"ok": "tab:green", "warn": "tab:orange", "critical": "tab:red"}
STATUS_RANK = {"ok": 0, "warn": 1, "critical": 2}
# Units whose panels turn logarithmic above this value when the data dwarf the thresholds.
LOG_ABOVE = {"s": 60.0, "ms": 1.0}


@dataclass(frozen=True)
class Threshold:
    warn: float | None
    critical: float | None
    direction: str
    min_samples: int
    unit: str


@dataclass(frozen=True)
class Snapshot:
    taken_at: dt.datetime
    value: float | None
    samples: int | None
    status: str


@dataclass(frozen=True)
class Change:
    changed_at: dt.datetime
    signal: str
    window_s: int | None
    label: str | None
    status_from: str
    status_to: str
    value: float | None


@dataclass(frozen=True)
class Alert:
    signal: str
    window_s: int | None
    label: str | None
    status: str
    value: float | None
    samples: int | None
    warn: float | None
    critical: float | None
    firing_since: dt.datetime
    status_since: dt.datetime


@dataclass
class HealthHistory:
    """What the picture shows: the snapshots of the main signals taken from `since` on, per signal and
    series ((window_s, label)), the changes of status in that time, the thresholds now and the alerts of
    the last snapshot."""

    database: str
    since: dt.datetime
    snapshots_taken: list[dt.datetime]
    series: dict[str, dict[tuple[int | None, str | None], list[Snapshot]]]
    changes: list[Change]
    thresholds: dict[str, Threshold]
    alerts: list[Alert]
    recorded_ever: int = 0
    last_ever: dt.datetime | None = None


def database_name(url: str) -> str:
    """host:port/dbname of a connection string, without its user and password."""
    parts = conninfo_to_dict(url)
    host = parts.get("host") or "local socket"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or '?'}"


def read_alerts(conn) -> list[Alert]:
    """bayes.alerts(): what fires at the last snapshot, worst first."""
    rows = conn.execute(
        "select signal, window_s, label, status::text, value, samples, warn, critical, firing_since, status_since"
        " from bayes.alerts()"
    ).fetchall()
    return [Alert(*row) for row in rows]


def read_history(conn, database: str, since: dt.datetime) -> HealthHistory:
    """The snapshots, changes, thresholds and alerts of the database on `conn` from `since` on."""
    recorded_ever, last_ever = conn.execute("select count(*), max(taken_at) from bayes.health_snapshot").fetchone()
    thresholds = {
        signal: Threshold(warn, critical, direction, min_samples, unit)
        for signal, warn, critical, direction, min_samples, unit in conn.execute(
            "select signal, warn, critical, direction, min_samples, unit from bayes.health_threshold"
        )
    }
    series: dict[str, dict[tuple[int | None, str | None], list[Snapshot]]] = {s: {} for s in SIGNALS}
    taken: set[dt.datetime] = set()
    with conn.cursor() as cur:
        cur.execute(
            "select taken_at, signal, window_s, label, value, samples, status::text from bayes.health_snapshot"
            " where taken_at >= %s and signal = any(%s) order by taken_at",
            (since, list(SIGNALS)),
        )
        for taken_at, signal, window_s, label, value, samples, status in cur:
            series[signal].setdefault((window_s, label), []).append(Snapshot(taken_at, value, samples, status))
            taken.add(taken_at)
    changes = [
        Change(*row)
        for row in conn.execute(
            "select changed_at, signal, window_s, label, status_from::text, status_to::text, value"
            " from bayes.health_change where changed_at >= %s and signal = any(%s) order by changed_at",
            (since, list(SIGNALS)),
        )
    ]
    return HealthHistory(
        database=database,
        since=since,
        snapshots_taken=sorted(taken),
        series=series,
        changes=changes,
        thresholds=thresholds,
        alerts=read_alerts(conn),
        recorded_ever=recorded_ever,
        last_ever=last_ever,
    )


def window_name(window_s: int | None) -> str:
    """300 -> '5 min', 3600 -> '1 h', 86400 -> '24 h', None -> 'instant' (a lag or a size)."""
    if window_s is None:
        return "instant"
    if window_s % 3600 == 0:
        return f"{window_s // 3600} h"
    if window_s % 60 == 0:
        return f"{window_s // 60} min"
    return f"{window_s} s"


def format_value(value: float | None, unit: str) -> str:
    """A value in its unit, as a person reads it: shares in percent, seconds and bytes in larger units."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "s":
        return format_seconds(value)
    if unit == "bytes":
        for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value >= size:
                return f"{value / size:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "variance":
        return f"{value:.4f}"
    if unit == "messages/s":
        return f"{value:.3g}/s"
    return f"{value:.3g} {unit}"


def format_seconds(seconds: float) -> str:
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {name}"
    return f"{seconds:.0f} s"


def series_name(signal: str, window_s: int | None, label: str | None) -> str:
    """fallback_rate over 300 s -> 'fallback_rate (5 min)'; with a label: 'shadow_agreement{shadow} (24 h)'."""
    labelled = f"{signal}{{{label}}}" if label is not None else signal
    return f"{labelled} ({window_name(window_s)})"


def alert_line(alert: Alert, unit: str, direction: str | None = None) -> str:
    """One line per firing alert: its status, series, value against the threshold it crossed, samples, and
    since when it fires. tests/e2e/test_health_picture.py reads these lines back. The threshold's direction
    (above, below), when not given, is read from the thresholds' order (below: critical under warn)."""
    crossed = alert.critical if alert.status == "critical" else alert.warn
    if direction is None:
        below = alert.critical is not None and alert.warn is not None and alert.critical < alert.warn
        direction = "below" if below else "above"
    sign = "<" if direction == "below" else ">"
    samples = "" if alert.samples is None else f", {alert.samples} samples"
    since = f"firing since {alert.firing_since:%Y-%m-%d %H:%M:%S} UTC"
    if alert.status_since != alert.firing_since:
        since += f", {alert.status} since {alert.status_since:%Y-%m-%d %H:%M:%S} UTC"
    return (
        f"{alert.status.upper():<8} {series_name(alert.signal, alert.window_s, alert.label)}:"
        f" {format_value(alert.value, unit)} {sign} {alert.status} {format_value(crossed, unit)}{samples}; {since}"
    )


def alert_lines(history_or_alerts, thresholds: dict[str, Threshold] | None = None) -> list[str]:
    """The alert lines of a HealthHistory, or of a list of alerts with the thresholds' units."""
    if isinstance(history_or_alerts, HealthHistory):
        alerts, thresholds = history_or_alerts.alerts, history_or_alerts.thresholds
    else:
        alerts = history_or_alerts
    return [
        alert_line(a, thresholds[a.signal].unit, thresholds[a.signal].direction)
        if a.signal in thresholds
        else alert_line(a, "")
        for a in alerts
    ]


def health_table(conn) -> list[str]:
    """bayes.health() now as a compact table: one line per signal (and label), a column per window with the
    value and its status, the thresholds last. A labelled row that is zero or empty in every window (a
    fallback reason that never fired) is left out; a signal of the instant or of its own window (a lag, a
    size, the last day's agreement) has its value in the first column and its window in its name."""
    rows = conn.execute(
        "select signal, window_s, label, value, status::text, warn, critical, unit from bayes.health()"
    ).fetchall()
    main_windows = sorted({w for _, w, _, _, _, _, _, _ in rows if w is not None and w < 86400})
    lines: dict[tuple[str, str | None, int | None], dict] = {}
    for signal, window_s, label, value, status, warn, critical, unit in rows:
        own = window_s if window_s not in main_windows else -1  # -1: one of the columns
        line = lines.setdefault((signal, label, own), {"cells": {}, "warn": warn, "critical": critical, "unit": unit})
        line["cells"][window_s] = (value, status)
    width = 34
    header = f"  {'signal':<{width}}" + "".join(f" {window_name(w):<19}" for w in main_windows)
    out = [header + " thresholds: warn / critical"]
    for (signal, label, own), line in lines.items():
        values = [v for v, _ in line["cells"].values()]
        if label is not None and not any(values):
            continue
        name = f"{signal}{{{label}}}" if label is not None else signal
        if own != -1:
            name += f" ({window_name(own)})"
        cells = [line["cells"].get(w) for w in (main_windows if own == -1 else [own])]
        judged = line["warn"] is not None or line["critical"] is not None  # no threshold: no status to show
        text = "".join(
            f" {'':<19}" if c is None else f" {format_value(c[0], line['unit']) + (' ' + c[1]) * judged:<19}"
            for c in cells
        )
        text += "".join(f" {'':<19}" for _ in range(len(main_windows) - len(cells)))
        warn, critical = line["warn"], line["critical"]
        if warn is None and critical is None:
            limits = "-"
        else:
            below = critical is not None and warn is not None and critical < warn
            unit = line["unit"]
            limits = f"{'below ' if below else ''}{format_value(warn, unit)} / {format_value(critical, unit)}"
        out.append(f"  {name:<{width}}{text} {limits}")
    return out


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC)


def draw(history: HealthHistory, path: Path, progress: Callable[[str], None] = lambda _: None) -> Path:
    """One panel per main signal over the snapshots of `history`: a line per window (and label), the warn
    and critical thresholds of now as dashed lines, every change of status as a marker coloured by the new
    status (a triangle up when it got worse, down when better) with a thin line down the panel, and each
    panel's status at the last snapshot in its corner; a last cell lists what fires (bayes.alerts())."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    if not history.snapshots_taken:
        raise ValueError("no snapshots to draw")
    first, last = history.snapshots_taken[0], history.snapshots_taken[-1]
    columns, rows = 3, math.ceil((len(PANELS) + 1) / 3)
    fig, grid = plt.subplots(rows, columns, figsize=(15, 3.1 * rows + 1.2), squeeze=False)
    # fixed margins: the grid is regular, and the constrained layout took half of the drawing's time
    fig.subplots_adjust(left=0.055, right=0.99, top=0.92, bottom=0.085, hspace=0.52, wspace=0.2)
    fig.suptitle(
        f"Engine health of {history.database}: {len(history.snapshots_taken)} snapshots of bayes.health,"
        f" {utc(first):%Y-%m-%d %H:%M:%S} to {utc(last):%Y-%m-%d %H:%M:%S} UTC",
        fontsize=12,
        fontweight="bold",
    )
    cells = list(grid.flat)
    window_colors = ("tab:blue", "tab:purple", "tab:brown", "tab:gray")
    span = (last - first).total_seconds()
    for n, (ax, (signal, question)) in enumerate(zip(cells, PANELS)):
        progress(f"panel {n + 1} of {len(PANELS)}: {signal}")
        threshold = history.thresholds.get(signal)
        unit = threshold.unit if threshold else ""
        series = history.series.get(signal, {})
        keys = sorted(series, key=lambda k: (k[0] is None, k[0] or 0, k[1] or ""))
        worst = "ok"
        for i, key in enumerate(keys):
            points = series[key]
            x = [utc(p.taken_at) for p in points]
            y = [math.nan if p.value is None else p.value for p in points]
            few = len(points) <= 60
            color = window_colors[i % len(window_colors)]
            name = key[1] if key[1] is not None else window_name(key[0])  # a label has one window
            # the first window wide, the next ones thin on top: where they agree both stay visible
            width, size = (2.8, 5) if i == 0 else (1.2, 3)
            ax.plot(x, y, color=color, linewidth=width, marker="o" if few else None, markersize=size, label=name)
            if STATUS_RANK[points[-1].status] > STATUS_RANK[worst] and points[-1].taken_at == last:
                worst = points[-1].status
        if threshold is not None:
            for level, color in (("warn", STATUS_COLOR["warn"]), ("critical", STATUS_COLOR["critical"])):
                value = getattr(threshold, level)
                if value is not None:
                    ax.axhline(value, color=color, linestyle="--", linewidth=1)
                    ax.annotate(
                        f"{level} {format_value(value, unit)}",
                        xy=(0, value),
                        xycoords=("axes fraction", "data"),
                        xytext=(3, 1),
                        textcoords="offset points",
                        ha="left",
                        va="bottom",
                        fontsize=7,
                        color=color,
                    )
        for change in history.changes:
            if change.signal != signal:
                continue
            color = STATUS_COLOR[change.status_to]
            worse = STATUS_RANK[change.status_to] > STATUS_RANK[change.status_from]
            at = utc(change.changed_at)
            ax.axvline(at, color=color, linewidth=0.6, alpha=0.5)
            if change.value is not None:
                ax.scatter([at], [change.value], marker="^" if worse else "v", s=42, color=color, zorder=4)
        ax.set_title(f"{signal} ({unit})\n{question}", fontsize=9, loc="left")
        ax.text(
            0.99,
            0.97,
            worst.upper(),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            fontweight="bold",
            color="white",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": STATUS_COLOR[worst], "edgecolor": "none"},
        )
        values = [p.value for k in keys for p in series[k] if p.value is not None]
        levels = [v for v in (threshold.warn, threshold.critical) if v is not None] if threshold else []
        top = max([*values, *levels, 0.0])
        if unit in LOG_ABOVE and values and levels and max(values) > 10 * max(levels):
            # a lag of days next to thresholds of minutes, a first call of 70 ms next to 1 ms: linear up to
            # a minute (a millisecond), logarithmic above it, so that both stay readable
            ax.set_yscale("symlog", linthresh=LOG_ABOVE[unit])
            ax.set_ylim(0, top * 3)
        else:
            ax.set_ylim(0, top * 1.15 or 1)
        if unit == "share":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        elif unit == "s":
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_seconds(v)))
        if threshold is not None and threshold.min_samples:
            ax.text(
                0.99,
                0.02,
                f"always ok under {threshold.min_samples} samples",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.45",
            )
        if keys:
            # above the panel, right of its title: never over the data, the thresholds or the status
            ax.legend(loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, frameon=False, ncol=len(keys))
        else:
            ax.text(0.5, 0.5, "no snapshot of this signal", transform=ax.transAxes, ha="center", color="0.5")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        # every panel over the same span, the snapshots' (a signal seen at one snapshot only would otherwise
        # get an axis of its own around that instant)
        pad = dt.timedelta(seconds=max(span * 0.03, 1.0))
        ax.set_xlim(first - pad, last + pad)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # 6 leaves spans with no interval (a warning)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if span < 3 * 3600 else "%d %b %H:%M", tz=dt.UTC))
    for ax in cells[len(PANELS) + 1 :]:
        ax.axis("off")
    text = cells[len(PANELS)]
    text.axis("off")
    lines = alert_lines(history)
    text.set_title(f"firing at the last snapshot (bayes.alerts()): {len(lines)}", fontsize=9, loc="left")
    for k, (alert, line) in enumerate(zip(history.alerts[:12], lines[:12])):
        text.text(0, 0.95 - 0.075 * k, line.split(";")[0], fontsize=7, color=STATUS_COLOR[alert.status], va="top")
    if len(lines) > 12:
        text.text(0, 0.95 - 0.075 * 12, f"... and {len(lines) - 12} more", fontsize=7, va="top")
    if not lines:
        text.text(0, 0.9, "nothing: every signal is ok", fontsize=9, color=STATUS_COLOR["ok"], va="top")
    handles = [
        Line2D([], [], color=STATUS_COLOR["warn"], linestyle="--", label="warn threshold (bayes.health_threshold)"),
        Line2D([], [], color=STATUS_COLOR["critical"], linestyle="--", label="critical threshold"),
        Line2D([], [], marker="^", color="0.3", linestyle="", label="status got worse (bayes.health_change)"),
        Line2D([], [], marker="v", color="0.3", linestyle="", label="status got better"),
    ]
    handles += [Line2D([], [], marker="s", color=c, linestyle="", label=s) for s, c in STATUS_COLOR.items()]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=7, fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    progress(f"writing {path}")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
