""" "Is decryption working?": per device, how much of its recent traffic gazeback could look
inside, and which hosts (and apps) refused gazeback's certificate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from gazeback.knowledge.apps import app_name

# requests.kind values for connections gazeback could not open:
#   tls_failed — the client refused our certificate (pinning, or CA not installed yet)
#   tunnel     — passed through undecrypted afterwards (or an ignored host)
UNDECRYPTED_KINDS = ("tls_failed", "tunnel")
# the kinds that say whether decryption works: a connection that failed before any TLS
# (kind "error": the server could not be reached) or one gazeback refused says nothing
LOOKED_AT_KINDS = ("http", "websocket", *UNDECRYPTED_KINDS)


@dataclass
class DeviceDecryption:
    device: str
    connections: int
    decrypted: int
    refusing: list[str] = field(default_factory=list)  # "host" or "app: host"
    last_seen_at: str | None = None
    ever_decrypted: bool = False  # anything from this device ever looked inside
    failed: int = 0  # connections that never reached their server (not counted above)

    @property
    def share(self) -> float:
        return self.decrypted / self.connections if self.connections else 0.0

    @property
    def verdict(self) -> str:
        """A plain-words answer for the person."""
        if not self.connections:
            return "no traffic yet: is the device connected?"
        if self.decrypted == 0 and not self.ever_decrypted:
            return (
                "gazeback's certificate is not installed on this device yet: open "
                "http://mitm.it on the device, install the certificate and trust it"
            )
        if self.decrypted == 0:
            return (
                "nothing looked inside lately, though it worked before: is gazeback's "
                "certificate still installed and trusted?"
            )
        if self.refusing:
            return (
                "working; some apps accept only their own certificate and refuse gazeback's "
                "(listed below, still counted)"
            )
        return "working"


def since(minutes: float, now: datetime | None = None) -> str:
    at = (now or datetime.now(UTC)) - timedelta(minutes=minutes)
    return at.strftime("%Y-%m-%dT%H:%M:%S")


def check(db: Database, minutes: float = 10, now: datetime | None = None) -> list[DeviceDecryption]:
    """Per device seen in the last ``minutes`` (and every added device, even if silent)."""
    cutoff = since(minutes, now)
    out: dict[int, DeviceDecryption] = {}
    looked = "('" + "', '".join(LOOKED_AT_KINDS) + "')"
    for r in db.query(
        f"select d.id, d.label, coalesce(sum(r.kind in {looked}), 0) as n, "
        "coalesce(sum(r.kind in ('http', 'websocket') and r.is_decrypted), 0) as dec, "
        "coalesce(sum(r.kind = 'error'), 0) as failed, max(r.started_at) as last, "
        "exists(select 1 from requests x where x.device_id = d.id and x.is_decrypted = 1 "
        "and x.kind in ('http', 'websocket')) as ever from devices d "
        "join requests r on r.device_id = d.id and r.started_at >= :cutoff "
        "group by d.id order by d.label",
        {"cutoff": cutoff},
    ):
        out[r["id"]] = DeviceDecryption(
            r["label"], r["n"], r["dec"], last_seen_at=r["last"], ever_decrypted=bool(r["ever"]),
            failed=r["failed"],
        )  # fmt: skip
    for r in db.query(
        "select distinct r.device_id, r.host, r.app from requests r "
        "where r.started_at >= :cutoff and r.is_decrypted = 0 "
        "and r.kind in ('tls_failed', 'tunnel') order by r.host",
        {"cutoff": cutoff},
    ):
        if r["device_id"] in out:
            name = f"{app_name(r['app'])}: {r['host']}" if r["app"] else r["host"]
            if name not in out[r["device_id"]].refusing:
                out[r["device_id"]].refusing.append(name)
    if "device_setups" in db.table_names():
        for r in db.query(
            "select d.id, d.label from device_setups s join devices d on d.id = s.device_id"
        ):
            out.setdefault(r["id"], DeviceDecryption(r["label"], 0, 0))
    return sorted(out.values(), key=lambda d: d.device)
