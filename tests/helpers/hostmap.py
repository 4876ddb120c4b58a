"""Test-only mitmproxy addon: send every server connection to the local upstream, keeping
the host name the client asked for (SNI and Host stay e.g. www.google-analytics.com).
Nothing leaves the machine.

Plain HTTP is re-addressed per request (so mitmproxy reuses its upstream connection, as it
would for a real host); TLS connections at connect time (the SNI stays the real name).
With ``hostmap_at_connect``, plain HTTP is re-addressed at connect time too, so that addons
loaded before this one (gazeback's SSRF guard) see the name the client asked for.
"""

from mitmproxy import ctx


class HostMap:
    def load(self, loader):
        loader.add_option("hostmap_port", int, 0, "local HTTPS upstream port")
        loader.add_option("hostmap_http_port", int, 0, "local HTTP upstream port")
        loader.add_option("hostmap_at_connect", bool, False, "re-address plain HTTP at connect")

    def requestheaders(self, flow):
        if ctx.options.hostmap_at_connect:
            return
        if flow.request.scheme == "http" and flow.request.method != "CONNECT":
            host_header = flow.request.host_header
            flow.request.host = "127.0.0.1"
            flow.request.port = ctx.options.hostmap_http_port
            flow.request.host_header = host_header

    def server_connect(self, data):
        host, port = data.server.address[:2]
        if host == "127.0.0.1":
            return
        tls = port == 443 or data.server.tls
        target = ctx.options.hostmap_port if tls else ctx.options.hostmap_http_port
        data.server.address = ("127.0.0.1", target)


addons = [HostMap()]
