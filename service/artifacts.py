"""Artifact I/O: the one module that reads and writes checkpoints, retrained weights and exports.

``ENAS_ARTIFACT_DIR`` is a local path (a shared volume in compose/KubeRay), a ``file:///...`` URI, or
``s3://bucket/prefix`` (any S3-compatible store). Local paths use the standard library; S3 goes
through pyarrow's filesystem layer (``pyarrow.fs.S3FileSystem``), which Ray already installs: fsspec
would need s3fs, which is not installed. The endpoint comes from ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` (e.g. ``http://minio:9000``), credentials and region from the standard AWS
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), so a stored
URI stays the stable, meaningful ``s3://bucket/prefix/7/ckpt-3.pt`` on every node.

Atomic publish: on a file system the bytes go to a temporary name in the same folder, are fsynced
and renamed into place; on S3 one PUT is all-or-nothing per object. Either way a reader sees a whole
artifact or none, and the database row that names the URI (written after) is what makes it visible.

Standard library only at import time (pyarrow is imported when an S3 URI is first used), so the
API and CLI processes may import it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlparse

SCHEMES = ("", "file", "s3")


class ArtifactError(RuntimeError):
    """An artifact store is unreachable, refused a request, or its URI's scheme is unsupported."""


class ArtifactMissing(ArtifactError, FileNotFoundError):
    """No artifact at this URI."""


def redact(uri: str) -> str:
    """``uri`` without any user or password part (safe to log and show)."""
    parsed = urlparse(uri)
    if "@" not in parsed.netloc:
        return uri
    return parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()


def check_uri(uri: str) -> str:
    """Validate an artifact location (scheme supported, S3 names a bucket); returns it unchanged."""
    parsed = urlparse(uri)
    scheme = "" if len(parsed.scheme) <= 1 else parsed.scheme  # "C:\\..." is a path
    if scheme not in SCHEMES:
        raise ArtifactError(
            f"unsupported artifact location {redact(uri)}: use a path, file:///... or s3://bucket/prefix"
        )
    if scheme == "s3" and not parsed.netloc:
        raise ArtifactError(f"artifact location {redact(uri)} names no bucket (s3://bucket/prefix)")
    if "@" in parsed.netloc:
        raise ArtifactError(f"artifact location {redact(uri)} carries credentials: use the AWS_* variables")
    return uri


def join(base: str, *parts: str | int) -> str:
    """``base`` with ``parts`` appended by ``/`` (the stored URIs' form)."""
    return "/".join([base.rstrip("/"), *(str(p).strip("/") for p in parts)])


def put_bytes(uri: str, data: bytes) -> None:
    """Publish ``data`` at ``uri`` atomically (replacing what was there)."""
    local = _local_path(uri)
    if local is None:
        _s3_call(uri, lambda fs, path: _s3_put(fs, path, data))
        return
    parent = os.path.dirname(local) or "."
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, local)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(parent)


def get_bytes(uri: str) -> bytes:
    """The artifact's bytes. Raises ArtifactMissing (none there) or ArtifactError (unreachable)."""
    local = _local_path(uri)
    if local is None:
        return bytes(_s3_call(uri, _s3_get))
    try:
        with open(local, "rb") as fh:
            return fh.read()
    except FileNotFoundError as e:
        raise ArtifactMissing(f"no artifact at {uri}") from e


def exists(uri: str) -> bool:
    """Whether an artifact (a file or object) is at ``uri``."""
    local = _local_path(uri)
    if local is None:
        return bool(_s3_call(uri, _s3_is_file))
    return os.path.isfile(local)


def list_names(folder: str) -> list[str]:
    """Names (not URIs) of the artifacts directly under ``folder``, sorted; [] when there is none.
    Temporary files of writes in progress are left out."""
    local = _local_path(folder)
    if local is None:
        names = _s3_call(folder, _s3_list)
    else:
        try:
            names = [e.name for e in os.scandir(local) if e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            names = []
    return sorted(n for n in names if not n.startswith(".part-"))


def delete(uri: str) -> bool:
    """Remove the artifact at ``uri``; False when it was already gone (e.g. another worker pruned it)."""
    local = _local_path(uri)
    if local is None:
        return bool(_s3_call(uri, _s3_delete))
    try:
        os.unlink(local)
    except FileNotFoundError:
        return False
    return True


def local_file(uri: str | None) -> str | None:
    """The local path a path or ``file://`` URI names (None for object stores or no URI)."""
    return None if not uri else _local_path(uri)


def _local_path(uri: str) -> str | None:
    parsed = urlparse(check_uri(uri))
    if parsed.scheme == "s3":
        return None
    path = unquote(parsed.path) if parsed.scheme == "file" else uri
    return os.path.abspath(os.path.expanduser(path))


# --- S3 through pyarrow ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _s3_filesystem(endpoint: str | None, region: str | None) -> Any:
    from pyarrow import fs

    options: dict[str, Any] = {
        "connect_timeout": 5.0,
        "request_timeout": 30.0,
        "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc or parsed.path
        options["scheme"] = parsed.scheme or "https"
    if region:
        options["region"] = region
    return fs.S3FileSystem(**options)


def _s3_call(uri: str, action: Any) -> Any:
    """Run ``action(filesystem, "bucket/key")``; errors become ArtifactError naming the URI only."""
    parsed = urlparse(uri)
    path = f"{parsed.netloc}/{parsed.path.lstrip('/')}".rstrip("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        return action(_s3_filesystem(endpoint, region), path)
    except ArtifactError:
        raise
    except FileNotFoundError as e:
        raise ArtifactMissing(f"no artifact at {uri}") from e
    except (OSError, ValueError) as e:  # pyarrow raises OSError for network, auth and bucket errors
        where = f" (endpoint {endpoint})" if endpoint else ""
        raise ArtifactError(f"artifact store unreachable or refused {uri}{where}: {_first_line(e)}") from None


def _s3_put(fs: Any, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:  # one PUT (or multipart upload) completes on close
        out.write(data)


def _s3_get(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def _s3_is_file(fs: Any, path: str) -> bool:
    from pyarrow.fs import FileType

    return bool(fs.get_file_info(path).type == FileType.File)


def _s3_list(fs: Any, path: str) -> list[str]:
    from pyarrow.fs import FileSelector, FileType

    infos = fs.get_file_info(FileSelector(path, allow_not_found=True, recursive=False))
    return [info.base_name for info in infos if info.type == FileType.File]


def _s3_delete(fs: Any, path: str) -> bool:
    if not _s3_is_file(fs, path):
        return False
    fs.delete_file(path)
    return True


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _fsync_dir(path: str) -> None:
    """Persist a rename (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
