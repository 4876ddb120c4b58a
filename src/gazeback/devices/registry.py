"""The person's devices: adding one (WireGuard keys, proxy credential, QR code), listing,
removing, relabelling, and describing them from their user agents."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gazeback.db.localfiles import onboarding_path
from gazeback.devices import access, wireguard
from gazeback.knowledge.useragents import families
from gazeback.timestamps import now_iso

KINDS = ("phone", "laptop", "tablet", "tv", "speaker", "camera", "other")


@dataclass(frozen=True)
class Setup:
    """One added device and how it connects."""

    device_id: int
    label: str
    kind: str
    proxy_user: str
    wireguard_port: int
    keys_path: Path
    view_token: str | None = None
    is_shared: bool = False


def _check_label(label: str) -> None:
    if not label or not label.replace("-", "").replace("_", "").isalnum() or len(label) > 40:
        raise ValueError(f"device label {label!r}: use up to 40 letters, digits, - and _")


def setups(db: Database, db_path: Path) -> list[Setup]:
    """Every added device, in the order they were added."""
    rows = db.query(
        "select s.*, d.label, d.kind from device_setups s join devices d on d.id = s.device_id "
        "order by s.wireguard_port"
    )
    return [_setup(db_path, r) for r in rows]


def _setup(db_path: Path, r: dict[str, Any]) -> Setup:
    return Setup(
        device_id=r["device_id"],
        label=r["label"],
        kind=r["kind"] or "other",
        proxy_user=r["proxy_user"],
        wireguard_port=r["wireguard_port"],
        keys_path=wireguard.keys_path(db_path, r["proxy_user"]),
        view_token=r["view_token"],
        is_shared=bool(r["is_shared"]),
    )


def find(db: Database, db_path: Path, label: str) -> Setup:
    for setup in setups(db, db_path):
        if label in (setup.label, setup.proxy_user):
            return setup
    raise LookupError(f"no added device is called {label!r}")


def _free_port(db: Database, port: int | None) -> int:
    used = {r[0] for r in db.execute("select wireguard_port from device_setups").fetchall()}
    if port is not None:
        if port in used:
            raise ValueError(f"port {port} is already used by another device")
        return port
    port = wireguard.BASE_PORT
    while port in used:
        port += 1
    return port


def add(
    db: Database,
    db_path: Path,
    label: str,
    kind: str = "phone",
    *,
    port: int | None = None,
    endpoint_host: str | None = None,
    with_view_token: bool = False,
) -> Setup:
    """Add a device: its WireGuard keys and port, its proxy credential, its QR code."""
    _check_label(label)
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: use one of {', '.join(KINDS)}")
    if any(label in (s.label, s.proxy_user) for s in setups(db, db_path)):
        raise ValueError(f"a device called {label!r} was already added")
    wg_port = _free_port(db, port)
    endpoint_host = access.require_endpoint(endpoint_host)  # before anything is written
    keys_path = wireguard.keys_path(db_path, label)
    if keys_path.exists():  # left over from a removed device: a new device gets new keys
        keys_path.unlink()
    wireguard.create_keys(keys_path)
    access.proxy_credentials(db_path, [label])
    with db.atomic():
        device_id = db.table("devices").lookup(
            {"key": f"user:{label}"}, {"label": label, "kind": kind}
        )
        db.table("devices").update(device_id, {"label": label, "kind": kind})
        db.table("device_setups").insert(
            {
                "device_id": device_id,
                "proxy_user": label,
                "wireguard_port": wg_port,
                "added_at": now_iso(),
                "view_token": secrets.token_urlsafe(16) if with_view_token else None,
                "is_shared": 0,
            }
        )
    setup = find(db, db_path, label)
    refresh_onboarding(db, db_path, endpoint_host, [setup])
    return setup


def client_config(setup: Setup, endpoint_host: str) -> str:
    return wireguard.client_config(
        wireguard.read_keys(setup.keys_path), endpoint_host, setup.wireguard_port
    )


def qr_codes(db_path: Path) -> dict[str, str]:
    """Device id → the QR code of its WireGuard configuration (holds its private key)."""
    path = onboarding_path(db_path)
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


def _write_qr_codes(db_path: Path, codes: dict[str, str]) -> None:
    # Beside the database, never in it: the dashboard answers any SQL over the database,
    # while these are served one at a time by a route (plugin.register_routes). 0600 from
    # the first byte, replaced whole.
    path = onboarding_path(db_path)
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(codes, f)
    os.replace(tmp, path)


def refresh_onboarding(
    db: Database, db_path: Path, endpoint_host: str, only: list[Setup] | None = None
) -> None:
    """Make each device's QR code for the dashboard, pointing at ``endpoint_host``."""
    codes = qr_codes(db_path)
    for setup in only if only is not None else setups(db, db_path):
        conf = client_config(setup, endpoint_host)
        db.table("device_setups").update(
            setup.device_id, {"onboarding_endpoint": f"{endpoint_host}:{setup.wireguard_port}"}
        )
        codes[str(setup.device_id)] = wireguard.qr_svg(conf)
    _write_qr_codes(db_path, codes)


def remove(db: Database, db_path: Path, label: str) -> Setup:
    """Forget how a device connects (keys, credential, QR); its recorded trail stays."""
    from gazeback.db.wipe import shred

    setup = find(db, db_path, label)
    db.table("device_setups").delete(setup.device_id)
    codes = qr_codes(db_path)
    if codes.pop(str(setup.device_id), None) is not None:
        _write_qr_codes(db_path, codes)
    if setup.keys_path.exists():
        shred(setup.keys_path)
    creds_path = access.credentials_path(db_path)
    if creds_path.exists():
        creds = json.loads(creds_path.read_text())
        creds.pop(setup.proxy_user, None)
        creds_path.write_text(json.dumps(creds, indent=2, sort_keys=True))
    return setup


def relabel(db: Database, old: str, new: str | None = None, kind: str | None = None) -> int:
    """Rename a device (and/or change its kind); return its id."""
    rows = list(db.query("select id from devices where label = ?", [old]))
    if not rows:
        raise LookupError(f"no device is labelled {old!r} (`gazeback devices` lists them)")
    if len(rows) > 1:
        raise LookupError(f"{len(rows)} devices are labelled {old!r}; rename them by id")
    update: dict[str, str] = {}
    if new:
        if new != old and db.execute("select 1 from devices where label = ?", [new]).fetchone():
            raise ValueError(f"another device is already labelled {new!r}")
        update["label"] = new
    if kind:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: use one of {', '.join(KINDS)}")
        update["kind"] = kind
    device_id = int(rows[0]["id"])
    if update:
        db.table("devices").update(device_id, update)
    return device_id


def agent_families(user_agent: str) -> tuple[str, str | None]:
    """(app or browser family, OS family): the one parser, knowledge.useragents."""
    return families(user_agent)


def describe(db: Database, sample: int = 2000) -> list[dict[str, Any]]:
    """Each device with its label, kind, and the OS and app families of its user agents
    (read from its latest ``sample`` requests)."""
    out = []
    for d in db.query(
        "select d.id, d.label, d.kind, d.first_seen_at, d.last_seen_at, "
        "s.wireguard_port, s.proxy_user, "
        "(select count(*) from requests where device_id = d.id) as requests "
        "from devices d left join device_setups s on s.device_id = d.id order by d.id"
    ):
        agents = db.execute(
            "select json_extract(h.value, '$[1]'), count(*) from ("
            "  select s.headers from requests r join header_sets s on s.id = r.header_set_id"
            "  where r.device_id = ? order by r.id desc limit ?) r, json_each(r.headers) h "
            "where lower(json_extract(h.value, '$[0]')) = 'user-agent' "
            "group by 1 order by 2 desc",
            [d["id"], sample],
        ).fetchall()
        apps: dict[str, int] = {}
        oses: dict[str, int] = {}
        for agent, n in agents:
            app, os_family = agent_families(str(agent))
            apps[app] = apps.get(app, 0) + n
            if os_family:
                oses[os_family] = oses.get(os_family, 0) + n
        out.append(
            {
                **d,
                "os_families": sorted(oses, key=lambda k: (-oses[k], k)),
                "app_families": sorted(apps, key=lambda k: (-apps[k], k)),
            }
        )
    return out
