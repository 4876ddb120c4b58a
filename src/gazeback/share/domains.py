"""Which domains an anonymized export may name: a reviewed allowlist and a sensitive list.

Both are bundled text files, so the exporter and every recipient's verifier judge a file
by the same pinned lists (their SHA-256 goes into ``export_lists``), whatever tracker data
the owner has updated to since:

- ``data/export-domains.txt``: ``role domain`` per line, the tracker domains that may
  appear, generated from the bundled tracker knowledge by ``scripts/build_export_domains.py``
  (which leaves out websites people open themselves and every sensitive domain) and
  reviewed as a diff whenever it changes;
- ``data/sensitive-domains.txt``: ``category domain`` per line (health, sexuality,
  religion, politics, finance), never named, not even as a tracker.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

CATEGORIES = ("health", "sexuality", "religion", "politics", "finance")


def _lines(name: str) -> list[tuple[str, str]]:
    text = resources.files("gazeback").joinpath("data", name).read_text(encoding="utf-8")
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        first, _, domain = line.partition(" ")
        if not domain or " " in domain.strip():
            raise ValueError(f"{name} line {n}: expected 'label domain', got {line!r}")
        out.append((first, domain.strip()))
    return out


@lru_cache(maxsize=1)
def sensitive_domains() -> dict[str, str]:
    """eTLD+1 → category (health, sexuality, religion, politics, finance)."""
    out = dict((d, c) for c, d in _lines("sensitive-domains.txt"))
    bad = set(out.values()) - set(CATEGORIES)
    if bad:
        raise ValueError(f"sensitive-domains.txt: unknown categories {sorted(bad)}")
    return out


@lru_cache(maxsize=1)
def export_domains() -> dict[str, str]:
    """eTLD+1 → role for the reviewed tracker domains an export may name."""
    return dict((d, r) for r, d in _lines("export-domains.txt"))


def is_sensitive(domain: str) -> bool:
    """``domain`` or one of its parents is on the sensitive list."""
    sensitive = sensitive_domains()
    d = domain.lower().rstrip(".")
    while True:
        if d in sensitive:
            return True
        _, dot, d = d.partition(".")
        if not dot or "." not in d:
            return d in sensitive
