"""DEVELOPMENT STAND-IN front for Google Cloud Storage's endpoints: a mitmproxy
addon. It is not GCS; it lets the real GCS clients reach fake-gcs-server.

TensorFlow's built-in `gs://` filesystem has its endpoints compiled in
(`https://www.googleapis.com/storage/v1/`, `.../upload/storage/v1/` and
`https://storage.googleapis.com/` for reads; tsl's gcs_file_system.cc, no
environment variable moves them). Its libcurl honours `HTTPS_PROXY` and
`CURL_CA_BUNDLE`, so scripts/object_store.sh runs mitmproxy as that proxy with
this addon: TLS for the two GCS host names ends here (mitmproxy's local CA), and
each request goes on to fake-gcs-server on loopback. Every client (TF's C++
filesystem, google-cloud-storage under Beam) talks to its production endpoint;
only the proxy and the CA bundle are local. Any other host is refused (403),
so a forgotten setting fails instead of leaving the machine.

Three differences between fake-gcs-server 1.54 and GCS are bridged here, each
in the direction of what GCS does, never kinder than GCS:

- TF starts every resumable upload and rewrite with an empty POST carrying
  `Transfer-Encoding: identity` (tsl curl_http_request.cc, SetPostEmptyBody).
  GCS accepts it; Go's net/http refuses any transfer coding but `chunked` with
  501 "Unsupported transfer encoding". The header is dropped (the body is empty,
  Content-Length: 0 stays).
- google-cloud-storage sends batch parts without Content-ID (storage/batch.py);
  GCS answers them in order (cloud.google.com/storage/docs/batch: Content-ID is
  optional), fake-gcs-server skips them (fakestorage/server.go handleBatchCall),
  returning an empty batch. Parts get sequential Content-IDs.
- fake-gcs-server builds resumable-upload `Location` URLs with its own scheme
  (plain HTTP behind this front); GCS answers `https://`. The scheme is set back
  to https so the upload continues through this front.
"""

from __future__ import annotations

import os
import re

from mitmproxy import http

GCS_HOSTS = frozenset({"storage.googleapis.com", "www.googleapis.com"})
EMULATOR_PORT_VARIABLE = "CFPB_GCS_EMULATOR_PORT"
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')


def request(flow: http.HTTPFlow) -> None:
    host = flow.request.pretty_host
    if host not in GCS_HOSTS:
        flow.response = http.Response.make(
            403, f"refused by the local object store front: {host} is not GCS".encode()
        )
        return
    if flow.request.headers.get("transfer-encoding", "").lower() == "identity":
        del flow.request.headers["transfer-encoding"]
    if flow.request.path.startswith("/batch/storage/v1"):
        flow.request.content = _with_content_ids(
            flow.request.content or b"", flow.request.headers.get("content-type", "")
        )
    flow.request.scheme = "http"
    flow.request.host = "127.0.0.1"
    flow.request.port = int(os.environ[EMULATOR_PORT_VARIABLE])
    flow.request.headers["Host"] = host  # the emulator routes XML reads by host


def response(flow: http.HTTPFlow) -> None:
    if flow.response is None:
        return
    location = flow.response.headers.get("location", "")
    if location.startswith("http://"):
        flow.response.headers["location"] = "https://" + location[len("http://") :]


def _with_content_ids(body: bytes, content_type: str) -> bytes:
    """The batch body with a Content-ID on every part that has none."""
    match = _BOUNDARY.search(content_type)
    if not match:
        return body
    delimiter = b"--" + match.group(1).encode()
    parts = body.split(delimiter)
    number = 0
    for i in range(1, len(parts)):
        part = parts[i]
        if part.startswith(b"--"):  # the closing delimiter
            continue
        newline = b"\r\n" if part.startswith(b"\r\n") else b"\n"
        headers = part.split(newline * 2, 1)[0].lower()
        if b"content-id:" in headers:
            continue
        number += 1
        parts[i] = newline + b"Content-ID: <item%d>" % number + part
    return delimiter.join(parts)
