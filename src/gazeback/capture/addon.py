"""The mitmproxy adapter: options, hooks that copy a flow onto the writer's queue, shutdown."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from mitmproxy import connection, ctx, exceptions, http, tcp, tls
from mitmproxy.proxy import layer, layers, mode_specs
from mitmproxy.proxy.layers.tls import parse_client_hello

from gazeback.capture import snapshot as capture
from gazeback.capture.localguard import PREFIX as REFUSED_PREFIX
from gazeback.capture.localguard import REASON_KEY as REFUSED
from gazeback.capture.worker import ProcessWriter
from gazeback.capture.writer import Writer
from gazeback.db.localfiles import default_db_path, load_or_create_key, prepare_db_path
from gazeback.models import FlowSnapshot

logger = logging.getLogger("gazeback")


class TrailLogger:
    """Records every request the proxy sees into the gazeback database.

    Hooks only copy references onto the writer's queue. A failure inside gazeback is
    logged and counted and never reaches the person's traffic (``fail-open``).
    """

    def __init__(self, writer_factory: Any = None) -> None:
        self.writer_factory = writer_factory
        self.writer: Writer | ProcessWriter | None = None
        self.errors = 0  # exceptions caught in our hooks
        self._proxy_users: dict[str, str] = {}  # client connection id -> proxy-auth user
        self._pinned: dict[str, float] = {}  # host -> when a client last refused our cert
        self._pinned_clients: dict[str, str] = {}  # client id -> SNI we pass through
        self._tunnels: dict[str, list[Any]] = {}  # tcp flow id -> [up, down, sni, reason]

    def load(self, loader: Any) -> None:
        loader.add_option(
            "gazeback_db", str, str(default_db_path()), "gazeback: the SQLite database to write."
        )
        loader.add_option(
            "gazeback_passthrough_minutes",
            int,
            10,
            "gazeback: after a client refuses our certificate for a host (certificate pinning, "
            "or the certificate is not installed yet), pass connections to that host through "
            "undecrypted for this many minutes, counting their bytes, instead of breaking "
            "them; then try to look inside again. 0: never pass through.",
        )
        loader.add_option(
            "gazeback_keep_days",
            int,
            0,
            "gazeback: delete everything older than this many days, hourly totals too "
            "(checked at start and hourly). 0 keeps everything.",
        )
        loader.add_option(
            "gazeback_keep_detail_days",
            int,
            90,
            "gazeback: keep each request of live-captured traffic for this many days; older "
            "traffic is kept as hourly totals per device, company and kind of data, which the "
            "dashboards still show (checked at start and hourly). Imported files keep their "
            "detail (`gazeback rollup --include-imports` rolls them up). 0 keeps all detail.",
        )
        loader.add_option(
            "gazeback_learn",
            bool,
            True,
            "gazeback: decode each tracker's protocol with the adapters and store what it "
            "learned (docs/what-they-learned.md). Off: who received each request, and your "
            "registered identifiers in it, only.",
        )
        loader.add_option(
            "gazeback_writer_process",
            bool,
            True,
            "gazeback: classify, detect and store in a separate process, so that work never "
            "competes with the proxy for Python's interpreter lock. Off: a thread of the proxy.",
        )

    def configure(self, updated: set[str]) -> None:
        if "gazeback_db" in updated:
            if not ctx.options.gazeback_db:
                raise exceptions.OptionsError("gazeback_db must name a database file")
            path = Path(ctx.options.gazeback_db).expanduser()
            try:  # a clear error before the proxy starts, not lost records later
                prepare_db_path(path)
                load_or_create_key(path)
            except OSError as e:
                raise exceptions.OptionsError(f"gazeback: cannot record to {path}: {e}") from None

        if {"ignore_hosts", "show_ignored_hosts"} & updated:
            if ctx.options.ignore_hosts and not ctx.options.show_ignored_hosts:
                logger.warning(
                    "gazeback: connections to ignored hosts are invisible to addons and will not "
                    "be recorded; add --set show_ignored_hosts=true to count them"
                )

    def running(self) -> None:
        if self.writer is not None:
            return
        path = Path(ctx.options.gazeback_db).expanduser()
        try:
            factory = self.writer_factory or (
                ProcessWriter if ctx.options.gazeback_writer_process else Writer
            )
            extra: dict[str, Any] = {} if ctx.options.gazeback_learn else {"learn": False}
            writer = factory(
                path,
                load_or_create_key(path),
                keep_days=ctx.options.gazeback_keep_days,
                keep_detail_days=ctx.options.gazeback_keep_detail_days,
                **extra,
            )
            writer.start()
        except Exception as e:
            # Before any traffic: a clear error, then stop rather than run unrecorded.
            logger.error(f"gazeback: cannot record to {path}: {e}")
            ctx.master.shutdown()
            return
        self.writer = writer
        self._pinned.update(writer.pinned)
        logger.info(f"gazeback: recording to {path}")

    def done(self) -> None:
        if self.writer is not None:
            self.writer.stop()
            self.writer = None

    # -- helpers ----------------------------------------------------------------------
    def _submit(self, make: Any, *args: Any) -> None:
        if self.writer is None:
            return
        try:
            snap: FlowSnapshot = make(*args)
            self.writer.submit(snap)
        except Exception:
            self.errors += 1
            logger.exception("gazeback: error while recording a flow (traffic unaffected)")

    def _user(self, client: connection.Client) -> str | None:
        return self._proxy_users.get(client.id)

    # -- HTTP -------------------------------------------------------------------------
    def http_connect(self, flow: http.HTTPFlow) -> None:
        auth = flow.metadata.get("proxyauth")
        if auth:
            self._proxy_users[flow.client_conn.id] = str(auth[0])

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        if _answered_by_proxy(flow):
            return
        kind = "refused" if REFUSED in flow.metadata else "error"
        self._submit(capture.snapshot_http, flow, kind, self._user(flow.client_conn))

    def response(self, flow: http.HTTPFlow) -> None:
        if _answered_by_proxy(flow):
            return
        if flow.websocket is None:  # WebSocket handshakes are recorded at websocket_end
            flow.metadata["gazeback_recorded"] = True
            kind = "refused" if REFUSED in flow.metadata else "http"
            self._submit(capture.snapshot_http, flow, kind, self._user(flow.client_conn))

    def error(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.get("gazeback_recorded") and flow.websocket is None:
            flow.metadata["gazeback_recorded"] = True
            kind = "http" if flow.response else "error"
            self._submit(capture.snapshot_http, flow, kind, self._user(flow.client_conn))

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._submit(capture.snapshot_http, flow, "websocket", self._user(flow.client_conn))

    # -- connections refused by the SSRF guard -----------------------------------------------
    def server_connect(self, data: Any) -> None:
        # A refused proxy request becomes an HTTP flow (recorded above); in WireGuard and
        # transparent modes the connection is closed before any request: record it here.
        error = data.server.error or ""
        if error.startswith(REFUSED_PREFIX) and not isinstance(
            data.client.proxy_mode, mode_specs.RegularMode | mode_specs.UpstreamMode
        ):
            self._submit(capture.snapshot_refused, data.client, data.server)

    # -- TLS we could not open ----------------------------------------------------------
    def tls_failed_client(self, data: tls.TlsData) -> None:
        ctx_ = data.context
        sni = data.conn.sni
        if sni and ctx.options.gazeback_passthrough_minutes > 0:
            self._pinned[sni] = time.time()
            if self.writer is not None:
                self.writer.note_pinned(sni, data.conn.error)
        self._submit(
            capture.snapshot_tls_failed,
            ctx_.client,
            ctx_.server,
            sni,
            data.conn.error,
            self._user(ctx_.client),
        )

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if nextlayer.layer or not self._pinned:
            return
        try:
            data = nextlayer.data_client()
            if not data.startswith(b"\x16"):
                return
            hello = parse_client_hello(data)
        except Exception:
            return  # not a ClientHello we can read: leave it to mitmproxy
        if hello is not None and hello.sni and self._passes_through(hello.sni):
            nextlayer.layer = layers.TCPLayer(nextlayer.context)
            self._pinned_clients[nextlayer.context.client.id] = hello.sni

    def _passes_through(self, host: str) -> bool:
        since = self._pinned.get(host)
        if since is None:
            return False
        if time.time() - since > ctx.options.gazeback_passthrough_minutes * 60:
            del self._pinned[host]  # time to look inside again (the CA may be installed now)
            return False
        return True

    # -- connections passed through ---------------------------------------------------
    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        sni = self._pinned_clients.pop(flow.client_conn.id, None)
        reason = (
            "passed through: the client refused our certificate for this host earlier"
            if sni
            else "passed through without decryption (ignored host or not TLS/HTTP)"
        )
        self._tunnels[flow.id] = [0, 0, sni, reason]

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        counts = self._tunnels.get(flow.id)
        if counts is None or not flow.messages:
            return
        msg = flow.messages[-1]
        if msg.from_client:
            counts[0] += len(msg.content)
            if counts[2] is None and counts[0] == len(msg.content):
                counts[2] = _sni(msg.content)
        else:
            counts[1] += len(msg.content)
        del flow.messages[:-1]  # keep memory flat on long tunnels; later addons see the last

    def tcp_end(self, flow: tcp.TCPFlow) -> None:
        counts = self._tunnels.pop(flow.id, None)
        if counts is not None:
            self._submit(capture.snapshot_tcp, flow, *counts, self._user(flow.client_conn))

    tcp_error = tcp_end

    def client_disconnected(self, client: connection.Client) -> None:
        self._proxy_users.pop(client.id, None)
        self._pinned_clients.pop(client.id, None)


def _answered_by_proxy(flow: http.HTTPFlow) -> bool:
    """The proxy's own pages and auth challenges never left the machine: not part of a trail."""
    if flow.server_conn.timestamp_start is not None:
        return False  # it reached a server (the usual case: one attribute read on the hot path)
    if flow.request.pretty_host == "mitm.it":  # certificate onboarding app
        return True
    return (
        flow.response is not None
        and flow.response.status_code == 407
        and "proxyauth" not in flow.metadata
    )


def _sni(first_bytes: bytes) -> str | None:
    try:
        hello = parse_client_hello(first_bytes)
    except Exception:
        return None
    return hello.sni if hello else None
