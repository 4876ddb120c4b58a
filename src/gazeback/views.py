"""Views that dashboards and exports read, declared as data."""

from __future__ import annotations

from sqlite_utils import Database

# name -> (tables it needs, SQL)
VIEWS: dict[str, tuple[set[str], str]] = {
    "trail": (
        {"requests", "devices", "trackers", "companies", "leaks"},
        """
select
  requests.id as request_id,
  requests.started_at,
  devices.label as device,
  requests.kind,
  requests.method,
  requests.host,
  requests.path,
  requests.registrable_domain,
  companies.name as company,
  coalesce(owners.name, companies.name) as owner,
  companies.country as country,
  trackers.name as tracker,
  trackers.category,
  coalesce(trackers.is_tracker, 0) as is_tracker,
  requests.is_third_party,
  requests.is_decrypted,
  requests.status_code,
  requests.request_bytes,
  requests.response_bytes,
  requests.error,
  (select count(*) from leaks where leaks.request_id = requests.id) as leak_count,
  requests.device_id,
  requests.capture_id,
  trackers.company_id,
  companies.owner_id,
  requests.app
from requests
left join devices on devices.id = requests.device_id
left join trackers on trackers.id = requests.tracker_id
left join companies on companies.id = trackers.company_id
left join companies as owners on owners.id = companies.owner_id
""",
    ),
    "leak_report": (
        {"requests", "devices", "trackers", "companies", "leaks", "identities"},
        """
select
  leaks.request_id,
  requests.started_at,
  devices.label as device,
  requests.host,
  companies.name as company,
  coalesce(owners.name, companies.name) as owner,
  leaks.pii_type,
  leaks.transform_chain,
  leaks.location,
  leaks.tier,
  identities.label as identity,
  leaks.identity_id,
  requests.device_id,
  trackers.category
from leaks
join requests on requests.id = leaks.request_id
left join devices on devices.id = requests.device_id
left join trackers on trackers.id = requests.tracker_id
left join companies on companies.id = trackers.company_id
left join companies as owners on owners.id = companies.owner_id
left join identities on identities.id = leaks.identity_id
""",
    ),
}


def ensure_db_shape(db: Database) -> None:
    """Create or replace every view whose tables exist."""
    tables = set(db.table_names())
    for name, (needs, sql) in VIEWS.items():
        if needs <= tables:
            db.create_view(name, sql.strip(), replace=True)
