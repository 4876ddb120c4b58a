"""Build dashboards/static/world-110m.json: the world map the dashboard draws offline.

Input: ``countries-110m.json`` from the npm package world-atlas 2.0.2 (ISC licence,
Michael Bostock; geometry from Natural Earth, public domain), and pycountry for the
ISO 3166-1 numeric → alpha-2 table. Each country geometry gets ``properties.iso2`` and
``properties.name`` so the dashboard can join on ``companies.country`` (alpha-2).

Example:

    python scripts/build_world_map.py package/countries-110m.json dashboards/static/world-110m.json
"""

from __future__ import annotations

import json
import sys

import pycountry

# Natural Earth shapes without an ISO numeric code in world-atlas (id missing)
BY_NAME = {"Kosovo": "XK", "N. Cyprus": "CY", "Somaliland": "SO"}


def main(src: str, dst: str) -> None:
    doc = json.load(open(src))
    for geom in doc["objects"]["countries"]["geometries"]:
        name = geom.get("properties", {}).get("name", "")
        code = None
        if geom.get("id"):
            country = pycountry.countries.get(numeric=str(geom["id"]).zfill(3))
            code = country.alpha_2 if country else None
        code = code or BY_NAME.get(name)
        geom["properties"] = {"iso2": code, "name": name}
        geom.pop("id", None)
    doc.get("objects", {}).pop("land", None)
    with open(dst, "w") as f:
        json.dump(doc, f, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
