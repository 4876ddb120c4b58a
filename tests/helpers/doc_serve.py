"""Run a command that serves until Ctrl-C, the way a person does: start it, wait for the address
it prints, open that address (it must answer 200), press Ctrl-C, and require exit status 0.

python doc_serve.py gazeback run ...   (used by the doc-example test's shell wrapper)
"""

import http.cookiejar
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request

URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):\d+/[^\s'\"<>)]*")
LISTENING = re.compile(r"proxy listening at \S*?:(\d+)")
PORT = re.compile(r"\b127\.0\.0\.1:(\d+)\b")
TIMEOUT = 120


def main(argv: list[str]) -> int:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group: Ctrl-C reaches it and its children
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = b""
    url = None
    deadline = time.monotonic() + TIMEOUT
    while url is None and time.monotonic() < deadline:
        if not sel.select(timeout=1):
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        seen += chunk
        text = seen.decode(errors="replace")
        m = URL.search(text)
        if m:
            url = m.group(0).rstrip(".,")
        elif LISTENING.search(text):  # mitmdump: "HTTP(S) proxy listening at *:8080."
            url = "tcp://127.0.0.1:" + LISTENING.search(text).group(1)
    if url is None:
        proc.kill()
        print(f"\ndoc_serve: `{' '.join(argv)}` printed no address to open", file=sys.stderr)
        return 1
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        urllib.request.ProxyHandler({}),
    )
    status = None
    while url.startswith("tcp://") and time.monotonic() < deadline and proc.poll() is None:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5):
            status = 200  # a proxy: it accepts connections
            break
    while status is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            with opener.open(url, timeout=10) as response:
                response.read()
                status = response.status
            break
        except OSError as e:  # not listening yet, or an HTTP error
            status = getattr(e, "code", None)
            if status is not None:
                break
            time.sleep(0.25)
    # A person reads the banner, then uses what it names: wait until every loopback port it
    # shows (the proxy's too) accepts connections.
    for port in sorted(set(PORT.findall(seen.decode(errors="replace")))):
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", int(port))) == 0:
                    break
            time.sleep(0.1)
    print(f"doc_serve: {url} answered {status}", file=sys.stderr)
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:  # it already ended by itself
        pass
    try:
        rest, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        print("doc_serve: still running 60 s after Ctrl-C", file=sys.stderr)
        return 1
    # Nothing it started may outlive it (a few seconds for helpers to notice and exit).
    for _ in range(100):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        left = subprocess.run(
            ["ps", "-o", "pid,cmd", "-g", str(proc.pid)], capture_output=True, text=True
        )
        os.killpg(proc.pid, signal.SIGKILL)
        print(f"doc_serve: still running 10 s after it exited:\n{left.stdout}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(rest)
    if status != 200:
        return 1
    if proc.returncode != 0:
        print(f"doc_serve: exit status {proc.returncode} after Ctrl-C", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
