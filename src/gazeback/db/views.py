"""Views that dashboards and exports read, declared as data."""

from __future__ import annotations

from sqlite_utils import Database


def _html(expr: str) -> str:
    """SQL that HTML-escapes ``expr`` (dashboard tables show cells as HTML)."""
    return (
        f"replace(replace(replace(replace({expr}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), "
        "'\"', '&quot;')"
    )


def _url(expr: str) -> str:
    """SQL that percent-encodes ``expr`` for a query-string value."""
    out = expr
    for a, b in (("%", "%25"), ("+", "%2B"), ("&", "%26"), ("#", "%23"), ('"', "%22"),
                 ("<", "%3C"), (">", "%3E"), ("'", "%27"), (" ", "+")):  # fmt: skip
        out = "replace({}, '{}', '{}')".format(out, a.replace("'", "''"), b)
    return out


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
  -- a page the person opened themselves (is_third_party 0) is never a tracker on that visit
  coalesce(trackers.is_tracker, 0) * (coalesce(requests.is_third_party, 1) != 0) as is_tracker,
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
  requests.app,
  requests.app_source
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
  trackers.category,
  requests.app
from leaks
join requests on requests.id = leaks.request_id
left join devices on devices.id = requests.device_id
left join trackers on trackers.id = requests.tracker_id
left join companies on companies.id = trackers.company_id
left join companies as owners on owners.id = companies.owner_id
left join identities on identities.id = leaks.identity_id
""",
    ),
    # Link-ready names for the dashboards: escaped for HTML, encoded for URLs.
    "dash_devices": (
        {"devices"},
        f"""
select id, label, kind, {_html("label")} as label_html, {_url("label")} as label_q,
  '<a href="/-/dashboards/device?device=' || {_url("label")} || '">' || {_html("label")}
    || '</a>' as link
from devices
""",
    ),
    # The apps the dashboards' app filter offers: the app's name where gazeback knows it,
    # marked "(inferred)" unless a capture reported it (a partial index of reported rows,
    # m040, answers that without a scan). Charts map the chosen label back to `app`.
    "dash_apps": (
        {"summary_hourly", "app_names", "requests"},
        f"""
with a as (select distinct app from summary_hourly where app != ''),
named as (
  select a.app, coalesce(n.name, a.app) || case when exists (select 1 from requests r
      where r.app = a.app and r.app_source = 'reported') then '' else ' (inferred)' end as label
  from a left join app_names n on n.app = a.app)
select app, label, {_html("label")} as label_html, {_url("app")} as app_q from named
""",
    ),
    "dash_companies": (
        {"companies", "glossary_words"},
        f"""
select c.id, c.name, {_html("c.name")} as name_html, {_url("c.name")} as name_q,
  coalesce(o.name, c.name) as owner, {_html("coalesce(o.name, c.name)")} as owner_html,
  c.country, coalesce(g.words, c.country, 'unknown') as country_name,
  '<a href="/-/dashboards/company?company=' || {_url("c.name")} || '">' || {_html("c.name")}
    || '</a>' as link
from companies c
left join companies o on o.id = c.owner_id
left join glossary_words g on g.kind = 'country' and g.key = c.country
""",
    ),
    # Apps × companies: which app let which company learn what (kinds of personal data,
    # never values), per device; the "by app" dashboard reads it. Read from the summaries
    # (their keys carry the app since m040), so it answers at once on a big trail: first
    # and last are hours, and app_source is 'reported' when a capture named the app on
    # that device (else 'inferred').
    "app_companies": (
        {
            "summary_hourly",
            "summary_leaks",
            "requests",
            "trackers",
            "companies",
            "app_names",
            "glossary_words",
        },
        """
with s as (
  select s.app, s.device_id, t.company_id, sum(s.requests) as requests,
    min(s.hour) as first_at, max(s.hour) as last_at
  from summary_hourly s join trackers t on t.id = s.tracker_id
  where s.app != '' and s.requests > 0 and coalesce(t.is_tracker, 1) = 1
  group by s.app, s.device_id, t.company_id),
l as (
  select app, device_id, company_id, group_concat(words, ', ') as learned from (
    select distinct s.app, s.device_id, t.company_id, coalesce(g.words, s.pii_type) as words
    from summary_leaks s join trackers t on t.id = s.tracker_id
    left join glossary_words g on g.kind = 'pii' and g.key = s.pii_type
    where s.app != '' and s.leaks > 0 order by 1, 2, 3, 4)
  group by app, device_id, company_id)
select
  coalesce(n.name, s.app) as app_name,
  s.app,
  case when exists (select 1 from requests r where r.app = s.app and r.app_source = 'reported'
      and r.device_id = s.device_id)
    then 'reported' else 'inferred' end as app_source,
  s.device_id,
  c.name as company,
  coalesce(o.name, c.name) as owner,
  c.country,
  s.requests,
  s.first_at,
  s.last_at,
  l.learned
from s
join companies c on c.id = s.company_id
left join companies o on o.id = c.owner_id
left join app_names n on n.app = s.app
left join l on l.app = s.app and l.device_id = s.device_id and l.company_id = s.company_id
""",
    ),
    "dash_trackers": (
        {"trackers", "glossary_words"},
        """
select t.id, t.name, t.company_id, t.category, t.is_tracker,
  coalesce(g.words, replace(t.category, '_', ' ')) as category_words
from trackers t
left join glossary_words g on g.kind = 'category' and g.key = t.category
""",
    ),
    # One row per distinct way personal data left: (pii_type, transform_chain, location)
    # with a sentence a person understands, e.g. "your email address, lower-cased, then
    # hashed with SHA-256, in the <code>ud[em]</code> parameter of the web address".
    # Built from glossary_words; HTML-escaped (the dashboards show it as HTML).
    "leak_explanations": (
        {"summary_leaks", "glossary_words"},
        """
with recursive
kinds as (select distinct pii_type, transform_chain, location from summary_leaks),
steps(pii_type, transform_chain, location, rest, step, pos) as (
  select pii_type, transform_chain, location, transform_chain || '>', '', 0 from kinds
  union all
  select pii_type, transform_chain, location, substr(rest, instr(rest, '>') + 1),
    substr(rest, 1, instr(rest, '>') - 1), pos + 1
  from steps where rest != ''
),
worded as (
  select s.pii_type, s.transform_chain, s.location, s.pos,
    case when s.step = '' then ''
      else coalesce(w.words, replace(s.step, ':', ' '))
      || case when instr(s.step, ':') and substr(s.step, instr(s.step, ':') + 1) not in ('hex', '')
           then ', written ' || coalesce(x.words, substr(s.step, instr(s.step, ':') + 1))
           else '' end
    end as words
  from steps s
  left join glossary_words w on w.kind = 'step' and w.key = case when instr(s.step, ':')
    then substr(s.step, 1, instr(s.step, ':') - 1) else s.step end
  left join glossary_words x on x.kind = 'step'
    and x.key = substr(s.step, instr(s.step, ':') + 1)
  where s.pos > 0
),
chains as (
  select pii_type, transform_chain, location,
    group_concat(nullif(words, ''), ', then ') as how
  from (select * from worded order by pos)
  group by pii_type, transform_chain, location
),
places as (
  select c.*,
    case when instr(c.location, ':') then substr(c.location, 1, instr(c.location, ':') - 1)
      else c.location end as place,
    replace(replace(replace(replace(
      case when instr(c.location, ':') then substr(c.location, instr(c.location, ':') + 1)
        else '' end, '&', '&amp;'), '<', '&lt;'), '>', ' › '), '$.', '') as field
  from chains c
)
select
  p.pii_type,
  p.transform_chain,
  p.location,
  coalesce(pii.words, replace(p.pii_type, '_', ' ')) as what,
  coalesce(p.how, '') as how,
  replace(coalesce(loc.words, 'in ' || p.place || ' {}'), '{}',
    '<code>' || p.field || '</code>') as place,
  coalesce(pii.words, replace(p.pii_type, '_', ' '))
    || case when coalesce(p.how, '') = '' then ', as it is' else ', ' || p.how end
    || ', ' || replace(coalesce(loc.words, 'in ' || p.place || ' {}'), '{}',
      '<code>' || p.field || '</code>') as sentence
from places p
left join glossary_words pii on pii.kind = 'pii' and pii.key = p.pii_type
left join glossary_words loc on loc.kind = 'location' and loc.key = p.place
""",
    ),
    # "Is decryption working?" over the last 10 minutes, per device (gazeback status does
    # the same with any window).
    "decryption_check": (
        {"requests", "devices"},
        """
select d.label as device, d.kind, count(*) as connections,
  cast(round(100.0 * sum(r.kind in ('http', 'websocket') and r.is_decrypted) / count(*)) as int)
    as decrypted_pct,
  group_concat(distinct case when r.is_decrypted = 0 and r.kind in ('tls_failed', 'tunnel')
    then coalesce(r.app || ': ', '') || r.host end) as refusing_the_certificate,
  max(r.started_at) as last_seen_at,
  exists(select 1 from requests x where x.device_id = d.id and x.is_decrypted = 1
    and x.kind in ('http', 'websocket')) as ever_decrypted
from requests r join devices d on d.id = r.device_id
where r.started_at >= strftime('%Y-%m-%dT%H:%M:%S', 'now', '-10 minutes')
  and r.kind in ('http', 'websocket', 'tls_failed', 'tunnel')
group by d.id order by d.label
""",
    ),
    # Workshop big screen: the room's aggregate. A row shows only when at least two
    # participants share it, or when every participant behind it opted in to share
    # (device_setups.is_shared), so no one's details reach the room by accident.
    **{
        f"room_{name}": (
            {"requests", "device_setups", "trackers", "companies", "glossary_words", "leaks"},
            f"""
with seen as (
  select r.device_id, r.id as request_id, c.name as company, c.country_name as country,
    coalesce(s.is_shared, 0) as shared
  from requests r join device_setups s on s.device_id = r.device_id
  join dash_trackers t on t.id = r.tracker_id and t.is_tracker
  join dash_companies c on c.id = t.company_id
)
select {key} as {label}, count(distinct device_id) as participants, {measure}
from seen {join} group by {key}
having count(distinct device_id) >= 2 or min(shared) = 1
order by participants desc, 3 desc
""",
        )
        for name, key, label, measure, join in (
            ("companies", "company", "company", "count(*) as requests", ""),
            ("countries", "country", "country", "count(*) as requests", ""),
            (
                "leaks",
                "coalesce(g.words, l.pii_type)",
                "personal_data",
                "count(*) as times",
                "join leaks l using (request_id) "
                "left join glossary_words g on g.kind = 'pii' and g.key = l.pii_type",
            ),
        )
    },
    "room_shared": (
        {"requests", "device_setups", "devices", "trackers", "leaks"},
        """
select d.label as participant, count(r.id) as requests,
  count(distinct t.company_id) as companies,
  (select count(*) from leaks l join requests q on q.id = l.request_id
   where q.device_id = d.id) as personal_data_found
from device_setups s join devices d on d.id = s.device_id
left join requests r on r.device_id = d.id
left join trackers t on t.id = r.tracker_id and t.is_tracker
where s.is_shared = 1 group by d.id order by requests desc
""",
    ),
    # What adapters found in each request (learned_items), with where and when: the value for
    # descriptive properties, the masked preview for identifiers (never the identifier).
    "learned": (
        {"learned_items", "requests", "devices", "trackers", "companies", "glossary_words"},
        f"""
select
  l.request_id,
  requests.started_at,
  devices.label as device,
  requests.host,
  coalesce(companies.name, l.company) as company,
  coalesce(owners.name, companies.name, l.company) as owner,
  l.property,
  coalesce(words.words, l.property) as property_words,
  l.location,
  l.adapter,
  l.preview as value,
  l.kind_group,
  coalesce(groups.words, l.kind_group) as kind_group_words,
  l.fingerprint,
  requests.device_id,
  requests.tracker_id,
  requests.app,
  {_html("coalesce(companies.name, l.company)")} as company_html,
  {_url("coalesce(companies.name, l.company)")} as company_q,
  l.company as adapter_company
from learned_items l
join requests on requests.id = l.request_id
left join devices on devices.id = requests.device_id
left join trackers on trackers.id = requests.tracker_id
left join companies on companies.id = trackers.company_id
left join companies as owners on owners.id = companies.owner_id
left join glossary_words words on words.kind = 'learned' and words.key = l.property
left join glossary_words groups on groups.kind = 'learned_group' and groups.key = l.kind_group
""",
    ),
    # Linking: one identifier (same keyed fingerprint) sent to two or more companies, by an
    # adapter's finding or as a decoded leaf of any other request. Masked, never the value.
    "learned_links": (
        {"learned_items", "requests", "devices", "leaf_fingerprints", "trackers", "companies"},
        """
with ids as (
  select fingerprint, min(preview) as preview, group_concat(distinct property) as properties
  from learned_items where fingerprint is not null group by fingerprint
),
sightings as (
  select l.fingerprint, coalesce(c.name, l.company) as company, requests.device_id,
    requests.started_at, requests.id as request_id
  from learned_items l join requests on requests.id = l.request_id
  left join trackers t on t.id = requests.tracker_id
  left join companies c on c.id = t.company_id
  where l.fingerprint is not null
  union
  select f.fingerprint, coalesce(c.name, requests.registrable_domain, requests.host),
    requests.device_id, requests.started_at, requests.id
  from leaf_fingerprints f
  join ids on ids.fingerprint = f.fingerprint
  join requests on requests.id = f.request_id
  left join trackers t on t.id = requests.tracker_id
  left join companies c on c.id = t.company_id
)
select
  ids.fingerprint,
  ids.preview,
  ids.properties,
  count(distinct s.company) as company_count,
  group_concat(distinct s.company) as companies,
  group_concat(distinct devices.label) as devices,
  min(s.started_at) as first_seen,
  max(s.started_at) as last_seen,
  count(distinct s.request_id) as requests
from ids
join sightings s on s.fingerprint = ids.fingerprint
left join devices on devices.id = s.device_id
group by ids.fingerprint
having count(distinct s.company) > 1
""",
    ),
}


def ensure_db_shape(db: Database) -> None:
    """Create or replace every view whose tables exist."""
    tables = set(db.table_names())
    for name, (needs, sql) in VIEWS.items():
        if needs <= tables:
            db.create_view(name, sql.strip(), replace=True)
    from gazeback.db.alerts import ensure_rules
    from gazeback.db.experiments import ensure_views
    from gazeback.db.glossary import refresh

    refresh(db)
    refresh_app_names(db)
    ensure_views(db)
    ensure_rules(db)


def refresh_app_names(db: Database) -> None:
    """Write the bundled app names; no write at all when they are already there."""
    if "app_names" not in db.table_names():
        return
    from gazeback.knowledge.apps import app_names

    want = set(app_names().items())
    if want - set(db.execute("select app, name from app_names").fetchall()):
        db.table("app_names").upsert_all(({"app": a, "name": n} for a, n in sorted(want)), pk="app")
