"""``gazeback adapters list|test``: the adapters that say what each tracker learned."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import click

from gazeback.knowledge import learn


def _index(directory: Path | None) -> learn.AdapterIndex:
    try:
        return learn.index_from(directory) if directory is not None else learn.load_index()
    except learn.AdapterError as e:
        raise click.ClickException(str(e)) from None


ADAPTERS_OPTION = click.option(
    "--adapters",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read the adapter files (*.yaml) from this folder instead of the bundled ones.",
)


@click.group(name="adapters")
def adapters() -> None:
    """Adapters: per tracker endpoint, which kinds of data a request carries and where."""


@adapters.command(name="list")
@ADAPTERS_OPTION
def list_(directory: Path | None) -> None:
    """List the adapters: company, endpoints, how many properties each reads.

    Example:

        gazeback adapters list
    """
    index = _index(directory)
    endpoints = 0
    for a in sorted(index.adapters, key=lambda a: (a.company.lower(), a.id)):
        click.echo(f"{a.id}  ({a.company}: {a.name}) — {len(a.properties)} properties")
        for ep in a.endpoints:
            endpoints += 1
            methods = ",".join(sorted(ep.methods)) if ep.methods else "any method"
            path = ep.path.pattern if ep.path else "any path"
            click.echo(f"    {' '.join(ep.hosts)}  {path}  ({methods})")
    companies = len({a.company for a in index.adapters})
    click.echo(f"{len(index.adapters)} adapters, {endpoints} endpoints, {companies} companies")


def _har_requests(path: Path) -> list[tuple[str, learn.Request | str]]:
    """(position, request or the reason the entry cannot be read) of every HAR entry."""
    # the import's streaming reader and its guards (nesting depth, not a HAR): one sentence
    from gazeback.imports.base import Rejected, Source
    from gazeback.imports.flows import split_har

    try:
        with open(path, "rb") as fp:
            entries = [e for _, run in split_har(fp, Source(path.name, ""), 1 << 62) for e in run]
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}; nothing tested") from None
    except Rejected as e:
        why = " ".join(str(e).split())  # the JSON parser's message spans lines
        raise click.ClickException(f"{path} is {why}; nothing tested") from None
    out: list[tuple[str, learn.Request | str]] = []
    for i, entry in enumerate(entries):
        pos = f"entry {i}"
        try:
            out.append((pos, _request(entry)))
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            out.append((pos, f"not a HAR request ({type(e).__name__}: {e})"))
    return out


def _request(entry: dict[str, Any]) -> learn.Request:
    req = entry["request"]
    headers: dict[str, str] = {}
    for h in req.get("headers") or []:
        name = str(h["name"]).lower()
        if name.startswith(":"):
            continue  # HTTP/2 pseudo-headers
        headers[name] = f"{headers[name]}, {h['value']}" if name in headers else str(h["value"])
    body: bytes | None = None
    post = req.get("postData") or {}
    if post.get("text"):
        text = str(post["text"])
        body = base64.b64decode(text) if post.get("encoding") == "base64" else text.encode()
        headers.pop(
            "content-encoding", None
        )  # HAR keeps the body decoded; the header names the wire form
        if post.get("mimeType") and "content-type" not in headers:
            headers["content-type"] = str(post["mimeType"])
    return learn.request_from_url(str(req.get("method") or "GET"), str(req["url"]), headers, body)


@adapters.command(name="test")
@click.argument("har", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@ADAPTERS_OPTION
@click.option("--all", "show_all", is_flag=True, help="Also list requests no adapter matched.")
def test(har: Path, directory: Path | None, show_all: bool) -> None:
    """Print what each request of a HAR file carried, as the adapters read it (for adapter
    authors; values are printed as sent and nothing is stored).

    Example:

        gazeback adapters test capture.har --all
    """
    index = _index(directory)
    requests = _har_requests(har)
    matched = claims = 0
    for pos, request in requests:
        if isinstance(request, str):
            click.echo(f"{pos}: {request}")
            continue
        found_by = index.match(request.method, request.host, request.path)
        url = f"{request.method} {request.host}{request.path}"
        if not found_by:
            if show_all:
                click.echo(f"{pos}: {url} — no adapter")
            continue
        matched += 1
        found = learn.apply(found_by, request)
        names = ", ".join(a.id for a in found_by)
        click.echo(f"{pos}: {url} — {names}" + ("" if found else ": nothing claimed"))
        for f in found:
            claims += 1
            value = f.value if len(f.value) <= 100 else f.value[:99] + "…"
            click.echo(f"    {f.property:24} {f.location:36} {value}")
    click.echo(f"{len(requests)} requests, {matched} matched an adapter, {claims} properties found")
