"""Where mitmdump will listen, read from its arguments exactly as mitmdump reads them.

``gazeback run -- ARGS`` hands ARGS to mitmdump, so ``--listen-host 0.0.0.0``, ``--mode
socks5@0.0.0.0:1080``, ``--set listen_host=...``, an abbreviation (``--listen-h``) or the
confdir's ``config.yaml`` can all move the proxy onto the network. Rather than guess, this
builds mitmdump's own option parser, applies the arguments and config file the way
``mitmproxy.tools.main.run`` does, and asks each mode (``ProxyMode.listen_host``) where it
will listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import logging
import os
from dataclasses import dataclass

from mitmproxy import exceptions, options, optmanager
from mitmproxy.proxy import mode_specs
from mitmproxy.tools import cmdline
from mitmproxy.tools.dump import DumpMaster
from mitmproxy.tools.main import process_options


@dataclass(frozen=True)
class Listener:
    spec: str  # the mode as given, e.g. "socks5@0.0.0.0:1080"
    kind: str  # "regular", "socks5", "wireguard", ...
    host: str  # "" means every interface
    port: int | None

    @property
    def where(self) -> str:
        return f"{self.host or '0.0.0.0 (every interface)'}:{self.port}"

    @property
    def is_local(self) -> bool:
        """Listens on this computer's loopback interface only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # "" (every interface) or a name that may be anything


def listeners(args: list[str]) -> list[Listener]:
    """Every server mitmdump would start for ``args``; ValueError if it would not start."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    loop = asyncio.new_event_loop()
    try:
        known = options.Options()
        DumpMaster(known, loop=loop, with_termlog=False)  # registers every addon's options
        # the same options without the addons listening to them: parsing must not load
        # scripts (-s) or run any addon's configure
        opts = options.Options()
        for name, o in known._options.items():
            if name not in opts:
                opts.add_option(name, o.typespec, o.default, o.help, o.choices)
        parser = cmdline.mitmdump(opts)  # type: ignore[no-untyped-call]
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parsed = parser.parse_args(args)
            except SystemExit:
                lines = err.getvalue().strip().splitlines() or ["cannot read them"]
                raise ValueError(lines[-1].split("error: ", 1)[-1]) from None
        opts.set(*parsed.setoptions, defer=True)
        optmanager.load_paths(
            opts,
            os.path.join(opts.confdir, "config.yaml"),
            os.path.join(opts.confdir, "config.yml"),
        )
        process_options(parser, opts, parsed)  # type: ignore[no-untyped-call]
        found = []
        for spec in opts.mode:
            mode = mode_specs.ProxyMode.parse(spec)
            found.append(
                Listener(
                    spec,
                    mode.type_name,
                    mode.listen_host(opts.listen_host),
                    mode.listen_port(opts.listen_port),
                )
            )
        return found
    except exceptions.OptionsError as e:
        raise ValueError(str(e)) from None
    finally:
        loop.close()
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
