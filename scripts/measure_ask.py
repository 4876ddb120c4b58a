"""Figures for docs/guide/ask-them.md (issue #15), from tests/data/ask_labeled.csv.

    python scripts/measure_ask.py [--before OLD_trackers.json.gz] [--trail DB]

- owner agreement: tracker rows whose resolved ultimate owner matches the labelled current
  owner (each label cites its public source in the CSV);
- tracker share: of the requests to a host other than the page's site, how many are called
  trackers, against how many the labels call trackers — with the current rule (top-level
  visits are first party; payments/maps/translation are services) and, with ``--before``,
  with an older artifact and no first-party rule;
- coverage (``--trail``): share of tracker requests whose company resolves to a datenanfragen
  record, and the companies missing.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gazeback.db import asks
from gazeback.knowledge import datenanfragen, letters
from gazeback.knowledge import trackerlists as tl
from gazeback.knowledge.classify import TrackerIndex, classify, registrable_domain
from gazeback.models import Observation

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "ask_labeled.csv"


def rows(path: Path = LABELS) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def observation(row: dict[str, str]) -> Observation:
    url = urlsplit(row["url"])
    headers = tuple(
        (f"sec-fetch-{k}", row[f"fetch_{k}"]) for k in ("mode", "dest", "site") if row[f"fetch_{k}"]
    )
    return Observation(
        flow_id="label", kind="http", started_at="2026-12-01T00:00:00Z", device=None,  # type: ignore[arg-type]
        method="GET", scheme=url.scheme, host=url.hostname or "", port=443,
        path=url.path + (f"?{url.query}" if url.query else ""), query=(),
        request_headers=headers, request_body=None, content_type=None, user_agent=None,
        referer=row["page"] or None, origin=None, sec_fetch_site=row["fetch_site"] or None,
        status_code=200, request_bytes=0, response_bytes=0, duration_ms=None,
        is_decrypted=True, tls_sni=None, server_ip=None, error=None,
    )  # fmt: skip


def _key(name: str | None) -> str:
    return datenanfragen.name_key(name or "")


def owner_agreement(
    index: TrackerIndex, labels: list[dict[str, str]]
) -> tuple[int, int, list[str]]:
    """(agreeing, labelled, misses) over rows with a labelled owner."""
    hits, total, misses = 0, 0, []
    for row in labels:
        if not row["owner"]:
            continue
        total += 1
        m = index.lookup(urlsplit(row["url"]).hostname or "")
        got = m.owner_name if m else None
        if m and _key(got) == _key(row["owner"]):
            hits += 1
        else:
            misses.append(f"{urlsplit(row['url']).hostname}: {got} (labelled {row['owner']})")
    return hits, total, misses


def accuracy_owner_ids(index: TrackerIndex) -> tuple[int, int, list[str]]:
    """Owner agreement on tests/data/tracker_accuracy.csv (labels written for issue #4)."""
    path = ROOT / "tests" / "data" / "tracker_accuracy.csv"
    with path.open(newline="", encoding="utf-8") as f:
        labelled = [r for r in csv.DictReader(f) if r["expected_owner"]]
    misses = []
    for r in labelled:
        m = index.lookup(r["host"])
        if not m or m.owner_id != r["expected_owner"]:
            misses.append(
                f"{r['host']}: {m.owner_id if m else None} (labelled {r['expected_owner']})"
            )
    return len(labelled) - len(misses), len(labelled), misses


def called_tracker(index: TrackerIndex, row: dict[str, str], rule: bool) -> bool:
    obs = observation(row)
    c = classify(obs, index)
    if not rule:  # before: the tracker knowledge alone decides
        return bool(c.is_tracker)
    return bool(c.is_tracker) and c.is_third_party is not False


def tracker_share(index: TrackerIndex, labels: list[dict[str, str]], rule: bool) -> dict[str, Any]:
    """Among requests to another site than the page's, or top-level visits."""
    other = [
        r for r in labels
        if not r["page"] or registrable_domain(urlsplit(r["page"]).hostname or "")
        != registrable_domain(urlsplit(r["url"]).hostname or "")
    ]  # fmt: skip
    called = [r for r in other if called_tracker(index, r, rule)]
    wrong = [r["url"] for r in other if (r in called) != (r["label"] == "tracker")]
    return {
        "requests": len(other),
        "called": len(called),
        "labelled": sum(r["label"] == "tracker" for r in other),
        "wrong": wrong,
    }


def coverage(db_path: Path, index: TrackerIndex) -> tuple[int, int, Counter[str]]:
    import sqlite_utils

    from_db = sqlite_utils.Database(db_path)
    directory = datenanfragen.load()
    total, found, missing = 0, 0, Counter[str]()
    sql = (
        "select r.tracker_id, count(*) from requests r join trackers t on t.id = r.tracker_id "
        "where t.is_tracker = 1 group by 1"
    )
    for tid, n in from_db.execute(sql):
        cid = index.tracker(tid).get("company_id")
        total += n
        if not cid or cid not in index.companies:
            missing["(no company known)"] += n
            continue
        comp = asks.company(index, cid, [tid])
        if letters.recipient(directory, comp, "en")[0]:
            found += n
        else:
            missing[comp.name] += n
    return found, total, missing


def main(argv: list[str]) -> int:
    labels = rows()
    now = TrackerIndex(tl.read_artifact(tl.bundled_path()))
    indexes = [("after", now, True)]
    if "--before" in argv:
        old = TrackerIndex(tl.read_artifact(Path(argv[argv.index("--before") + 1])))
        indexes.insert(0, ("before", old, False))
    for name, index, rule in indexes:
        hits, total, misses = owner_agreement(index, labels)
        share = tracker_share(index, labels, rule)
        ok, n, acc_misses = accuracy_owner_ids(index)
        print(f"{name}: owner agreement on tracker_accuracy.csv {ok}/{n} = {ok / n:.1%}")
        for m in acc_misses:
            print(f"  miss {m}")
        print(f"{name}: owner agreement {hits}/{total} = {hits / total:.1%}")
        for m in misses:
            print(f"  miss {m}")
        print(
            f"{name}: {share['called']}/{share['requests']} requests to another site called "
            f"trackers = {share['called'] / share['requests']:.1%} "
            f"(labelled trackers: {share['labelled']}); {len(share['wrong'])} disagree with the labels"
        )
        for w in share["wrong"]:
            print(f"  disagrees: {w}")
    if "--trail" in argv:
        found, total, missing = coverage(Path(argv[argv.index("--trail") + 1]), now)
        print(f"coverage: {found:,}/{total:,} tracker requests = {found / total:.1%}")
        for name, n in missing.most_common(10):
            print(f"  missing {name}: {n:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
