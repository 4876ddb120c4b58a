"""A name that is HTML is shown as text on every page gazeback's plugin draws itself.

The "Ask them" pages (``/-/gazeback/ask``, ``/-/gazeback/requests``, #15) and the experiment
page (``/-/gazeback/experiment``, #16) show names a page, an app or a person chose: company
names kept with a request sent, identity and device labels, experiment and condition names,
query parameters echoed into forms. They are Jinja templates with autoescape; here each
page gets a name that closes an attribute and opens a script, and must show it as text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlite_utils
from markupsafe import escape
from signin import signed_in

from gazeback.dashboard import demo
from gazeback.dashboard.serve import make_datasette
from gazeback.db import migrations

HOSTILE = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
SHOWN = str(escape(HOSTILE))  # &#34;&#39;&gt;&lt;script&gt;...


def assert_shown_as_text(html: str, where: str) -> None:
    assert "<script" not in html.lower(), where
    assert "<img src=x" not in html and "\"'>" not in html, where


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "trail.db"
    demo.generate(path, scale=600, seed=1, end=datetime(2026, 11, 27, tzinfo=UTC))
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    with db.conn:
        db.execute("update identities set label = ?", [HOSTILE])
        db.execute("update devices set label = ? || id", [HOSTILE])
        db.execute(
            "insert into requests_sent (company_id, company_name, law, lang, method, sent_on,"
            " due_on) values ('braze', ?, 'gdpr', 'en', 'email', '2026-01-05', '2026-02-05')",
            [HOSTILE],
        )
    db.close()
    return path


async def test_the_letter_page_shows_hostile_labels_and_parameters_as_text(trail):
    ds = await signed_in(make_datasette(trail))
    r = await ds.client.get(
        "/-/gazeback/ask", params={"company": "Braze, Inc.", "request": HOSTILE}
    )
    assert r.status_code == 200, r.text
    assert_shown_as_text(r.text, "ask")
    assert f'name="request" value="{SHOWN}"' in r.text  # echoed into the form, as text
    assert f"> {SHOWN} (" in r.text  # an identity's label beside its checkbox
    assert SHOWN in r.text.split("<pre>", 1)[1]  # the devices named in the letter's evidence
    assert re.search(r'name="csrftoken" value="[^"]+"', r.text)


async def test_the_requests_page_shows_a_hostile_company_name_as_text(trail):
    ds = await signed_in(make_datasette(trail))
    r = await ds.client.get("/-/gazeback/requests")
    assert r.status_code == 200
    assert_shown_as_text(r.text, "requests")
    assert f"<td>{SHOWN}</td>" in r.text and "Write the reminder" in r.text


async def test_the_experiment_page_shows_hostile_names_as_text(tmp_path):
    path = tmp_path / "trail.db"
    migrations.apply(sqlite_utils.Database(path))
    ds = await signed_in(make_datasette(path))
    page = await ds.client.get("/-/gazeback/experiment")
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    cookie = ds.client._cookie + "; ds_csrftoken=" + page.cookies["ds_csrftoken"]

    async def post(**form):
        return await ds.client.post(
            "/-/gazeback/experiment", data={"csrftoken": csrf, **form}, headers={"cookie": cookie}
        )

    started = await post(action="start", name=HOSTILE, condition=HOSTILE)
    assert started.status_code == 200, started.text
    refused = await post(action="start", name=HOSTILE, condition="again")
    assert refused.status_code == 400  # the error repeats the names
    shown = await ds.client.get("/-/gazeback/experiment")
    for r, where in ((started, "started"), (refused, "refused"), (shown, "running")):
        assert_shown_as_text(r.text, where)
        assert f'name="name" required value="{SHOWN}"' in r.text, where
        assert f"Running now: “{SHOWN}”, condition “{SHOWN}”" in r.text, where
    assert f"Run 1 of “{SHOWN}” started" in started.text
    assert 'class="message-error">experiment ' in refused.text and "&lt;script&gt;" in refused.text
