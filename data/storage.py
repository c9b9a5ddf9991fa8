"""One path helper for local folders and object-store URIs.

`location(text)` gives a `pathlib.Path` for a local path and a `RemotePath` for
a URI (`settings.configs.is_remote` is the rule), with the slice of pathlib's
interface the data code uses: `/`, `name`, `exists`, `is_dir`, `iterdir`,
`mkdir`, `read_bytes`, `read_text`, `write_text`; `open_text` opens either for
CSV reading or writing. Remote I/O goes through TFX's fileio (TensorFlow's
filesystems: `gs://` as the pipeline's components see it), imported only when a
URI is used, so commands on local folders never pay TensorFlow's import.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from settings.configs import flag, is_remote


class RemotePath:
    """A file or folder in an object store, named by its URI."""

    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")

    def __truediv__(self, child: str) -> RemotePath:
        return RemotePath(f"{self.uri}/{child}")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"RemotePath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: RemotePath) -> bool:
        return self.uri < other.uri

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    def exists(self) -> bool:
        return _fileio().exists(self.uri)

    def is_file(self) -> bool:
        return _fileio().exists(self.uri) and not _fileio().isdir(self.uri)

    def is_dir(self) -> bool:
        return _fileio().isdir(self.uri)

    def iterdir(self) -> Iterator[RemotePath]:
        for child in _fileio().listdir(self.uri):
            yield self / child.rstrip("/")

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        # Object stores have no folders; TF's makedirs writes the marker GCS
        # tools show as one. parents/exist_ok hold trivially.
        del parents, exist_ok
        _fileio().makedirs(self.uri)

    def read_bytes(self) -> bytes:
        with _fileio().open(self.uri, "rb") as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        with _fileio().open(self.uri, "wb") as f:
            f.write(text.encode(encoding))


Location = Path | RemotePath


def location(text: str | Path) -> Location:
    """The local path or object-store URI `text` names."""
    return RemotePath(text) if isinstance(text, str) and is_remote(text) else Path(text)


def url(text: str | Path) -> str:
    """What a link to `text` says: the URI itself in an object store, a
    file:// URI of the absolute path for a local file or folder."""
    text = str(text)
    return text if is_remote(text) else Path(text).absolute().as_uri()


@contextlib.contextmanager
def open_text(path: Location, mode: str = "r") -> Iterator[IO[str]]:
    """A UTF-8 text file for the csv module (newline=""), read or ("w") written.
    An object is written whole when the block ends, so a failure leaves the
    previous object (or none), never a partial one."""
    if isinstance(path, Path):
        with open(path, mode, newline="", encoding="utf-8") as f:
            yield f
    elif mode == "w":
        buffer = io.StringIO(newline="")
        yield buffer
        path.write_text(buffer.getvalue())
    else:
        yield io.StringIO(path.read_text(), newline="")


class StorageError(Exception):
    """A location setting names a store that cannot be used; the message says
    which setting, which URI and what to fix."""


# Schemes TensorFlow, Beam and TFX read and write correctly here, and why the
# others cannot hold pipeline data (docs/object-store.md has the measurements).
SUPPORTED_SCHEMES = ("gs",)
_UNSUPPORTED = {
    "s3": "s3:// through tensorflow-io returns wrong data at the end of a file",
    "minio": "TFX executors use tf.io.gfile, which has no minio:// scheme (KFP's launcher "
    "maps minio:// to local paths only for KFP SDK components)",
}


def unsupported_scheme(uri: str) -> str | None:
    """Why `uri` cannot hold pipeline data (one line naming the fix), or None
    for a local path or a supported URI."""
    if not is_remote(uri):
        return None
    scheme = uri.partition("://")[0]
    if scheme in SUPPORTED_SCHEMES:
        return None
    reason = _UNSUPPORTED.get(scheme, f"{scheme}:// is not a filesystem TensorFlow has here")
    return f"{reason}; use a gs:// bucket (docs/object-store.md)"


def check_reachable(uri: str, setting: str, timeout: float = 10.0) -> None:
    """Raises StorageError within about `timeout` seconds, naming `setting`
    (a flag name such as --data-root), when `uri`'s bucket cannot be used:
    an unsupported scheme, an unreachable store, refused credentials, or no
    such bucket. Local paths pass. One request, no retries: TF's own client
    would retry for minutes before the first component failed."""
    if not is_remote(uri):
        return
    problem = unsupported_scheme(uri)
    if problem:
        raise StorageError(f"{setting} {uri}: {problem}")
    rest = uri.partition("://")[2]
    bucket = rest.split("/", 1)[0]
    import google.auth
    import google.auth.exceptions
    from google.api_core import exceptions

    try:
        client = gcs_client()
    except google.auth.exceptions.DefaultCredentialsError:
        raise StorageError(
            f"{setting} {uri}: no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS "
            "to a key file, or run with workload identity (docs/object-store.md)"
        ) from None
    try:
        found = client.bucket(bucket).exists(timeout=timeout, retry=None)
    except (exceptions.Forbidden, exceptions.Unauthorized) as e:
        raise StorageError(
            f"{setting} {uri}: the store refused the credentials ({e.message})"
        ) from None
    except google.auth.exceptions.RefreshError as e:
        reason = e.args[0] if e.args else type(e).__name__
        raise StorageError(
            f"{setting} {uri}: the credentials were refused when renewing them ({reason}); "
            "renew the key or login (docs/object-store.md)"
        ) from None
    except Exception as e:  # connection refused, DNS, TLS, timeout: one line, no traceback
        raise StorageError(
            f"{setting} {uri}: cannot reach the object store ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]})"
        ) from None
    if not found:
        raise StorageError(f"{setting} {uri}: bucket {bucket} does not exist; create it first")


def gcs_client():
    """A Cloud Storage client with the default credentials (the environment's:
    scripts/object_store.sh's env file points them at the local store)."""
    import google.auth
    from google.cloud import storage as gcs

    credentials, project = google.auth.default()
    return gcs.Client(credentials=credentials, project=project)


def check_settings(config, names: Sequence[str]) -> None:
    """`check_reachable` for each location setting in `names` of `config`,
    each named by its flag; raises StorageError at the first that fails."""
    for name in names:
        check_reachable(getattr(config, name), flag(name))


def _fileio():
    from tfx.dsl.io import fileio

    return fileio
