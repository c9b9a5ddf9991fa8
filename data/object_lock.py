"""A lock in a bucket: one object, changed only by conditional writes.

GCS has no lock call, but it checks a write's precondition atomically: an
upload with `ifGenerationMatch=0` succeeds only if the object does not exist,
with `ifGenerationMatch=G` only if its current generation is G; the loser gets
412 (https://cloud.google.com/storage/docs/request-preconditions). The lock
object holds JSON: `held` with its holder, a token and a lease, or `free`.

- acquire: create it (generation 0), or replace a `free` or expired one
  conditionally on the generation just read; on 412 someone else moved
  first: read again. A `held` lock within its lease: wait and read again.
- release: write `free` conditionally on the generation this holder wrote.
  If that fails, the lease ran out and another holder took over: said (what
  was done under the lock is done; undoing it would lose it), never undone.
- a holder killed without releasing: its lease runs out (the object's
  `updated` time, set by the server, against this machine's clock) and the
  next waiter takes it over.

The object is never deleted: the local store (fake-gcs-server 1.52, behind
scripts/object_store.sh) ignores `ifGenerationMatch` on DELETE, measured,
where GCS refuses the delete; conditional uploads both honour. A retried
upload whose first try had succeeded reads as 412: the token tells this
holder its own write.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator

from data import storage

# Longer than a push takes (seconds: a model's files copied within one
# bucket); a holder still working after it may be overtaken, which its
# release then says.
LEASE_S = 600.0
POLL_S = 1.0


def holder() -> str:
    return f"pid {os.getpid()} on {os.uname().nodename}: {' '.join(sys.argv)[:200]}"


@contextlib.contextmanager
def held(
    uri: str,
    lease_s: float = LEASE_S,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Iterator[None]:
    """Holds the lock object at `uri` (gs://bucket/name) for the duration;
    waits while another holder's lease lasts; says (`say`) whom it waits for,
    a stale lock it takes over, and a lease that ran out while it held."""
    generation, token = acquire(uri, lease_s, say)
    try:
        yield
    finally:
        if not release(uri, generation, token):
            say(
                f"the lock {uri} was taken over while held: its lease of {lease_s} s ran out "
                "before this holder finished, so another holder may have worked meanwhile"
            )


def acquire(uri: str, lease_s: float, say: Callable[[str], None]) -> tuple[int, str]:
    """Takes the lock; returns the generation this holder wrote and its token."""
    bucket, name = _bucket_and_name(uri)
    token = secrets.token_hex(8)
    mine = json.dumps(
        {"state": "held", "holder": holder(), "token": token, "lease_s": lease_s}
    ).encode()
    waiting_for = None
    while True:
        current = bucket.get_blob(name)
        expected = 0
        if current is not None:
            state = _read(current)
            if state is None:  # changed between the two reads
                continue
            if state.get("token") == token:  # our own write, answered 412 on a retry
                return current.generation, token
            if state.get("state") == "held":
                if not _expired(current, state):
                    if waiting_for != state.get("holder"):
                        waiting_for = state.get("holder")
                        say(f"waiting for the lock {uri}, held by {waiting_for}")
                    time.sleep(POLL_S)
                    continue
                say(
                    f"taking over the lock {uri}: its lease of {state.get('lease_s')} s ran out "
                    f"(holder {state.get('holder')}, killed?)"
                )
            expected = current.generation
        claim = bucket.blob(name)
        try:
            claim.upload_from_string(
                mine, content_type="application/json", if_generation_match=expected
            )
        except _precondition_failed():
            continue  # another waiter moved first
        return claim.generation, token


def release(uri: str, generation: int, token: str) -> bool:
    """Frees the lock if this holder's write is still the current one;
    False if another holder took it over."""
    bucket, name = _bucket_and_name(uri)
    try:
        bucket.blob(name).upload_from_string(
            json.dumps({"state": "free", "token": token}).encode(),
            content_type="application/json",
            if_generation_match=generation,
        )
    except _precondition_failed():
        # Freed with this token: a retried release whose first try succeeded.
        # Anything else: taken over after the lease ran out.
        current = bucket.get_blob(name)
        state = _read(current) if current is not None else None
        return state == {"state": "free", "token": token}
    return True


def _read(blob) -> dict | None:
    """The content of the generation `blob` was listed with, or None if it
    changed since."""
    from google.api_core import exceptions

    try:
        return json.loads(blob.download_as_bytes(if_generation_match=blob.generation))
    except (exceptions.PreconditionFailed, exceptions.NotFound):
        return None


def _expired(blob, state: dict) -> bool:
    written = blob.updated or datetime.datetime.now(datetime.timezone.utc)
    age = datetime.datetime.now(datetime.timezone.utc) - written
    return age.total_seconds() > float(state.get("lease_s", LEASE_S))


def _precondition_failed():
    from google.api_core import exceptions

    return exceptions.PreconditionFailed


def _bucket_and_name(uri: str):
    scheme, _, rest = uri.partition("://")
    if scheme != "gs" or "/" not in rest:
        raise ValueError(f"a lock object is gs://<bucket>/<name>, not {uri}")
    bucket, name = rest.split("/", 1)
    return storage.gcs_client().bucket(bucket), name
