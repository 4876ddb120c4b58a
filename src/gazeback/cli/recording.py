"""Recording: the proxy (mitmdump with gazeback's addon) and the dashboard until Ctrl-C.

``gazeback run`` and ``gazeback workshop`` both start it; it sits below the command group so
that neither command module imports the group.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from gazeback.cli.options import open_db as _open_db
from gazeback.dashboard import serve


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
) -> None:
    """What `run` does (`workshop` runs it too): proxy and dashboard until Ctrl-C."""
    db = _open_db(db_path)
    added = serve.device_modes(db, db_path, wireguard_host, endpoint)
    db.close()
    users = list(devices) + [user for user, _ in added]
    lan = not serve.is_loopback(listen_host)
    creds = serve.proxy_credentials(db_path, users) if users else {}
    if lan and not creds:
        raise click.ClickException(
            f"refusing to listen on {listen_host} without proxy credentials: anyone on your "
            "network could use the proxy. Add --device LABEL for each device "
            "(e.g. --device phone), or keep --listen-host 127.0.0.1."
        )
    args = [
        "--listen-host", listen_host, "--listen-port", str(listen_port),
        "-s", str(Path(__file__).parent.parent / "capture" / "mitmproxy_script.py"),
        "--set", f"gazeback_db={db_path}", "--set", "flow_detail=0",
        "--set", "termlog_verbosity=warn",
        "--set", f"gazeback_keep_days={keep_days}",
        # connections to --ignore-hosts become flows gazeback can count (undecrypted)
        "--set", "show_ignored_hosts=true",
    ]  # fmt: skip
    if added:  # one WireGuard server per added device, plus the regular proxy
        args += ["--mode", f"regular@{listen_host}:{listen_port}"]
        args += [arg for _, spec in added for arg in ("--mode", spec)]
    if creds:
        args += ["--set", f"proxyauth=@{serve.write_htpasswd(db_path, creds)}"]
    dashboard = None
    if dashboard_port:
        dashboard = subprocess.Popen(
            serve.dashboard_command(db_path, "127.0.0.1", dashboard_port),
            stdout=subprocess.DEVNULL,
        )
    _banner(db_path, listen_host, listen_port, dashboard_port, creds)
    for user, spec in added:
        click.echo(f"  WireGuard:  device {user!r} on UDP port {spec.rsplit(':', 1)[1]}")
    from mitmproxy.tools.main import mitmdump

    try:
        mitmdump([*args, *(mitmproxy_args or [])])
    finally:
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(10)


def _banner(
    db_path: Path, host: str, port: int, dashboard_port: int | None, creds: dict[str, str]
) -> None:
    shown = serve.lan_address() if host in ("0.0.0.0", "::") else host
    click.echo(f"gazeback is recording to {db_path}")
    click.echo(f"  Proxy:      {shown}:{port}  (set this as the HTTP and HTTPS proxy)")
    for user, password in creds.items():
        click.echo(f"    device {user!r}: proxy user {user}  password {password}")
    click.echo("  Certificate: open http://mitm.it through the proxy and follow the steps")
    if dashboard_port:
        click.echo(f"  Dashboard:  http://127.0.0.1:{dashboard_port}/-/dashboards/trail")
    click.echo("Press Ctrl-C to stop.")
