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

Credentials, as GCS and Google's OAuth 2.0 token endpoint treat them
(fake-gcs-server accepts any request, which would hide a pod without
credentials): every storage request needs `Authorization: Bearer <token>`
with a token this front issued, else 401 with GCS's error body (reason
`required` for none, `authError` for a wrong one; cloud.google.com/storage/
docs/json_api/v1/status-codes). Tokens come from the token endpoints the
clients call for an `authorized_user` credentials file (the kind
`gcloud auth application-default login` writes): google-auth posts to
`https://oauth2.googleapis.com/token`, TF's GCS filesystem to
`https://www.googleapis.com/oauth2/v3/token` (tsl oauth_client.cc). A
refresh grant with the refresh token of the store's credentials file
(`CFPB_GCS_CREDENTIALS`, written by scripts/object_store.sh) gets an access
token; any other gets 400 `invalid_grant` "Token has been expired or
revoked.", Google's answer for a revoked grant
(developers.google.com/identity/protocols/oauth2, "Refresh token expiration").

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

import functools
import hashlib
import json
import os
import re
import urllib.parse

from mitmproxy import http

GCS_HOSTS = frozenset({"storage.googleapis.com", "www.googleapis.com"})
# (host, path) of the OAuth 2.0 token endpoints: google-auth's, then TF's two.
TOKEN_ENDPOINTS = frozenset(
    {
        ("oauth2.googleapis.com", "/token"),
        ("www.googleapis.com", "/oauth2/v3/token"),
        ("www.googleapis.com", "/oauth2/v4/token"),
    }
)
EMULATOR_PORT_VARIABLE = "CFPB_GCS_EMULATOR_PORT"
CREDENTIALS_VARIABLE = "CFPB_GCS_CREDENTIALS"
TOKEN_SECONDS = 3599  # what Google's endpoint grants
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')


def access_token(refresh_token: str) -> str:
    """The access token a refresh token is exchanged for: derived, so tokens
    stay valid across a restart of the front, as Google's do for an hour."""
    return "ya29.local." + hashlib.sha256(refresh_token.encode()).hexdigest()[:40]


@functools.cache
def _store_refresh_token() -> str:
    # Read once per front: scripts/object_store.sh writes the file before it
    # starts the front and never rewrites it; every request asks for it.
    with open(os.environ[CREDENTIALS_VARIABLE]) as f:
        return json.load(f)["refresh_token"]


def _json(status: int, body: dict) -> http.Response:
    return http.Response.make(
        status, json.dumps(body).encode(), {"Content-Type": "application/json; charset=UTF-8"}
    )


def _token_response(flow: http.HTTPFlow) -> http.Response:
    form = dict(urllib.parse.parse_qsl((flow.request.content or b"").decode()))
    if form.get("grant_type") != "refresh_token":
        return _json(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": "the local store issues tokens for its "
                "authorized_user credentials file only",
            },
        )
    if form.get("refresh_token") != _store_refresh_token():
        return _json(
            400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
        )
    return _json(
        200,
        {
            "access_token": access_token(form["refresh_token"]),
            "expires_in": TOKEN_SECONDS,
            "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
        },
    )


def _unauthorized(flow: http.HTTPFlow) -> http.Response | None:
    """GCS's 401 for a request without a token this front issued, or None."""
    given = flow.request.headers.get("authorization", "")
    if given == f"Bearer {access_token(_store_refresh_token())}":
        return None
    if given:
        message, reason = "Invalid Credentials", "authError"
    else:
        message = (
            "Anonymous caller does not have storage.objects.get access to the Google Cloud "
            "Storage object. Permission 'storage.objects.get' denied on resource (or it may "
            "not exist)."
        )
        reason = "required"
    if flow.request.pretty_host == "storage.googleapis.com":  # the XML API answers in XML
        code = "AuthenticationRequired" if reason == "required" else "InvalidCredentials"
        return http.Response.make(
            401,
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error>".encode(),
            {"Content-Type": "application/xml; charset=UTF-8"},
        )
    error = {
        "message": message,
        "domain": "global",
        "reason": reason,
        "locationType": "header",
        "location": "Authorization",
    }
    return _json(401, {"error": {"code": 401, "message": message, "errors": [error]}})


def request(flow: http.HTTPFlow) -> None:
    host = flow.request.pretty_host
    if (host, flow.request.path.split("?", 1)[0]) in TOKEN_ENDPOINTS:
        flow.response = _token_response(flow)
        return
    if host not in GCS_HOSTS:
        flow.response = http.Response.make(
            403, f"refused by the local object store front: {host} is not GCS".encode()
        )
        return
    refused = _unauthorized(flow)
    if refused:
        flow.response = refused
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
