"""A local stand-in for the internet: HTTP and HTTPS servers on 127.0.0.1 that answer for
any host name (the hostmap test addon sends every connection here). Certificates come from
mitmproxy's own CertStore, so no openssl binary is needed."""

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore

HOSTS = [
    "www.google-analytics.com",
    "connect.facebook.net",
    "www.facebook.com",
    "tracker.example",
    "pinned.example",
    "api.example.org",
    "localhost",
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {"host": self.headers.get("host"), "path": self.path, "got": len(body)}
        ).encode()
        # one write: headers and body in two segments meet delayed ACKs (40 ms a request)
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        )

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, *args) -> None:
        pass


class Upstream:
    def __init__(self, http_server, https_server, ca_path: Path) -> None:
        self.http, self.https, self.ca_path = http_server, https_server, ca_path
        self.http_port = http_server.server_address[1]
        self.https_port = https_server.server_address[1]

    def stop(self) -> None:
        for s in (self.http, self.https):
            s.shutdown()
            s.server_close()


def make_cert(folder: Path) -> tuple[Path, Path, Path]:
    store = CertStore.from_store(folder / "ca", "upstream", 2048)
    entry = store.get_cert(HOSTS[0], [x509.DNSName(h) for h in HOSTS])
    crt, key = folder / "upstream.crt", folder / "upstream.key"
    crt.write_bytes(entry.cert.to_pem())
    key.write_bytes(
        entry.privatekey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return crt, key, folder / "ca" / "upstream-ca-cert.pem"


def start_upstream(folder: Path) -> Upstream:
    crt, key, ca = make_cert(folder)
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    https_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    https_server.socket = context.wrap_socket(https_server.socket, server_side=True)
    for s in (http_server, https_server):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    return Upstream(http_server, https_server, ca)
