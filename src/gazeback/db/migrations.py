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
    from gazeback.db.views import ensure_db_shape

    migrations.apply(db)
    ensure_db_shape(db)


# Summary tables the dashboards read: one row per hour, device, app, host, tracker, kind and
# decryption state (and per type of personal data for leaks), kept current by triggers
# on every write to `requests` and `leaks`, so the store needs no extra call and a
# million-request trail still answers in milliseconds. `summaries.rebuild(db)` recomputes
# them from scratch.
SUMMARY_SQL = """
create table if not exists summary_hourly (
  hour text not null,            -- substr(started_at, 1, 13): 2026-11-27T06
  device_id integer not null,    -- 0 when unknown
  app text not null,             -- '' when unknown (requests.app)
  host text not null,
  tracker_id text not null,      -- '' when no list knows the host
  kind text not null,
  is_decrypted integer not null,
  requests integer not null default 0,
  leaks integer not null default 0,
  request_bytes integer not null default 0,
  response_bytes integer not null default 0,
  primary key (hour, device_id, app, host, tracker_id, kind, is_decrypted)
) without rowid;
create index if not exists summary_hourly_tracker on summary_hourly (tracker_id, hour);
create index if not exists summary_hourly_host on summary_hourly (host, hour);
create index if not exists summary_hourly_device on summary_hourly (device_id, hour);
create index if not exists summary_hourly_app on summary_hourly (app, hour);

create table if not exists summary_leaks (
  hour text not null,
  device_id integer not null,
  app text not null,
  host text not null,
  tracker_id text not null,
  pii_type text not null,
  transform_chain text not null,
  location text not null,
  leaks integer not null default 0,
  primary key (hour, device_id, app, host, tracker_id, pii_type, transform_chain, location)
) without rowid;
create index if not exists summary_leaks_tracker on summary_leaks (tracker_id, hour);
create index if not exists summary_leaks_host on summary_leaks (host, hour);
create index if not exists summary_leaks_app on summary_leaks (app, hour);

-- While the writer stores a batch, a row here (inside its transaction, so no other connection
-- ever sees it) turns the insert triggers off: the batch is added to the summaries in one
-- grouped statement per table instead (summaries.add_batch, #19). Every other insert fires them.
create table if not exists _summary_deferred (deferred integer not null);

create trigger if not exists summary_requests_insert after insert on requests
when not exists (select 1 from _summary_deferred) begin
  insert into summary_hourly (hour, device_id, app, host, tracker_id, kind, is_decrypted,
    requests, request_bytes, response_bytes)
  values (substr(new.started_at, 1, 13), coalesce(new.device_id, 0), coalesce(new.app, ''),
    new.host, coalesce(new.tracker_id, ''), new.kind, coalesce(new.is_decrypted, 0), 1,
    coalesce(new.request_bytes, 0), coalesce(new.response_bytes, 0))
  on conflict do update set requests = requests + 1,
    request_bytes = request_bytes + excluded.request_bytes,
    response_bytes = response_bytes + excluded.response_bytes;
end;

create trigger if not exists summary_requests_delete after delete on requests begin
  update summary_hourly set requests = requests - 1,
    leaks = leaks - (select count(*) from leaks where request_id = old.id),
    request_bytes = request_bytes - coalesce(old.request_bytes, 0),
    response_bytes = response_bytes - coalesce(old.response_bytes, 0)
  where hour = substr(old.started_at, 1, 13) and device_id = coalesce(old.device_id, 0)
    and app = coalesce(old.app, '')
    and host = old.host and tracker_id = coalesce(old.tracker_id, '') and kind = old.kind
    and is_decrypted = coalesce(old.is_decrypted, 0);
  update summary_leaks set leaks = leaks - (
      select count(*) from leaks l where l.request_id = old.id
        and l.pii_type = summary_leaks.pii_type
        and coalesce(l.transform_chain, '') = summary_leaks.transform_chain
        and coalesce(l.location, '') = summary_leaks.location)
  where hour = substr(old.started_at, 1, 13) and device_id = coalesce(old.device_id, 0)
    and app = coalesce(old.app, '')
    and host = old.host and tracker_id = coalesce(old.tracker_id, '');
end;

create trigger if not exists summary_requests_update
after update of started_at, device_id, app, host, tracker_id, kind, is_decrypted,
  request_bytes, response_bytes on requests begin
  update summary_hourly set requests = requests - 1,
    leaks = leaks - (select count(*) from leaks where request_id = old.id),
    request_bytes = request_bytes - coalesce(old.request_bytes, 0),
    response_bytes = response_bytes - coalesce(old.response_bytes, 0)
  where hour = substr(old.started_at, 1, 13) and device_id = coalesce(old.device_id, 0)
    and app = coalesce(old.app, '')
    and host = old.host and tracker_id = coalesce(old.tracker_id, '') and kind = old.kind
    and is_decrypted = coalesce(old.is_decrypted, 0);
  insert into summary_hourly (hour, device_id, app, host, tracker_id, kind, is_decrypted,
    requests, leaks, request_bytes, response_bytes)
  values (substr(new.started_at, 1, 13), coalesce(new.device_id, 0), coalesce(new.app, ''),
    new.host, coalesce(new.tracker_id, ''), new.kind, coalesce(new.is_decrypted, 0), 1,
    (select count(*) from leaks where request_id = new.id),
    coalesce(new.request_bytes, 0), coalesce(new.response_bytes, 0))
  on conflict do update set requests = requests + 1, leaks = leaks + excluded.leaks,
    request_bytes = request_bytes + excluded.request_bytes,
    response_bytes = response_bytes + excluded.response_bytes;
  update summary_leaks set leaks = leaks - (
      select count(*) from leaks l where l.request_id = old.id
        and l.pii_type = summary_leaks.pii_type
        and coalesce(l.transform_chain, '') = summary_leaks.transform_chain
        and coalesce(l.location, '') = summary_leaks.location)
  where hour = substr(old.started_at, 1, 13) and device_id = coalesce(old.device_id, 0)
    and app = coalesce(old.app, '')
    and host = old.host and tracker_id = coalesce(old.tracker_id, '');
  insert into summary_leaks (hour, device_id, app, host, tracker_id, pii_type, transform_chain,
    location, leaks)
  select substr(new.started_at, 1, 13), coalesce(new.device_id, 0), coalesce(new.app, ''),
    new.host, coalesce(new.tracker_id, ''), pii_type, coalesce(transform_chain, ''),
    coalesce(location, ''), count(*)
  from leaks where request_id = new.id group by 6, 7, 8
  on conflict do update set leaks = leaks + excluded.leaks;
end;

create trigger if not exists summary_leaks_insert after insert on leaks
when not exists (select 1 from _summary_deferred) begin
  update summary_hourly set leaks = leaks + 1
  where (hour, device_id, app, host, tracker_id, kind, is_decrypted) = (
    select substr(started_at, 1, 13), coalesce(device_id, 0), coalesce(app, ''), host,
      coalesce(tracker_id, ''), kind, coalesce(is_decrypted, 0)
    from requests where id = new.request_id);
  insert into summary_leaks (hour, device_id, app, host, tracker_id, pii_type, transform_chain,
    location, leaks)
  select substr(started_at, 1, 13), coalesce(device_id, 0), coalesce(app, ''), host,
    coalesce(tracker_id, ''), new.pii_type, coalesce(new.transform_chain, ''),
    coalesce(new.location, ''), 1
  from requests where id = new.request_id
  on conflict do update set leaks = leaks + 1;
end;

create trigger if not exists summary_leaks_delete after delete on leaks begin
  update summary_hourly set leaks = leaks - 1
  where (hour, device_id, app, host, tracker_id, kind, is_decrypted) = (
    select substr(started_at, 1, 13), coalesce(device_id, 0), coalesce(app, ''), host,
      coalesce(tracker_id, ''), kind, coalesce(is_decrypted, 0)
    from requests where id = old.request_id);
  update summary_leaks set leaks = leaks - 1
  where (hour, device_id, app, host, tracker_id, pii_type, transform_chain, location) = (
    select substr(started_at, 1, 13), coalesce(device_id, 0), coalesce(app, ''), host,
      coalesce(tracker_id, ''), old.pii_type, coalesce(old.transform_chain, ''),
      coalesce(old.location, '')
    from requests where id = old.request_id);
end;
"""

# Hours before the rollup horizon (`rollups`, m041) have no detail left to count: a rebuild
# keeps their summary rows as they are and recomputes the hours after it.
# summary_leaks rows from the leak rows a `where` picks (the fill below; summaries.py's
# leaks written while a writer's batch is deferred), grouped by their request's key.
SUMMARY_LEAKS_BY_KEY = """
insert into summary_leaks (hour, device_id, app, host, tracker_id, pii_type, transform_chain,
  location, leaks)
select substr(r.started_at, 1, 13), coalesce(r.device_id, 0), coalesce(r.app, ''), r.host,
  coalesce(r.tracker_id, ''), l.pii_type, coalesce(l.transform_chain, ''),
  coalesce(l.location, ''), count(*)
from leaks l join requests r on r.id = l.request_id
where {where}
group by 1, 2, 3, 4, 5, 6, 7, 8"""

SUMMARY_FILL_SQL = (
    """
create table if not exists rollups (id integer primary key, horizon text not null,
  ran_at text not null, requests integer not null, include_imports integer not null);
delete from summary_hourly where hour >= (select coalesce(max(horizon), '') from rollups);
delete from summary_leaks where hour >= (select coalesce(max(horizon), '') from rollups);
insert into summary_hourly (hour, device_id, app, host, tracker_id, kind, is_decrypted,
  requests, leaks, request_bytes, response_bytes)
select substr(r.started_at, 1, 13), coalesce(r.device_id, 0), coalesce(r.app, ''), r.host,
  coalesce(r.tracker_id, ''), r.kind, coalesce(r.is_decrypted, 0), count(*),
  coalesce(sum((select count(*) from leaks where request_id = r.id)), 0),
  coalesce(sum(r.request_bytes), 0), coalesce(sum(r.response_bytes), 0)
from requests r where r.started_at >= (select coalesce(max(horizon), '') from rollups)
group by 1, 2, 3, 4, 5, 6, 7;
"""
    + SUMMARY_LEAKS_BY_KEY.format(
        where="r.started_at >= (select coalesce(max(horizon), '') from rollups)"
    )
    + ";\n"
)


def sql_statements(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies stay whole)."""
    import sqlite3

    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


@migrations()
def m016_create_dashboard_summaries(db: Database) -> None:
    # Per-hour summaries for the dashboards, filled from the rows already stored.
    for statement in sql_statements(SUMMARY_SQL + SUMMARY_FILL_SQL):
        db.execute(statement)


@migrations()
def m017_index_requests_for_drilldowns(db: Database) -> None:
    # Drill-down pages list a host's, a company's or a device's requests newest first.
    db.table("requests").create_index(["host", "started_at"], if_not_exists=True)
    db.table("requests").create_index(["tracker_id", "started_at"], if_not_exists=True)
    db.table("requests").create_index(["kind", "started_at"], if_not_exists=True)


@migrations()
def m018_create_glossary_words(db: Database) -> None:
    # Plain words the dashboards use for personal data, transforms, categories and
    # countries (filled and refreshed from gazeback.glossary on every apply).
    db.table("glossary_words").create({"kind": str, "key": str, "words": str}, pk=("kind", "key"))


@migrations()
def m025_create_device_setups(db: Database) -> None:
    # Devices the person added with `gazeback device add` (or workshop seats): how each one
    # connects. The WireGuard keys stay in files next to the db (<db>.wireguard/, 0600);
    # the onboarding QR code (which holds the device's private key) is kept here so the
    # loopback-only dashboard can show it. Local only: never exported.
    if db.table("device_setups").exists():  # a db that ran an earlier copy of this branch
        return
    db.table("device_setups").create(
        {
            "device_id": int,
            "proxy_user": str,  # the device's proxy credential user; devices.key is user:<it>
            "wireguard_port": int,  # UDP port of this device's own WireGuard server
            "added_at": str,
            "onboarding_endpoint": str,  # host:port written into the WireGuard config
            "onboarding_qr_svg": str,  # inline SVG of the WireGuard config
            "view_token": str,  # workshop: secret part of the participant's own page
            "is_shared": int,  # workshop: participant opted in to show details to the room
        },
        pk="device_id",
        not_null={"proxy_user", "wireguard_port", "added_at"},
        defaults={"is_shared": 0},
        foreign_keys=[("device_id", "devices", "id")],
    )
    db.table("device_setups").create_index(["proxy_user"], unique=True)
    db.table("device_setups").create_index(["wireguard_port"], unique=True)


@migrations()
def m026_device_qr_codes_out_of_the_database(db: Database) -> None:
    # The onboarding QR codes hold each device's WireGuard private key, and the dashboard
    # answers any SQL over this database: they move to <db>.onboarding.json (0600), made
    # again from the key files at the next `gazeback run`. secure_delete zeroes the pages
    # the old codes sat in.
    if "onboarding_qr_svg" not in db.table("device_setups").columns_dict:
        return
    db.execute("PRAGMA secure_delete = ON")
    db.execute("alter table device_setups drop column onboarding_qr_svg")


@migrations()
def m027_create_learned_items(db: Database) -> None:
    # What adapters (knowledge/adapters/*.yaml) found in each request: the kind of data
    # (TrackHAR property), where it sat and which adapter said so. Identifier-like properties
    # keep only the keyed fingerprint (the leak detector's leaf fingerprint) and a masked
    # preview, never the value; coordinates are rounded; other values are short and scrubbed.
    # Read through the `learned` and `learned_links` views. Local only: never exported.
    if db.table("learned_items").exists():  # a db whose migration records were reset
        return
    db.table("learned_items").create(
        {
            "id": int,
            "request_id": int,
            "adapter": str,  # adapter id, e.g. google-analytics-ua
            "company": str,  # the adapter file's company
            "property": str,  # TrackHAR vocabulary name, e.g. advertisingId
            "location": str,  # query:cid, body:events.0.device.ifa, header:x-device, path:2
            "kind_group": str,  # identifier, device, activity, location
            "value": str,  # NULL for identifiers
            "fingerprint": int,  # identifiers only: keyed fingerprint (as leaf_fingerprints)
            "preview": str,  # masked identifier, or the value
        },
        pk="id",
        not_null={"request_id", "adapter", "property", "location", "kind_group"},
        foreign_keys=[("request_id", "requests", "id")],
    )
    db.table("learned_items").create_index(["request_id"])
    db.table("learned_items").create_index(["fingerprint"])
    db.table("learned_items").create_index(["company", "property"])


@migrations()
def m030_create_requests_sent(db: Database) -> None:
    # Data access requests the person sent (`gazeback request --mark-sent`, dashboard): to
    # whom, when, and by when the answer is due. No identifier is stored here.
    if db.table("requests_sent").exists():  # re-applied after a test rolled the record back
        return
    db.table("requests_sent").create(
        {
            "id": int,
            "company_id": str,  # gazeback company id (current-owner resolution)
            "company_name": str,
            "record": str,  # datenanfragen record slug; NULL when the contact was unverified
            "law": str,  # gdpr, ccpa
            "lang": str,
            "method": str,  # email, post, webform, other
            "sent_on": str,  # YYYY-MM-DD
            "due_on": str,  # YYYY-MM-DD: one month later (GDPR Art. 12(3)); CCPA 45 days
            "reminded_on": str,  # the admonition (reminder), when sent
            "complained_on": str,  # the complaint to the supervisory authority, when sent
            "answered_on": str,  # when the company answered; NULL while waiting
        },
        pk="id",
        not_null={"company_id", "sent_on", "due_on", "law", "method"},
    )
    db.table("requests_sent").create_index(["company_id"])


# Indexes that cost bytes on every request and serve no query (bench/storage.py; figures in
# docs/benchmarks.md, "Storage"): name -> the CREATE statement m039 undoes. A prefix of another
# index serves every lookup the longer one does; the others appear in no plan of a dashboard
# statement and in no statement gazeback runs (leaf fingerprints are looked up by fingerprint
# only; retention deletes them with a scan).
UNUSED_INDEXES = {
    "idx_requests_host": "create index idx_requests_host on requests (host)",
    "idx_requests_tracker_id": "create index idx_requests_tracker_id on requests (tracker_id)",
    "idx_requests_kind_started_at":
        "create index idx_requests_kind_started_at on requests (kind, started_at)",
    "idx_leaf_fingerprints_request_id":
        "create index idx_leaf_fingerprints_request_id on leaf_fingerprints (request_id)",
}  # fmt: skip


@migrations()
def m039_drop_unused_indexes(db: Database) -> None:
    # The pages they held are reused by new rows (VACUUM gives them back to the disk).
    for name in UNUSED_INDEXES:
        db.execute(f"drop index if exists [{name}]")


@migrations()
def m033_create_experiments(db: Database) -> None:
    # Before/after experiments (#16): a named experiment has conditions ("reject all",
    # "accept all"); each run of a condition is a time window (optionally one device) or
    # one capture (an import, a consent check). Repeat runs of a condition are kept apart.
    if db.table("experiments").exists():  # applied before (a migration record was removed)
        return
    db.table("experiments").create(
        {"id": int, "name": str, "created_at": str, "url": str},  # url: consent checks
        pk="id",
        not_null={"name", "created_at"},
    )
    db.table("experiments").create_index(["name"], unique=True)
    db.table("experiment_runs").create(
        {
            "id": int,
            "experiment_id": int,
            "condition": str,  # the person's label, e.g. "reject all"
            "run": int,  # 1, 2, 3 … within its condition
            "device_id": int,  # a window limited to one device (NULL: every device)
            "capture_id": int,  # a run that is one capture (import, consent check)
            "started_at": str,
            "ended_at": str,  # NULL while the run is going on
            "source": str,  # window, import, consent-check
            "banner": str,  # consent check: the CMP autoconsent recognised, or "not handled"
            "clicked_at": str,  # consent check: when the banner was answered
            "click_result": str,  # consent check: done, failed, not handled, none
            "tcf_string": str,  # consent check: the TCF v2 string the page stored, if any
            "tcf_summary": str,  # JSON: purposes / vendors consented, read from the string
        },
        pk="id",
        not_null={"experiment_id", "condition", "run", "started_at", "source"},
        foreign_keys=[
            ("experiment_id", "experiments", "id"),
            ("device_id", "devices", "id"),
            ("capture_id", "captures", "id"),
        ],
    )
    db.table("experiment_runs").create_index(["experiment_id", "condition", "run"], unique=True)


@migrations()
def m034_create_alerts(db: Database) -> None:
    # Alerts on what is new (#16): rules as data (a person switches one off), a baseline per
    # device, and what the rules raised (each alert names the first request behind it).
    if db.table("alert_rules").exists():  # applied before (a migration record was removed)
        return
    db.table("alert_rules").create(
        {"id": str, "title": str, "description": str, "enabled": int},
        pk="id",
        not_null={"title", "enabled"},
        defaults={"enabled": 1},
    )
    db.table("alert_baselines").create(
        {
            "device_id": int,
            "days": int,  # the first N days of the device are its baseline ...
            "experiment_id": int,  # ... or the runs of one experiment condition
            "condition": str,
            "set_at": str,
        },
        pk="device_id",
        foreign_keys=[("device_id", "devices", "id")],
    )
    db.table("alerts").create(
        {
            "id": int,
            "rule_id": str,
            "device_id": int,
            "subject": str,  # what is new: a company id, "company|pii_type", a host ...
            "text": str,  # the sentence shown and passed to --notify-command
            "request_id": int,  # the first request behind it
            "seen_at": str,  # when that request was sent
            "raised_at": str,  # when gazeback noticed
            "notified_at": str,  # when --notify-command was run for it
        },
        pk="id",
        not_null={"rule_id", "subject", "text", "raised_at"},
        foreign_keys=[
            ("rule_id", "alert_rules", "id"),
            ("device_id", "devices", "id"),
            ("request_id", "requests", "id"),
        ],
    )
    db.table("alerts").create_index(["rule_id", "device_id", "subject"], unique=True)
    db.table("alerts").create_index(["raised_at"])


@migrations()
def m036_add_request_app_source(db: Database) -> None:
    # Who said which app sent a request: 'reported' (the capture file names it per
    # connection: PCAPdroid, TrackerControl, App Privacy Report) or 'inferred' (gazeback
    # or the tool that wrote the file read it from the request: user agent, an app package
    # in a header or parameter). Rows that already have an app were all reported.
    if "app_source" not in db.table("requests").columns_dict:  # re-applied: already there
        db.table("requests").add_column("app_source", str)
        db.execute("update requests set app_source = 'reported' where app is not null")
    db.table("requests").create_index(["app", "started_at"], if_not_exists=True)


@migrations()
def m037_create_app_names(db: Database) -> None:
    # Names of common apps for bundle IDs and package names (filled and refreshed from the
    # bundled gazeback/data/app-names.json on every apply), so views show "Instagram" for
    # com.burbn.instagram. Public facts, exported with the knowledge tables.
    db.table("app_names").create({"app": str, "name": str}, pk="app", if_not_exists=True)


SUMMARY_TRIGGERS = (
    "summary_requests_insert",
    "summary_requests_delete",
    "summary_requests_update",
    "summary_leaks_insert",
    "summary_leaks_delete",
)


@migrations()
def m040_summaries_by_app(db: Database) -> None:
    # The summaries gain `app` in their keys ('' when unknown), so the dashboards' app filter
    # reads them too. A key column cannot be added to a WITHOUT ROWID table in place: the
    # tables are made again with the triggers and refilled from `requests`. Rows for hours
    # before the earliest request (no detail left to refill them from) are carried over.
    older = "hour < coalesce((select substr(min(started_at), 1, 13) from requests), '~')"
    kept = {t: f"_m040_{t}" for t in ("summary_hourly", "summary_leaks")}
    for table, temp in kept.items():
        db.execute(f"drop table if exists temp.{temp}")
        db.execute(f"create temp table {temp} as select * from {table} where {older}")
    for trigger in SUMMARY_TRIGGERS:
        db.execute(f"drop trigger if exists {trigger}")
    for table in kept:
        db.execute(f"drop table {table}")
    for statement in sql_statements(SUMMARY_SQL + SUMMARY_FILL_SQL):
        db.execute(statement)
    keys = {
        "summary_hourly": "hour, device_id, host, tracker_id, kind, is_decrypted, requests, "
        "leaks, request_bytes, response_bytes",
        "summary_leaks": "hour, device_id, host, tracker_id, pii_type, transform_chain, "
        "location, leaks",
    }
    for table, temp in kept.items():
        db.execute(
            f"insert into {table} (app, {keys[table]}) select '', {keys[table]} from temp.{temp}"
        )
        db.execute(f"drop table temp.{temp}")
    # The app filter marks an app "(inferred)" unless a capture reported it (app_companies: on
    # that device); this small index (reported rows only: live capture infers) answers that
    # without a scan.
    db.execute(
        "create index if not exists idx_requests_reported_app on requests (app, device_id) "
        "where app_source = 'reported'"
    )


@migrations()
def m041_create_rollups(db: Database) -> None:
    # The rollup tier (#19): detail older than a window is deleted at an hour boundary while
    # the dashboards' hourly summaries of those hours are kept. `rollups` records each run;
    # its latest horizon (first hour still in detail, e.g. 2026-09-03T14) tells
    # `summaries.rebuild` which hours it can recount. `learned_hourly` keeps what each
    # company learned, as counts per hour, device, company and kind of data (never values).
    db.execute(
        "create table if not exists rollups (id integer primary key, horizon text not null, "
        "ran_at text not null, requests integer not null, include_imports integer not null)"
    )
    db.execute(
        """create table if not exists learned_hourly (
  hour text not null,            -- substr(started_at, 1, 13)
  device_id integer not null,    -- 0 when unknown
  company text not null,         -- learned_items.company: the adapter file's company
  tracker_id text not null,      -- '' when no list knows the host
  property text not null,        -- TrackHAR vocabulary, e.g. advertisingId
  kind_group text not null,      -- identifier, device, activity, location
  items integer not null default 0,
  requests integer not null default 0,  -- requests that carried it
  primary key (hour, device_id, company, tracker_id, property, kind_group)
) without rowid"""
    )
    # A year of hourly rows: the "explained" charts join summary_leaks to leak_explanations
    # by (type, encoding, place); without this index SQLite scans the table once per kind
    # (28 s on a 300k-request year at load 15, 1.2 s with it; docs/benchmarks.md, rollup).
    db.execute(
        "create index if not exists summary_leaks_kind "
        "on summary_leaks (pii_type, transform_chain, location)"
    )


def _drop_views_reading(db: Database, table: str) -> None:
    # Views are made again after the migrations (views.ensure_db_shape); one that reads a table
    # being rebuilt would stop the rebuild (SQLite checks every view on ALTER TABLE).
    for (name,) in db.execute(
        "select name from sqlite_master where type = 'view' and sql like ?", [f"%{table}%"]
    ).fetchall():
        db.execute(f"drop view if exists [{name}]")


@migrations()
def m042_compact_leaf_fingerprints(db: Database) -> None:
    # #19: one WITHOUT ROWID table keyed by (fingerprint, request, place) instead of a rowid
    # table and its fingerprint index, and the place (url.query:em, body.json:$.user.email …)
    # as an id into the small dictionary `leaf_locations`. Rows already stored all stay.
    if db.table("leaf_locations").exists():  # applied before (a migration record was removed)
        return
    _drop_views_reading(db, "leaf_fingerprints")
    db.execute(
        "create table leaf_locations (id integer primary key, location text not null unique)"
    )
    db.execute(
        "create table leaf_fingerprints_compact ("
        " fingerprint integer not null,"
        " request_id integer not null references requests(id),"
        " location_id integer not null references leaf_locations(id),"
        " primary key (fingerprint, request_id, location_id)) without rowid"
    )
    if db.table("leaf_fingerprints").exists():
        db.execute(
            "insert into leaf_locations (location) select distinct coalesce(location, '') "
            "from leaf_fingerprints order by 1"
        )
        db.execute(
            "insert or ignore into leaf_fingerprints_compact (fingerprint, request_id, location_id)"
            " select f.fingerprint, f.request_id, l.id from leaf_fingerprints f"
            " join leaf_locations l on l.location = coalesce(f.location, '')"
            " where f.fingerprint is not null and f.request_id is not null order by 1, 2, 3"
        )
        db.execute("drop table leaf_fingerprints")
    db.execute("alter table leaf_fingerprints_compact rename to leaf_fingerprints")


@migrations()
def m043_create_header_sets(db: Database) -> None:
    # #19: an app sends the same (redacted) headers again and again. Each distinct set is
    # stored once in `header_sets` and `requests.header_set_id` points at it (Datasette shows
    # the headers as the link's label); the JSON text per request goes.
    if db.table("header_sets").exists():  # applied before (a migration record was removed)
        return
    _drop_views_reading(db, "request_headers")
    db.execute("create table header_sets (id integer primary key, headers text not null unique)")
    db.execute("alter table requests add column header_set_id integer references header_sets(id)")
    if "request_headers" in db.table("requests").columns_dict:
        db.execute(
            "insert into header_sets (headers) select distinct request_headers from requests "
            "where request_headers is not null"
        )
        db.execute(
            "update requests set header_set_id = (select id from header_sets "
            "where headers = requests.request_headers) where request_headers is not null"
        )
        db.execute("alter table requests drop column request_headers")


@migrations(transactional=False)
def m044_vacuum_after_compaction(db: Database) -> None:
    # m042 and m043 leave the rewritten `requests` rows in half-empty pages: VACUUM packs them
    # (a 1M-request trail: 755 → 558 MB, 40 s). It needs free disk for a copy of the file; when
    # it cannot run (disk full, a reader holding the file) the trail works as it is, only larger.
    import sqlite3

    if db.conn.in_transaction or not db.execute("select 1 from requests limit 1").fetchone():
        return
    try:
        db.execute("vacuum")
    except sqlite3.OperationalError:
        pass


@migrations()
def m047_summaries_added_per_batch(db: Database) -> None:
    # #19: the writer adds a batch to summary_hourly and summary_leaks in one grouped statement
    # per table (summaries.add_batch); the per-row insert triggers stand aside while it does (a
    # row in _summary_deferred, inside the writer's transaction) and fire for every other insert.
    db.execute("create table if not exists _summary_deferred (deferred integer not null)")
    db.execute("delete from _summary_deferred")  # never left behind: it only lives in a transaction
    for trigger in ("summary_requests_insert", "summary_leaks_insert"):
        db.execute(f"drop trigger if exists {trigger}")
    for statement in sql_statements(SUMMARY_SQL):
        db.execute(statement)  # `if not exists`: makes the two triggers again, with their `when`
