"""Test-only mitmproxy addon: send every server connection to the local upstream, keeping
the host name the client asked for (SNI and Host stay e.g. www.google-analytics.com).
Nothing leaves the machine."""

from mitmproxy import ctx


class HostMap:
    def load(self, loader):
        loader.add_option("hostmap_port", int, 0, "local HTTPS upstream port")
        loader.add_option("hostmap_http_port", int, 0, "local HTTP upstream port")

    def server_connect(self, data):
        host, port = data.server.address[:2]
        tls = port == 443 or data.server.tls
        target = ctx.options.hostmap_port if tls else ctx.options.hostmap_http_port
        data.server.address = ("127.0.0.1", target)


addons = [HostMap()]
