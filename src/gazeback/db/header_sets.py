"""Request headers, stored once per distinct set (#19).

An app sends the same headers request after request: ``requests.header_set_id`` points at one
row of ``header_sets`` holding the redacted headers as a JSON list of ``[name, value]`` pairs
(secrets already replaced by keyed fingerprints; never a body). Read them with
``join header_sets on header_sets.id = requests.header_set_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from gazeback.db.dictionary import dictionary_ids


def header_set_ids(db: Database, texts: Iterable[str]) -> dict[str, int]:
    """The ``header_sets`` id of each headers JSON text, adding those not stored yet."""
    return dictionary_ids(db, "header_sets", "headers", texts)


def headers_text(headers: Sequence[Sequence[str]]) -> str:
    """The stored form of a request's redacted headers."""
    return json.dumps([list(h) for h in headers], ensure_ascii=False)


def with_header_set(db: Database, row: dict[str, Any]) -> dict[str, Any]:
    """A ``requests`` row given with ``request_headers`` (JSON text) as the table stores it."""
    out = dict(row)
    text = out.pop("request_headers", None)
    out["header_set_id"] = header_set_ids(db, [text])[text] if text else None
    return out
