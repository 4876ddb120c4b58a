"""Alerts on what is new (#16): every rule with a fixed clock, rules switched off, the
baseline from an experiment condition, the debounce and the notify command."""

import sys

from click.testing import CliRunner
from test_experiments import req, seed

from gazeback.cli import cli
from gazeback.cli.news import Debouncer, message, notify_argv, run_notify, since_iso
from gazeback.db import alerts
from gazeback.db import experiments as ex

NOW = "2026-12-10T00:00:00.000Z"


def day(d, h=10):
    return f"2026-12-{d:02d}T{h:02d}:00:00.000Z"


def raised(db):
    return {(a["rule_id"], a["device_id"], a["subject"]) for a in alerts.refresh(db, now=NOW)}


def test_every_rule_after_the_baseline(db):
    seed(db)
    db.table("_pinned_hosts").insert({"host": "pinned.example", "first_seen_at": day(1)})
    # baseline (first day): laptop reaches AdCo with an email; the phone only a CDN
    req(db, day(1), "ads", leak="email", identity=1)
    req(db, day(1), "cdn", device=2)
    assert raised(db) == set()  # nothing after any baseline yet
    req(db, day(1, 20), "stats")  # still the first day: baseline
    assert raised(db) == set()
    # after it
    req(db, day(3), "ads", leak="email", identity=1)  # known: nothing new
    req(db, day(3), "social", leak="email", identity=1)  # new company, data kind, identifier
    req(db, day(4), "ads", leak="phone")  # a new kind of data for AdCo
    req(db, day(4), "stats", device=2)  # the phone starts talking to trackers
    pinned = req(db, day(5), "cdn", device=2)
    db.table("requests").update(pinned, {"host": "pinned.example", "is_decrypted": 0})
    got = raised(db)
    assert got == {
        ("new_company", 1, "social"),
        ("new_data_kind", 1, "social|email"),
        ("new_data_kind", 1, "ads|phone"),
        ("identifier_new_company", 1, "1|social"),
        ("new_company", 2, "stats"),
        ("device_starts_tracking", 2, "trackers"),
        ("pinned_host", 2, "pinned.example"),
    }
    assert raised(db) == set()  # raised once
    rows = {a["rule_id"] + a["subject"]: a for a in alerts.news(db, day(2))}
    assert rows["new_companysocial"]["text"] == (
        "laptop sent data to SocialCo for the first time (social.example)."
    )
    assert rows["device_starts_trackingtrackers"]["text"].startswith(
        "phone started talking to trackers: first StatsCo"
    )
    assert rows["identifier_new_company1|social"]["text"] == (
        "Your email reached SocialCo from laptop for the first time."
    )
    assert rows["new_companysocial"]["seen_at"] == day(3)
    assert len(alerts.news(db, day(4))) == 4  # --since
    # a rule switched off: its alerts are not shown, and it raises nothing new
    alerts.set_enabled(db, "new_company", False)
    assert not [a for a in alerts.news(db, day(1)) if a["rule_id"] == "new_company"]
    req(db, day(6), "cdn")
    db.table("trackers").update("cdn", {"is_tracker": 1})
    assert raised(db) == set()
    alerts.set_enabled(db, "new_company", True)
    assert raised(db) == {("new_company", 1, "cdn")}


def test_baseline_from_an_experiment_condition(db):
    seed(db)
    ex.start(db, "tv", "old firmware", device_id=1, now=day(1))
    req(db, day(1, 11), "ads")
    ex.stop(db, now=day(1, 12))
    alerts.set_baseline(db, 1, experiment_id=1, condition="old firmware")
    req(db, day(1, 13), "ads")
    req(db, day(1, 14), "stats")  # same day: the default 1-day baseline would hide it
    assert raised(db) == {("new_company", 1, "stats")}


def test_debounce_makes_a_burst_one_message():
    now = [0.0]
    d = Debouncer(quiet=30, longest=300, clock=lambda: now[0])
    assert d.due() == []
    d.add([{"text": "a"}])
    now[0] = 10
    d.add([{"text": "b"}, {"text": "c"}])
    now[0] = 39
    assert d.due() == []  # 29 s quiet: wait
    now[0] = 40
    burst = d.due()
    assert [x["text"] for x in burst] == ["a", "b", "c"]
    assert message(burst) == "3 new things: a … and 2 more (gazeback news)"
    assert d.due() == []
    # a steady trickle still speaks after `longest`
    for s in range(100, 420, 20):
        now[0] = s
        d.add([{"text": str(s)}])
        if d.due():
            break
    assert now[0] == 400


def test_notify_command_is_not_a_shell(tmp_path):
    evil = 'x"; touch ' + str(tmp_path / "pwned") + '; echo "$(id)`id`'
    out = tmp_path / "out"
    script = tmp_path / "save.py"
    script.write_text("import sys; open(sys.argv[1], 'w').write(sys.argv[2])")
    template = f'{sys.executable} {script} {out} "gazeback: {{text}}"'
    assert notify_argv(template, "a\nb") == [sys.executable, str(script), str(out), "gazeback: a b"]
    assert run_notify(template, evil) == 0
    assert out.read_text() == "gazeback: " + evil
    assert not (tmp_path / "pwned").exists()
    assert run_notify("/nonexistent/notify {text}", "x") == -1
    try:
        notify_argv('notify-send "unclosed', "x")
        raise AssertionError("accepted")
    except ValueError as e:
        assert "cannot be split" in str(e)


def test_since():
    from datetime import UTC, datetime

    now = datetime(2026, 12, 10, tzinfo=UTC)
    assert since_iso("7d", now) == "2026-12-03T00:00:00.000Z"
    assert since_iso("12h", now) == "2026-12-09T12:00:00.000Z"
    assert since_iso("2026-12-01", now) == "2026-12-01T00:00:00.000Z"
    try:
        since_iso("yesterday", now)
        raise AssertionError("accepted")
    except ValueError as e:
        assert "yesterday" in str(e)


def test_news_and_alerts_commands(tmp_path):
    import sqlite_utils

    from gazeback.db import migrations

    path = tmp_path / "t.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    seed(db)
    req(db, day(1), "ads")
    req(db, day(5), "stats")
    db.close()
    r = CliRunner()
    res = r.invoke(cli, ["news", "--db", str(path), "--since", "2026-12-01"])
    assert res.exit_code == 0, res.output
    assert "laptop sent data to StatsCo for the first time" in res.output
    res = r.invoke(cli, ["news", "--db", str(path), "--since", "soon"])
    assert res.exit_code == 1 and "'soon'" in res.output
    res = r.invoke(cli, ["alerts", "off", "new_company", "--db", str(path)])
    assert res.exit_code == 0, res.output
    res = r.invoke(cli, ["alerts", "rules", "--db", str(path)])
    assert "off  new_company" in res.output
    res = r.invoke(cli, ["news", "--db", str(path), "--since", "2026-12-01"])
    assert "Nothing new" in res.output
    res = r.invoke(cli, ["alerts", "off", "nope", "--db", str(path)])
    assert res.exit_code == 1 and "no alert rule 'nope'" in res.output
    res = r.invoke(cli, ["alerts", "baseline", "laptop", "--days", "7", "--db", str(path)])
    assert res.exit_code == 0 and "first 7 days" in res.output


def test_notifier_sends_a_burst_as_one_message(tmp_path):
    import time

    import sqlite_utils

    from gazeback.cli.news import Notifier
    from gazeback.db import migrations

    path = tmp_path / "t.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    seed(db)
    req(db, day(1), "ads")  # the baseline
    db.close()
    out = tmp_path / "messages"
    script = tmp_path / "save.py"
    script.write_text("import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')")
    n = Notifier(path, f"{sys.executable} {script} {out} {{text}}", every=0.05, quiet=1.5)
    n.start()
    try:
        assert n.ready.wait(30)  # a request before the baseline would not be news
        db = sqlite_utils.Database(path)
        req(db, day(3), "stats")
        req(db, day(3), "social", leak="email", identity=1)
        db.close()
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        n.stopping.set()
        n.join(5)
    lines = out.read_text().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("4 new things: ") and "(gazeback news)" in lines[0]
    db = sqlite_utils.Database(path)
    assert (
        db.execute("select count(*) from alerts where notified_at is not null").fetchone()[0] == 4
    )


def test_retention_keeps_alerts_without_their_old_requests(db):
    from datetime import UTC, datetime

    from gazeback.db import store

    seed(db)
    req(db, day(1), "ads")
    old = req(db, day(3), "stats")
    assert raised(db) == {("new_company", 1, "stats")}
    assert store.prune(db, 1, now=datetime(2026, 12, 5, tzinfo=UTC)) == 2
    row = next(db.query("select * from alerts"))
    assert row["request_id"] is None and old not in {r["id"] for r in db["requests"].rows}
