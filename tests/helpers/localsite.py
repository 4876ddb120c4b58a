"""Test-only mitmproxy addon, loaded after hostmap.py: plain-HTTP requests for one made-up
site name (``localsite_host``, e.g. shop.example) go to a local web server on
``localsite_port`` instead of the stand-in upstream, so a test page can have a real name."""

from mitmproxy import ctx


class LocalSite:
    def load(self, loader):
        loader.add_option("localsite_host", str, "shop.example", "the site's made-up name")
        loader.add_option("localsite_port", int, 0, "the local web server's port")

    def requestheaders(self, flow):
        if flow.request.scheme == "http" and flow.request.pretty_host == ctx.options.localsite_host:
            flow.request.host = "127.0.0.1"
            flow.request.port = ctx.options.localsite_port
            flow.request.host_header = ctx.options.localsite_host


addons = [LocalSite()]
