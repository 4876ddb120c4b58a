"""``gazeback trackers update``: refresh the sources that still have open upstreams.

Fetched (or ``--from-file``) files are parsed and merged with the other sources before
anything is written; the new index is then swapped in atomically. Any failure leaves
the previous data in use. ``fetch()`` is the only network code.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gazeback.knowledge import build as trackerbuild
from gazeback.knowledge import trackerlists
from gazeback.knowledge.classify import TrackerIndex

# Upstreams with a licence compatible with redistribution (see data/trackers-src/*/SOURCE.md).
UPSTREAMS: dict[str, str] = {
    "adguard-companiesdb/trackers.json": (
        "https://raw.githubusercontent.com/AdguardTeam/companiesdb/main/dist/trackers.json"
    ),
    "adguard-companiesdb/companies.json": (
        "https://raw.githubusercontent.com/AdguardTeam/companiesdb/main/dist/companies.json"
    ),
    "easylist/easyprivacy.txt": "https://easylist.to/easylist/easyprivacy.txt",
    "easylist/easylist.txt": "https://easylist.to/easylist/easylist.txt",
    "third-party-web/entities-nostats.json": (
        "https://cdn.jsdelivr.net/npm/third-party-web@latest/dist/entities-nostats.json"
    ),
    "third-party-web/package.json": "https://cdn.jsdelivr.net/npm/third-party-web@latest/package.json",
}
# A new list this much smaller than the one it replaces is treated as truncated.
MIN_SHRINK = 0.5


class UpdateError(ValueError):
    """The update could not be completed; the previous data is still in use."""


def fetch(urls: dict[str, str], timeout: float = 60.0) -> dict[str, bytes]:
    """Download every URL (``{name: url}``) → ``{name: bytes}``; raises UpdateError on failure."""
    out = {}
    for name, url in urls.items():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URLs
                out[name] = resp.read()
        except OSError as e:
            raise UpdateError(f"could not download {url}: {e}") from None
    return out


def match_file(path: Path) -> str:
    """Which source file a local file replaces, by its base name (``easyprivacy.txt`` …)."""
    wanted = {Path(p).name: p for p in UPSTREAMS} | {"trackers.csv": ""}
    rel = wanted.get(path.name, "")
    if not rel:
        names = ", ".join(sorted(n for n, p in wanted.items() if p))
        raise UpdateError(f"{path.name}: not a file update knows (expected one of: {names})")
    return rel


def current_sources(data_dir: Path) -> dict[str, bytes]:
    """The raw sources behind the index in use: the last update's, else the bundled ones."""
    user = data_dir / "sources.json.gz"
    path = user if user.exists() else trackerlists.sources_path()
    return trackerbuild.read_sources_bundle(path.read_bytes())


def _with_tpw_version(new: dict[str, bytes]) -> dict[str, bytes]:
    if "third-party-web/package.json" in new:
        try:
            version = str(json.loads(new.pop("third-party-web/package.json"))["version"])
        except (ValueError, KeyError, TypeError) as e:
            raise UpdateError(f"third-party-web/package.json: no version ({e})") from None
        new["third-party-web/VERSION"] = (version + "\n").encode()
    elif "third-party-web/entities-nostats.json" in new:
        digest = hashlib.sha256(new["third-party-web/entities-nostats.json"]).hexdigest()[:12]
        new["third-party-web/VERSION"] = f"sha256:{digest}\n".encode()
    return new


def update(new: dict[str, bytes], data_dir: Path) -> dict[str, Any]:
    """Validate ``new`` raw files (keyed by source path), rebuild, swap atomically.

    Returns a summary ``{"versions", "domains", "changed"}``; raises UpdateError and
    writes nothing when a file is malformed, truncated or the result fails to load.
    """
    new = _with_tpw_version(dict(new))
    old = current_sources(data_dir)
    files = {**old, **new}
    try:
        layers = {s: trackerbuild.parse_source(s, files) for s in trackerbuild.RAW_FILES}
        for source in trackerbuild.UPDATABLE:
            before = trackerbuild.parse_source(source, old) if source in _touched(new) else None
            if before and len(layers[source].domains) < MIN_SHRINK * len(before.domains):
                raise ValueError(
                    f"{trackerbuild.RAW_FILES[source][0]}: {len(layers[source].domains)} domains "
                    f"instead of {len(before.domains)} (truncated?)"
                )
        artifact = trackerbuild.serialise(trackerbuild.merge(layers))
        index = TrackerIndex(json.loads(gzip.decompress(artifact)))
    except ValueError as e:
        raise UpdateError(str(e)) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "updated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": {p: hashlib.sha256(b).hexdigest() for p, b in sorted(new.items())},
        "versions": index.versions(),
    }
    _atomic_write(data_dir / "sources.json.gz", trackerbuild.sources_bundle(files))
    _atomic_write(data_dir / "update.json", json.dumps(meta, indent=2).encode())
    _atomic_write(data_dir / "trackers.json.gz", artifact)  # last: this is what load_index reads
    return {
        "versions": index.versions(),
        "domains": len(index._domains),
        "changed": sorted(_touched(new)),
    }


def _touched(new: dict[str, bytes]) -> set[str]:
    return {s for s, paths in trackerbuild.RAW_FILES.items() if any(p in new for p in paths)}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
