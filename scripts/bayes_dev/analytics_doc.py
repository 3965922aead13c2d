"""The queries of docs/analytics.md, as the tests run them: on a single node
(tests/db/test_analytics.py) and at the proxy of the partitioned mode
(tests/partitions/test_partition_analytics.py)."""

from __future__ import annotations

import re

from .support import ROOT

DOC = ROOT / "docs" / "analytics.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
HEADING = re.compile(r"^#+ (.+)$", re.M)


def doc_blocks(info: str) -> list[tuple[str, str]]:
    """(id, text) of every fenced block of docs/analytics.md whose info string is exactly `info`; the id is
    the block's number among them and the slug of the heading it is under."""
    text = DOC.read_text()
    out = []
    for match in FENCE.finditer(text):
        if match.group(1).strip() != info:
            continue
        headings = HEADING.findall(text[: match.start()])
        section = re.sub(r"[^a-z0-9]+", "-", headings[-1].lower()).strip("-") if headings else "top"
        out.append((f"{len(out) + 1:02d}-{section}", match.group(2)))
    return out


def analyst_setup(role: str, bypassrls: bool = True) -> str:
    """The document's setup block for a role of another name (roles are cluster-wide)."""
    (_, sql), *more = doc_blocks("sql setup")
    assert not more, "one setup block"
    assert sql.count("create role analyst ") == 1 and "bypassrls" in sql
    sql = re.sub(r"\banalyst\b", role, sql)
    return sql if bypassrls else sql.replace(" bypassrls", " nobypassrls")
