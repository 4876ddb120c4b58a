"""Recording: the proxy (mitmdump with gazeback's addon) and the dashboard until Ctrl-C.

``gazeback run`` and ``gazeback workshop`` both start it; it sits below the command group so
that neither command module imports the group.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import click

from gazeback.cli.options import check_port
from gazeback.cli.options import open_db as _open_db
from gazeback.dashboard import access, serve


def record(
    db_path: Path,
    listen_host: str,
    listen_port: int,
    dashboard_port: int | None,
    devices: list[str],
    wireguard_host: str = "0.0.0.0",
    endpoint: str | None = None,
    mitmproxy_args: list[str] | None = None,
    keep_days: int = 0,
    keep_detail_days: int = 0,
    dashboard_token: str | None = None,
    dashboard_path: str = "/-/dashboards/trail",
    passwords_at: Path | None = None,
    notify_command: str | None = None,
    dashboard_host: str = "127.0.0.1",
    workshop: bool = False,
    ready: Callable[[], None] | None = None,
) -> None:
    """What `run` does (`workshop` runs it too): proxy and dashboard until Ctrl-C.

    ``passwords_at``: the devices' proxy passwords are in this file, so the banner names the
    file instead of printing every seat's password on a workshop's projected screen.
    ``workshop``: the dashboard also serves participants' own pages, and may listen on
    ``dashboard_host`` beyond loopback for them (``dashboard/plugin.py``).
    ``ready``: called once the dashboard answers, as the proxy starts."""
    port_option = "--page-port" if workshop else "--dashboard-port"
    if notify_command is not None:
        from gazeback.cli.news import notify_argv

        try:
            notify_argv(notify_command, "test")
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    if dashboard_port:  # before anything starts: a clash must not leave `run` half-up
        check_port(dashboard_host, dashboard_port, port_option)
    check_port(listen_host, listen_port, "--listen-port")
    ours = proxy_args(db_path, listen_host, listen_port, keep_days, keep_detail_days)
    passed = list(mitmproxy_args or [])
    # before anything is created; without --device and without a database there will be no
    # credentials, so the regular proxy can be judged now too
    _check_listeners([*ours, *passed], None if devices or db_path.exists() else {})
    db = _open_db(db_path)
    added = serve.device_modes(db, db_path, wireguard_host, endpoint)
    db.close()
    users = list(devices) + [user for user, _ in added]
    creds = serve.proxy_credentials(db_path, users) if users else {}
    args = list(ours)
    if added:  # one WireGuard server per added device, plus the regular proxy
        args += ["--mode", f"regular@{listen_host}:{listen_port}"]
        args += [arg for _, spec in added for arg in ("--mode", spec)]
    _check_listeners([*args, *passed], creds)
    if creds:  # asked only of devices on the network (capture/deviceauth.py), not of
        # WireGuard peers (their key is their credential) nor of this computer's programs
        args += ["--set", f"gazeback_proxy_users={serve.write_htpasswd(db_path, creds)}"]
    dashboard = None
    notifier = None
    try:  # Ctrl-C at any point from here stops everything started so far, quietly
        url = None
        if dashboard_port:
            dashboard, url = serve.start_dashboard(
                db_path, dashboard_host, dashboard_port, dashboard_token or access.new_token(),
                dashboard_path, workshop=workshop, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if not serve.wait_listening(dashboard_port, dashboard, host=dashboard_host):
                raise click.ClickException(
                    f"the dashboard did not start on {dashboard_host}:{dashboard_port}; "
                    "`gazeback dashboard` shows why (its server log), or use --no-dashboard"
                )
        _banner(db_path, listen_host, listen_port, url, creds, passwords_at)
        for user, spec in added:
            click.echo(f"  WireGuard:  device {user!r} on UDP port {spec.rsplit(':', 1)[1]}")
        from gazeback.cli.news import Notifier

        notifier = Notifier(db_path, notify_command)  # news for the dashboard (and command)
        notifier.start()
        from mitmproxy.tools.main import mitmdump

        if ready is not None:
            ready()
        mitmdump([*args, *passed])
    except KeyboardInterrupt:
        pass  # pressed while starting, before mitmproxy took over Ctrl-C: a normal stop
    finally:
        if notifier is not None:
            notifier.stopping.set()
        if dashboard is not None:
            serve.stop_server(dashboard)


def proxy_args(
    db_path: Path, listen_host: str, listen_port: int, keep_days: int = 0,
    keep_detail_days: int = 0,
) -> list[str]:  # fmt: skip
    """mitmdump's options for gazeback's recording proxy (`run`, `consent-check`)."""
    return [
        "--listen-host", listen_host, "--listen-port", str(listen_port),
        "-s", str(Path(__file__).parent.parent / "capture" / "mitmproxy_script.py"),
        "--set", f"gazeback_db={db_path}", "--set", "flow_detail=0",
        "--set", "termlog_verbosity=warn",
        "--set", f"gazeback_keep_days={keep_days}",
        "--set", f"gazeback_keep_detail_days={keep_detail_days}",
        # connections to --ignore-hosts become flows gazeback can count (undecrypted)
        "--set", "show_ignored_hosts=true",
    ]  # fmt: skip


GATED = ("regular", "upstream")  # asked for proxy credentials beyond loopback (deviceauth.py)
OFF_NETWORK = ("local", "osproxy", "tun")  # capture this computer's own programs


def _check_listeners(args: list[str], creds: dict[str, str] | None) -> None:
    """Refuse to start any server beyond loopback that would be an open proxy: every mode
    mitmdump will start with ``args`` (the options after ``--`` included), read as mitmdump
    reads them. ``creds`` None: not known yet, check everything but the regular proxy."""
    from gazeback.capture.listening import listeners

    try:
        found = listeners(args)
    except ValueError as e:
        raise click.ClickException(f"mitmproxy does not accept the options after --: {e}") from None
    for server in found:
        if server.is_local or server.kind == "wireguard" or server.kind in OFF_NETWORK:
            continue  # loopback; a WireGuard server admits only the holder of its key
        if server.kind in GATED:
            if creds is None or creds:
                continue
            raise click.ClickException(
                f"refusing to listen on {server.host or '0.0.0.0'} without proxy credentials: "
                "anyone on your network could use the proxy. Add --device LABEL for each "
                "device (e.g. --device phone), or keep --listen-host 127.0.0.1."
            )
        raise click.ClickException(
            f"refusing to listen on {server.where} ({server.kind} mode {server.spec!r}): anyone "
            f"on your network could use it, and gazeback asks proxy credentials only of the "
            f"regular proxy. Keep it on this computer ({server.kind}@127.0.0.1:"
            f"{server.port or 'PORT'}), or bring devices with `gazeback device add` "
            "(WireGuard) or --device LABEL."
        )


def _banner(
    db_path: Path,
    host: str,
    port: int,
    dashboard_url: str | None,
    creds: dict[str, str],
    passwords_at: Path | None = None,
) -> None:
    shown = (
        (serve.lan_address() or "this computer's address") if host in ("0.0.0.0", "::") else host
    )
    click.echo(f"gazeback is recording to {db_path}")
    click.echo(f"  Proxy:      {shown}:{port}  (set this as the HTTP and HTTPS proxy)")
    if creds and passwords_at is not None:
        n = len(creds)
        click.echo(
            f"    {n} device{'s' if n != 1 else ''} joining by Wi-Fi proxy instead of "
            f"WireGuard: proxy users and passwords in {passwords_at} (readable by you only)"
        )
    else:
        for user, password in creds.items():
            click.echo(f"    device {user!r}: proxy user {user}  password {password}")
    click.echo("  Certificate: open http://mitm.it through the proxy and follow the steps")
    if dashboard_url:
        click.echo(f"  Dashboard:  {dashboard_url}")
        click.echo("              (open this address: its key lets only you in)")
    click.echo("Press Ctrl-C to stop.")
