"""One small interface over `s3://bucket/key` and local paths.

Both kinds of URI go through the same methods, so every stage is tested on local paths
and on a real S3 protocol server with the same code. S3 access follows the standard AWS
credential chain and `AWS_ENDPOINT_URL` (boto3 reads it), and `ClientParams` overrides
them in one place, as prefect-aws's `AwsClientParameters` does: any S3-compatible
endpoint (MinIO, moto, Ceph) works.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from velibcast import constants as C
from velibcast.errors import AccessDenied, NotFound, StorageError, TransientStorageError
from velibcast.redact import redact_text

_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
    "ServiceUnavailable", "503", "500", "502", "504",
}


@dataclass(frozen=True)
class ClientParams:
    """Overrides for the S3 client; None means "use the standard AWS chain"."""

    endpoint_url: str | None = None
    region_name: str | None = None
    profile_name: str | None = None
    max_attempts: int = C.S3_MAX_ATTEMPTS

    @classmethod
    def from_dict(cls, d: dict | None) -> ClientParams:
        d = dict(d or {})
        unknown = set(d) - {"endpoint_url", "region_name", "profile_name", "max_attempts"}
        if unknown:
            raise StorageError(f"unknown s3 client parameter(s) {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    version: str = ""  # changes when the object is rewritten: its ETag on S3, size and mtime locally


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        p = p.strip("/")
        if p:
            out = f"{out}/{p}"
    return out


def as_uri(uri: str) -> str:
    """A location as a URI: S3 and file:// stay; a local path becomes file:///abs/path."""
    if is_s3(uri) or uri.startswith("file://"):
        return uri
    return "file://" + str(Path(uri).resolve()) + ("/" if uri.endswith("/") else "")


def split_s3(uri: str) -> tuple[str, str]:
    p = urlparse(uri)
    if p.scheme != "s3" or not p.netloc:
        raise StorageError(f"{uri!r} is not an s3://bucket/key URI")
    return p.netloc, p.path.lstrip("/")


def local_path(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    return Path(uri)


@dataclass
class Storage:
    params: ClientParams = field(default_factory=ClientParams)

    def __post_init__(self):
        self._client = None
        self._lock = threading.Lock()

    # -- S3 plumbing -------------------------------------------------------------
    @property
    def s3(self):
        # boto3 clients are thread-safe once built; building one is not, hence the lock.
        with self._lock:
            if self._client is None:
                import boto3  # lazy: boto3 (~0.35 s) only for s3:// stores
                from botocore.config import Config  # lazy: with boto3, only for s3:// stores

                session = boto3.session.Session(profile_name=self.params.profile_name)
                self._client = session.client(
                    "s3",
                    endpoint_url=self.params.endpoint_url,
                    region_name=self.params.region_name,
                    config=Config(
                        retries={"max_attempts": self.params.max_attempts, "mode": "standard"},
                        max_pool_connections=max(10, C.FETCH_CONCURRENCY * 2),
                    ),
                )
            return self._client

    def _s3_call(self, uri: str, op: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError  # lazy: with boto3, only for s3:// stores

        try:
            return fn(*args, **kwargs)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(f"{uri}: no such object", status) from e
            if status == 403 or code in ("AccessDenied", "403"):
                raise AccessDenied(f"{op} {uri}: access denied ({code}); the credentials need s3:GetObject, "
                                   "s3:PutObject, s3:DeleteObject and s3:ListBucket on the bucket "
                                   "(configs/iam/runner-policy.json)", status) from e
            # botocore's messages may echo the endpoint URL, credentials included: redact
            if code in _TRANSIENT_CODES or (status and status >= 500):
                raise TransientStorageError(redact_text(f"{op} {uri} failed after retries: {code} {e}"), status) from e
            raise StorageError(redact_text(f"{op} {uri} failed: {code} {e}"), status) from e
        except BotoCoreError as e:
            raise TransientStorageError(redact_text(f"{op} {uri} failed: {e}")) from e

    # -- reading -----------------------------------------------------------------
    def read_bytes(self, uri: str) -> bytes:
        if is_s3(uri):
            b, k = split_s3(uri)
            resp = self._s3_call(uri, "GET", self.s3.get_object, Bucket=b, Key=k)
            return self._s3_call(uri, "GET", resp["Body"].read)
        p = local_path(uri)
        try:
            return p.read_bytes()
        except FileNotFoundError as e:
            raise NotFound(f"{uri}: no such file") from e

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            b, k = split_s3(uri)
            try:
                self._s3_call(uri, "HEAD", self.s3.head_object, Bucket=b, Key=k)
                return True
            except NotFound:
                return False
        return local_path(uri).is_file()

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, in key order, paginated.

        The prefix is literal (as S3Prefix in Batch Transform): `runs/a` matches
        `runs/a/x` and `runs/ab`. For local paths the same rule is applied to the path.
        """
        if is_s3(prefix):
            b, k = split_s3(prefix)
            kwargs = {"Bucket": b, "Prefix": k, "MaxKeys": C.S3_LIST_PAGE_SIZE}
            if start_after:
                kwargs["StartAfter"] = split_s3(start_after)[1]
            paginator = self.s3.get_paginator("list_objects_v2")
            pages = self._s3_call(prefix, "LIST", lambda: iter(paginator.paginate(**kwargs)))
            while True:
                page = self._s3_call(prefix, "LIST", next, pages, None)
                if page is None:
                    return
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # folder markers are not objects to process
                    yield ObjectInfo(f"s3://{b}/{obj['Key']}", obj["Size"], obj.get("ETag", ""))
        else:
            yield from _list_local(prefix, start_after)

    # -- writing -----------------------------------------------------------------
    def write_bytes(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        """Write an object whole. Readers see the old object or the new one, never a part."""
        if is_s3(uri):
            b, k = split_s3(uri)
            extra = {"ContentType": content_type} if content_type else {}
            self._s3_call(uri, "PUT", self.s3.put_object, Bucket=b, Key=k, Body=data, **extra)
            return
        p = local_path(uri)
        tmp = _write_temp(p, data)
        os.replace(tmp, p)

    def write_text(self, uri: str, text: str, content_type: str | None = None) -> None:
        self.write_bytes(uri, text.encode("utf-8"), content_type)

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        """Create the object only if it does not exist. True if this call created it.

        On S3 this is a conditional write (If-None-Match: *); locally a hard link. Two
        concurrent callers cannot both win, which is what run locks rely on. `data` must be
        unique to the caller (lock bodies carry host, pid and time): when botocore retries a
        PUT whose answer was lost, the retry meets the object the first attempt created,
        and only its bytes tell that this caller won.
        """
        if is_s3(uri):
            from botocore.exceptions import ClientError  # lazy: with boto3, only for s3:// stores

            b, k = split_s3(uri)
            try:
                self._s3_call(uri, "conditional PUT", self.s3.put_object, Bucket=b, Key=k, Body=data, IfNoneMatch="*")
                return True
            except StorageError as e:
                cause = e.__cause__
                code = str(cause.response.get("Error", {}).get("Code", "")) if isinstance(cause, ClientError) else ""
                if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    raise
            try:
                return self.read_bytes(uri) == data
            except NotFound:
                return False
        p = local_path(uri)
        unnamed = _unnamed_file(p.parent, data)
        if unnamed is None:
            tmp = _write_temp(p, data)
            try:
                return _link_if_absent(str(tmp), p)
            finally:
                tmp.unlink()
        try:
            return _link_if_absent(f"/proc/self/fd/{unnamed}", p)
        finally:
            os.close(unnamed)

    def delete(self, uri: str) -> None:
        if is_s3(uri):
            b, k = split_s3(uri)
            self._s3_call(uri, "DELETE", self.s3.delete_object, Bucket=b, Key=k)
            return
        try:
            local_path(uri).unlink()
        except FileNotFoundError:
            pass


def _unnamed_file(folder: Path, data: bytes) -> int | None:
    """A descriptor of `data` written and synced in an unnamed file of `folder` (Linux O_TMPFILE), or
    None where the OS or the filesystem (NFS) has none. It gets a name only when linked: a writer
    killed before leaves nothing behind, where a named temporary stayed beside the lock."""
    folder.mkdir(parents=True, exist_ok=True)
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        fd = os.open(folder, flag | os.O_WRONLY, 0o644)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link_if_absent(src: str, p: Path) -> bool:
    """Link `src` to `p` unless `p` exists; True if this call created `p`. The name appears with
    its bytes in place, so a concurrent caller never reads an empty lock (O_EXCL then write would
    show one). Through the folder's descriptor os.link is linkat with AT_SYMLINK_FOLLOW, which
    links the file /proc/self/fd/N stands for, not that link."""
    folder = os.open(p.parent, os.O_DIRECTORY)
    try:
        os.link(src, p.name, dst_dir_fd=folder)
        return True
    except FileExistsError:
        return False
    finally:
        os.close(folder)


def _write_temp(p: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `p`, synced to disk, ready to be renamed or linked to `p`.

    Beside, so the rename stays on one filesystem and is atomic. Its name hides it from every
    reader of the folder: the `_` prefix from pyarrow, Hive and Athena, the `.tmp` ending from
    globs such as DuckDB's or polars' `**/*.parquet`, which skip no prefix."""
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f"{C.TMP_PREFIX}{uuid.uuid4().hex}-{p.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _list_local(prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
    scheme = "file://" if prefix.startswith("file://") else ""
    p = local_path(prefix)
    # A literal prefix, as on S3: `.../in` also matches `.../input2/y.csv`, so unless it ends
    # with "/" the parent directory is listed and filtered by string.
    slash = prefix.endswith("/")
    base = p if slash else p.parent
    if not base.is_dir():
        return
    sp = str(p) + ("/" if slash else "")
    sa = str(local_path(start_after)) if start_after else None
    found = []
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(C.TMP_PREFIX)]
        for name in files:
            if name.startswith(C.TMP_PREFIX):
                continue
            full = os.path.join(root, name)
            if full.startswith(sp) and (sa is None or full > sa):
                found.append(full)
    for full in sorted(found):
        s = os.stat(full)
        yield ObjectInfo(f"{scheme}{full}", s.st_size, f"{s.st_size}-{s.st_mtime_ns}")
