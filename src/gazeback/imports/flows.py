"""HAR files and mitmproxy dumps, read by mitmproxy itself (``mitmproxy.io``): no second parser."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, Any

from gazeback.capture.snapshot import snapshot_http, snapshot_tcp
from gazeback.imports.base import RCODES, Entry, Item, Problem, Rejected, Source, dns_snapshot
from gazeback.models import FlowSnapshot

# --- HAR ----------------------------------------------------------------------------------


def _har_size(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def read_har(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """HAR 1.2 (browser devtools, crawlers) through mitmproxy's own HAR reader.

    Response bodies are never used, so they are checked (a broken base64 body is a
    problem, the request is still imported) and then left out of the flow.
    """
    for chunk in split_har(fp, src, 1 << 62):
        yield from parse_har(chunk, src)


MAX_JSON_DEPTH = 100  # a HAR entry is about 6 deep; deeper is not a HAR file
READ_SIZE = 16 << 20
BIG_BODY = 1 << 20
BODY_TEXT = "log.entries.item.response.content.text"
_BASE64 = re.compile(r"[A-Za-z0-9+/\s]*={0,2}\s*")


def split_har(fp: IO[bytes], src: Source, size: int) -> Iterator[tuple[int, list[Any]]]:
    """The file's entries in runs of ``size``: (index of the first, entries), for ``parse_har``.

    Streamed (ijson): one entry at a time is built, never the whole document, so memory
    follows the largest entry, not the file; nesting deeper than ``MAX_JSON_DEPTH`` is
    refused; a response body over ``BIG_BODY`` is checked and dropped as it is read.
    """
    import ijson

    run: list[Any] = []
    start = 0
    try:
        for entry in _har_entries(ijson.basic_parse(fp, buf_size=READ_SIZE, use_float=True)):
            run.append(entry)
            if len(run) >= size:
                yield start, run
                start, run = start + len(run), []
    except ijson.JSONError as e:
        raise Rejected(f"not a HAR file: not valid JSON ({e})") from e
    if run:
        yield start, run


ENTRIES = [["map", "log"], ["map", "entries"], ["array", None]]
STARTS = {"start_map": "map", "start_array": "array"}


def _har_entries(events: Iterator[tuple[str, Any]]) -> Iterator[Any]:
    """The items of ``log.entries``, from ijson's ``basic_parse`` events (no prefixes: those
    grow with depth, and would cost memory squared in it)."""
    import ijson

    stack: list[list[Any]] = []  # [kind, current key] per open container
    builder: Any = None
    seen_entries = False
    for event, value in events:
        depth = len(stack)
        if not stack and event != "start_map":
            raise Rejected("not a HAR file: it is not a JSON object")
        if (
            depth == 2
            and stack == ENTRIES[:2]
            and event not in ("map_key", "end_map", "start_array")
        ):
            raise Rejected("not a HAR file: log.entries is not a list")
        if event == "map_key":
            stack[-1][1] = value
        elif builder is None and depth == 3 and stack == ENTRIES and event != "end_array":
            builder = ijson.ObjectBuilder()  # an entry begins
        if event in STARTS:
            if depth >= MAX_JSON_DEPTH:
                raise Rejected(f"not a HAR file: JSON nested more than {MAX_JSON_DEPTH} deep")
            stack.append([STARTS[event], None])
            if stack == ENTRIES:
                seen_entries = True
        elif event in ("end_map", "end_array"):
            stack.pop()
        elif (
            event == "string"
            and depth == 6
            and len(value) > BIG_BODY
            and [k for _, k in stack[3:]] == ["response", "content", "text"]
        ):
            # Response bodies are never used, only checked: a big one is dropped here, before
            # it is copied into the entry, to workers and into mitmproxy's flow.
            value = "" if _BASE64.fullmatch(value) else "!"  # "!": parse_har reports it
        if builder is not None:
            builder.event(event, value)
            if len(stack) == 3:  # back in the entries list: the entry is whole
                yield builder.value
                builder = None
    if not seen_entries:
        raise Rejected("not a HAR file: it has no log.entries list")


def parse_har(
    chunk: tuple[int, list[Any]], src: Source, *, pages_are_apps: bool = False
) -> Iterator[Item]:
    """Entries and problems of one run of HAR entries (see ``split_har``).

    :param pages_are_apps: the entries' ``pageref`` names the client that sent them (HTTP
        Toolkit: its "source", guessed from the user agent): kept as the inferred app
    """
    from mitmproxy.io.har import request_to_flow

    device = src.file_device("HAR")
    first, entries = chunk
    for i, entry in enumerate(entries, first):
        pos = f"entry {i}"
        try:
            response = entry["response"]
            content = response.get("content") or {}
            if content.get("encoding") == "base64" and content.get("text"):
                try:
                    binascii.a2b_base64(content["text"], strict_mode=True)
                except (binascii.Error, ValueError) as e:
                    yield Problem(pos, f"response body is not valid base64 ({e}); request kept")
            slim = {**entry, "response": {**response, "content": {}}}
            flow = request_to_flow(slim)
        except Exception as e:
            yield Problem(pos, f"not a valid HAR entry ({type(e).__name__}: {e}); skipped")
            continue
        snap = snapshot_http(flow)
        request = entry["request"]
        snap = replace(
            snap,
            flow_id=src.flow_id("har", i),
            device=device,
            request_bytes=_har_size(request.get("bodySize")) or snap.request_bytes,
            response_bytes=_har_size(response.get("bodySize"))
            or _har_size(content.get("size"))
            or 0,
            status_code=snap.status_code or None,  # 0: blocked or failed in the browser
            kind="http" if snap.status_code else "error",
            error=entry.get("_error") or response.get("_error") or None,
        )
        if pages_are_apps and not snap.request_body and (raw := _toolkit_body(request)):
            snap = replace(snap, request_body=raw)
        page = entry.get("pageref") if pages_are_apps else None
        app = page.strip()[:200] if isinstance(page, str) and page.strip() else None
        yield Entry(snap, pos, app=app, app_source="inferred")


def read_httptoolkit_har(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """HTTP Toolkit's HAR export: HAR 1.2 plus its own extras.

    - ``log.pages`` are HTTP Toolkit's sources (the client it recognised from the user
      agent, e.g. ``Chrome 120 (Windows 10)``) and each entry's ``pageref`` names one: kept
      as the entry's app, marked inferred (a more specific app gazeback reads from the
      request itself, such as a package name, wins);
    - ``request._content`` holds, base64, a request body HAR's ``postData`` cannot show
      (``_requestBodyStatus: discarded:not-representable``): read for leak detection;
    - ``log._tlsErrors`` lists connections whose TLS handshake failed (pinning, no CA):
      each becomes an undecrypted connection row with the failure as its error.

    WebSocket messages (``_webSocketMessages``) and ``_pinned`` are not used.
    """
    import ijson

    for chunk in split_har(fp, src, 1 << 62):
        yield from parse_har(chunk, src, pages_are_apps=True)
    fp.seek(0)
    device = src.file_device("HAR")
    try:
        for i, err in enumerate(ijson.items(fp, "log._tlsErrors.item", use_float=True)):
            pos = f"_tlsErrors {i}"
            try:
                at = _har_time(err["startedDateTime"])
            except (KeyError, TypeError, ValueError) as e:
                yield Problem(pos, f"no usable startedDateTime ({e}); skipped")
                continue
            host = err.get("hostname") if isinstance(err.get("hostname"), str) else None
            yield Entry(
                FlowSnapshot(
                    flow_id=src.flow_id("har", f"tls{i}"),
                    kind="tunnel",
                    started_at=at,
                    device=device,
                    scheme="tls",
                    host=host or "(no name sent)",
                    port=443,
                    is_decrypted=False,
                    tls_sni=host,
                    error=f"TLS handshake failed: {err.get('cause') or 'unknown'}",
                ),
                pos,
            )
    except ijson.JSONError as e:
        yield Problem("log._tlsErrors", f"not readable ({e}); skipped")


def _toolkit_body(request: Any) -> bytes | None:
    """HTTP Toolkit's ``request._content``: the body HAR's ``postData`` could not show."""
    content = request.get("_content") if isinstance(request, dict) else None
    if not isinstance(content, dict) or not isinstance(content.get("text"), str):
        return None
    try:
        return binascii.a2b_base64(content["text"], strict_mode=True) or None
    except (binascii.Error, ValueError):
        return None


def _har_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- mitmproxy dumps ----------------------------------------------------------------------


def read_mitm(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """mitmproxy dumps (``mitmdump -w``, ``.mitm``, ``.flow``) through ``mitmproxy.io``.

    Flows keep mitmproxy's own ids, so a dump written next to a live gazeback run
    adds nothing twice.
    """
    _check_mitm(fp)
    yield from _mitm_items(fp, src, 0)


def _check_mitm(fp: IO[bytes]) -> None:
    head = fp.read(16)
    fp.seek(0)
    if not head[:1].isdigit():
        raise Rejected("not a mitmproxy dump: it does not start with a tnetstring length")


def split_mitm(fp: IO[bytes], src: Source, size: int) -> Iterator[tuple[int, bytes]]:
    """The dump cut between flows, ``size`` flows a piece: (number of the first, bytes).

    Only the tnetstring length prefixes are read here. Whatever cannot be framed (a bad
    prefix, a short last flow) goes, exactly as read, at the end of the last piece, so
    ``parse_mitm`` meets the same error at the same flow as ``read_mitm`` would.
    """
    _check_mitm(fp)
    n, count, buf = 0, 0, bytearray()
    while True:
        prefix = fp.read(1)
        while prefix[-1:].isdigit() and len(prefix) <= 13:
            prefix += fp.read(1)
        if not prefix:
            break  # end of file between flows
        buf += prefix
        if not (prefix.endswith(b":") and prefix[:-1].isdigit() and len(prefix) <= 13):
            break  # not a length prefix: the reader says so
        want = int(prefix[:-1]) + 1  # the data and its type byte
        data = fp.read(want)
        buf += data
        if len(data) < want:
            break  # cut short
        count += 1
        if count == size:
            yield n, bytes(buf)
            n, count, buf = n + count, 0, bytearray()
    if buf:
        yield n, bytes(buf)


def parse_mitm(chunk: tuple[int, bytes], src: Source) -> Iterator[Item]:
    """Entries and problems of one piece of a dump (see ``split_mitm``)."""
    import io

    first, data = chunk
    yield from _mitm_items(io.BytesIO(data), src, first)


def _flows(fp: IO[bytes]) -> Iterator[Any]:
    """``mitmproxy.io.FlowReader.stream`` for tnetstring dumps, the same calls and errors."""
    from mitmproxy import exceptions, flow
    from mitmproxy.io import compat, tnetstring

    try:
        while True:
            loaded = tnetstring.load(fp)  # type: ignore[arg-type]
            try:
                yield flow.Flow.from_state(compat.migrate_flow(loaded))  # type: ignore[arg-type]
            except ValueError as e:
                raise exceptions.FlowReadException(e) from e  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, IndexError) as e:
        if str(e) == "not a tnetstring: empty file":
            return
        raise exceptions.FlowReadException("Invalid data format.") from e  # type: ignore[no-untyped-call]


def _mitm_items(fp: IO[bytes], src: Source, n: int) -> Iterator[Item]:
    from mitmproxy import dns, http, tcp, udp

    flows = _flows(fp)
    while True:
        pos = f"flow {n}"
        try:
            flow = next(flows)
        except StopIteration:
            return
        except Exception as e:
            if n == 0:
                raise Rejected(f"not a mitmproxy dump: {e}") from e
            yield Problem(
                pos, f"the rest of the file cannot be read ({e}): truncated or corrupt", last=True
            )
            return
        n += 1
        try:
            if isinstance(flow, http.HTTPFlow):
                kind = "websocket" if flow.websocket else "http" if flow.response else "error"
                snap = snapshot_http(flow, kind)
            elif isinstance(flow, dns.DNSFlow):
                snap = _dns_flow(flow)
            elif isinstance(flow, tcp.TCPFlow | udp.UDPFlow):
                up = sum(len(m.content) for m in flow.messages if m.from_client)
                down = sum(len(m.content) for m in flow.messages if not m.from_client)
                snap = snapshot_tcp(flow, up, down, flow.client_conn.sni, f"{flow.type} flow")  # type: ignore[arg-type]
            else:
                yield Problem(pos, f"{type(flow).__name__} is not imported; skipped")
                continue
        except Exception as e:
            yield Problem(pos, f"cannot read this flow ({type(e).__name__}: {e}); skipped")
            continue
        yield Entry(replace(snap, device=src.device) if src.device else snap, pos)


def _dns_flow(flow: Any) -> FlowSnapshot:
    from gazeback.capture.snapshot import device_key

    q = flow.request.questions[0] if flow.request.questions else None
    resp = flow.response
    return dns_snapshot(
        flow.id,
        flow.request.timestamp,
        device_key(flow.client_conn),
        q.name if q else "(no question)",
        q.type if q else 0,
        server_ip=str(flow.server_conn.peername[0]) if flow.server_conn.peername else None,
        request_bytes=len(flow.request.packed),
        response_bytes=len(resp.packed) if resp else 0,
        duration_ms=(resp.timestamp - flow.request.timestamp) * 1000 if resp else None,
        error=RCODES.get(resp.response_code) if resp else "no answer",
    )
