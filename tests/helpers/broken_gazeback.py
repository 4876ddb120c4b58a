"""gazeback with a capture function that always raises: proves the proxy fails open."""

import logging

from gazeback.capture import addon
from gazeback.capture import snapshot as capture


def broken(*args, **kwargs):
    raise RuntimeError("simulated bug in gazeback")


capture.snapshot_http = broken


class Counting(addon.TrailLogger):
    def done(self):
        # done() runs after mitmproxy's log handlers are gone: write to stdout ourselves
        print(f"gazeback errors: {self.errors}", flush=True)
        super().done()


logging.getLogger("gazeback")
addons = [Counting()]
