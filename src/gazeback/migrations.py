"""The only place where gazeback's schema is defined.

Never edit a migration that has been applied somewhere: add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("gazeback")


@migrations()
def m001_create_captures(db: Database) -> None:
    # One row per proxy run or import: where the rows came from, with which knowledge.
    db.table("captures").create(
        {
            "id": int,
            "source": str,  # proxy, har, mitm, pcap, demo, ...
            "tool_version": str,
            "mitmproxy_version": str,
            "tracker_list_versions": str,  # JSON: {source: version}
            "started_at": str,
            "ended_at": str,
            "file_name": str,  # imports: base name of the file
            "content_hash": str,  # imports: sha256 of the file, for idempotency
            "requests_recorded": int,
            "requests_failed": int,  # rows that could not be stored (spilled or lost)
        },
        pk="id",
    )


@migrations()
def m002_create_devices(db: Database) -> None:
    db.table("devices").create(
        {
            "id": int,
            "key": str,  # local only: ip:192.168.1.23, user:phone, port:51821 — never exported
            "label": str,
            "kind": str,  # phone, laptop, tablet, tv, speaker, camera, other
            "user_agent_family": str,
            "os_family": str,
            "first_seen_at": str,
            "last_seen_at": str,
        },
        pk="id",
        not_null={"key", "label"},
    )
    db.table("devices").create_index(["key"], unique=True)


@migrations()
def m003_create_tracker_knowledge(db: Database) -> None:
    # The tracker knowledge used for this database, so a shared file explains itself.
    db.table("companies").create(
        {
            "id": str,  # slug, e.g. "google"
            "name": str,
            "parent_id": str,  # owner chain: doubleclick -> google -> alphabet
            "owner_id": str,  # top of the chain
            "country": str,  # ISO 3166-1 alpha-2
            "website_url": str,
            "privacy_policy_url": str,
            "sources": str,  # JSON list of the lists that said so
        },
        pk="id",
    )
    db.table("trackers").create(
        {
            "id": str,
            "name": str,
            "company_id": str,
            "category": str,  # project taxonomy: advertising, analytics, cdn, ...
            "is_tracker": int,  # 0 for cdn, hosting and first_party_service entries
            "website_url": str,
            "sources": str,
        },
        pk="id",
        foreign_keys=[("company_id", "companies", "id")],
    )
    db.table("tracker_domains").create(
        {
            "domain": str,
            "tracker_id": str,
            "source": str,
            "source_version": str,
        },
        pk="domain",
        foreign_keys=[("tracker_id", "trackers", "id")],
    )


@migrations()
def m004_create_requests(db: Database) -> None:
    db.table("requests").create(
        {
            "id": int,
            "flow_id": str,  # mitmproxy flow id or an importer's stable id; makes writes idempotent
            "capture_id": int,
            "device_id": int,
            "kind": str,  # http, websocket, error, tls_failed, tunnel
            "started_at": str,  # ISO-8601 UTC
            "method": str,
            "scheme": str,
            "host": str,
            "port": int,
            "path": str,  # secrets in the query replaced by a keyed fingerprint
            "registrable_domain": str,
            "is_third_party": int,  # NULL when there was no page context to judge from
            "tracker_id": str,
            "status_code": int,
            "content_type": str,
            "request_bytes": int,
            "response_bytes": int,
            "duration_ms": float,
            "is_decrypted": int,
            "tls_sni": str,
            "server_ip": str,
            "error": str,
            "websocket_messages": int,
            "websocket_bytes": int,
            "decode_truncated": int,
            "redacted_fields": str,  # JSON list, e.g. ["header:authorization"]
        },
        pk="id",
        not_null={"flow_id", "started_at", "host", "kind"},
        foreign_keys=[
            ("capture_id", "captures", "id"),
            ("device_id", "devices", "id"),
            ("tracker_id", "trackers", "id"),
        ],
    )
    db.table("requests").create_index(["flow_id"], unique=True)
    db.table("requests").create_index(["started_at"])
    db.table("requests").create_index(["device_id", "started_at"])
    db.table("requests").create_index(["host"])
    db.table("requests").create_index(["tracker_id"])


@migrations()
def m005_create_identities_and_leaks(db: Database) -> None:
    # The person's own identifiers. Only a masked hint is kept here; the values themselves
    # live outside the database (see identity commands) so a copy of the file cannot reveal them.
    db.table("identities").create(
        {
            "id": int,
            "kind": str,  # email, phone, name, ad_id, android_id, imei, mac, location, ip, other
            "label": str,
            "masked": str,  # e.g. "j***@example.org"
            "created_at": str,
        },
        pk="id",
    )
    db.table("leaks").create(
        {
            "id": int,
            "request_id": int,
            "identity_id": int,  # NULL for unregistered persistent identifiers
            "pii_type": str,
            "transform_chain": str,
            "location": str,
            "tier": str,  # strong, medium, weak
        },
        pk="id",
        foreign_keys=[
            ("request_id", "requests", "id"),
            ("identity_id", "identities", "id"),
        ],
    )
    db.table("leaks").create_index(["request_id"])
    db.table("leaks").create_index(["identity_id"])


@migrations()
def m006_add_request_headers(db: Database) -> None:
    # Request headers as a JSON list of [name, value] pairs, secrets already replaced by
    # keyed fingerprints. Bodies are never stored.
    db.table("requests").add_column("request_headers", str)


@migrations()
def m007_create_pinned_hosts(db: Database) -> None:
    # Hosts whose TLS a client refused to open with our certificate. Later connections to
    # them are passed through undecrypted (and still counted), also after a restart.
    db.table("_pinned_hosts").create(
        {"host": str, "first_seen_at": str, "last_error": str}, pk="host", if_not_exists=True
    )


@migrations()
def m008_add_identity_values(db: Database) -> None:
    # The value itself, AES-GCM encrypted with a key derived from <db>.key (never stored here).
    db.table("identities").add_column("value_encrypted", bytes)


@migrations()
def m009_create_leaf_fingerprints(db: Database) -> None:
    # Keyed 64-bit fingerprints of each request's decoded leaves, so identities added later
    # can be found in traffic captured earlier without keeping bodies (gazeback rescan).
    db.table("leaf_fingerprints").create(
        {"request_id": int, "fingerprint": int, "location": str},
        foreign_keys=[("request_id", "requests", "id")],
    )
    db.table("leaf_fingerprints").create_index(["fingerprint"])
    db.table("leaf_fingerprints").create_index(["request_id"])


@migrations()
def m010_create_persistent_ids(db: Database) -> None:
    # ID-shaped values seen in requests, by keyed fingerprint only (never the value).
    db.table("persistent_ids").create(
        {
            "id": int,
            "fingerprint": int,
            "shape": str,  # uuid, hex, b64, digits
            "first_seen_at": str,
            "last_seen_at": str,
            "is_persistent": int,  # stable for a device and destination (>= 2 days or 3 captures)
            "is_shared": int,  # reached two or more companies (ID sharing)
        },
        pk="id",
    )
    db.table("persistent_ids").create_index(["fingerprint"], unique=True)
    db.table("persistent_id_sightings").create(
        {
            "persistent_id": int,
            "request_id": int,
            "location": str,
            "leak_id": int,  # the leaks row written once the value qualified
        },
        foreign_keys=[
            ("persistent_id", "persistent_ids", "id"),
            ("request_id", "requests", "id"),
            ("leak_id", "leaks", "id"),
        ],
    )
    db.table("persistent_id_sightings").create_index(["persistent_id"])
    db.table("persistent_id_sightings").create_index(["request_id"])


@migrations()
def m011_create_import_problems(db: Database) -> None:
    # What an import could not use: one row per defect, the rest of the file is imported.
    db.table("import_problems").create(
        {
            "id": int,
            "capture_id": int,
            "file_name": str,  # base name of the imported file
            "position": str,  # where: "entry 12", "packet 4031", "line 7", "end of file"
            "reason": str,
        },
        pk="id",
        foreign_keys=[("capture_id", "captures", "id")],
    )
    db.table("import_problems").create_index(["capture_id"])


@migrations()
def m012_add_request_app(db: Database) -> None:
    # The app that made the request, when the source knows it (App Privacy Report bundle
    # IDs, TrackerControl package names).
    db.table("requests").add_column("app", str)


def apply(db: Database) -> None:
    """Bring ``db`` to the current schema, then (re)create the views."""
    from .views import ensure_db_shape

    migrations.apply(db)
    ensure_db_shape(db)
