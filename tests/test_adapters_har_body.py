"""`gazeback adapters test FILE.har` reads a HAR body as the decoded text it is (#14).

HAR files keep postData decoded while keeping the request's Content-Encoding header (the ReportHAR
captures do: the Facebook SDK gzips its app events). The body must still be read.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gazeback.cli.adapters import adapters

BODY = (
    "event=MOBILE_APP_INSTALL&anon_id=XZ9dd82044-772f-4b99-b17b-208e9c3cc38b"
    "&advertiser_id=1209d0b9-b959-42e6-b921-aa5d9d08c1af&application_package_name=tld.sample.app"
)


def test_har_body_is_read_despite_a_content_encoding_header(tmp_path: Path) -> None:
    entry = {
        "request": {
            "method": "POST",
            "url": "https://graph.facebook.com/v14.0/138566025676/activities",
            "headers": [
                {"name": "Content-Type", "value": "application/x-www-form-urlencoded"},
                {"name": "Content-Encoding", "value": "gzip"},
            ],
            "postData": {"mimeType": "application/x-www-form-urlencoded", "text": BODY},
        },
        "response": {"status": 200, "headers": [], "content": {}},
    }
    har = tmp_path / "capture.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
    result = CliRunner().invoke(adapters, ["test", str(har)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (
        "advertisingId" in result.output and "1209d0b9-b959-42e6-b921-aa5d9d08c1af" in result.output
    )
    assert "installationId" in result.output and "appId" in result.output
