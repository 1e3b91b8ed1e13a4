"""S3 (and S3-compatible) object stores through boto3.

boto3 rather than pyarrow.fs: it exposes ETag and StorageClass (needed for
incremental cataloging and manifests), paginated listing, and ranged GETs,
and lets us translate its errors into Transient/Permanent ones ourselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from lakehouse.config import ZoneSettings
from lakehouse.errors import ObjectNotFound, PermanentStorageError, TransientStorageError
from lakehouse.storage.base import ObjectInfo, ObjectReader, ObjectStore
from lakehouse.storage.throttle import with_retries

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise PermanentStorageError(f"invalid S3 URI {uri!r}")
    return bucket, prefix.strip("/")


def make_client(zone: ZoneSettings, timeout: float = 30.0) -> Any:
    session = boto3.session.Session(profile_name=zone.profile or None)
    return session.client(
        "s3",
        endpoint_url=zone.endpoint_url or None,
        region_name=zone.region or None,
        aws_access_key_id=zone.access_key_id or None,
        aws_secret_access_key=zone.secret_access_key or None,
        # Retries are ours (jittered, shared throttle), so botocore's are off.
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=32,
        ),
    )


def _translate(exc: Exception, key: str) -> Exception:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFound(f"no object at key {key!r}")
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStorageError(f"S3 {code or status} on key {key!r}")
        return PermanentStorageError(f"S3 {code or status} on key {key!r}")
    if isinstance(exc, ConnectionError | ReadTimeoutError):
        return TransientStorageError(f"S3 connection problem on key {key!r}: {type(exc).__name__}")
    return PermanentStorageError(f"S3 error on key {key!r}: {type(exc).__name__}")


class S3Reader(ObjectReader):
    def __init__(
        self,
        zone: ZoneSettings,
        client: Any | None = None,
        timeout: float = 30.0,
        list_retry: dict[str, Any] | None = None,
    ) -> None:
        self.uri = zone.uri
        self._list_retry = {"max_retries": 5, "base": 0.2, "cap": 10.0, **(list_retry or {})}
        self.bucket, self.prefix = split_s3_uri(zone.uri)
        self._client = client or make_client(zone, timeout)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Page by page; each page request is retried on its own when S3 answers with a
        transient error, so a long listing does not restart (or fail) on one 503."""
        full_prefix = self._key(prefix) if (prefix or self.prefix) else ""
        if self.prefix and not prefix:
            full_prefix = self.prefix + "/"
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
        while True:
            page = with_retries(partial(self._list_page, request, prefix), **self._list_retry)
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=self._rel(item["Key"]),
                    size=int(item["Size"]),
                    etag=str(item.get("ETag", "")).strip('"'),
                    last_modified=item.get("LastModified"),
                    storage_class=item.get("StorageClass"),
                )
            if not page.get("IsTruncated"):
                return
            request = {**request, "ContinuationToken": page["NextContinuationToken"]}

    def _list_page(self, request: dict[str, Any], prefix: str) -> dict[str, Any]:
        try:
            return dict(self._client.list_objects_v2(**request))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, prefix) from None

    def head(self, key: str) -> ObjectInfo:
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from None
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=str(resp.get("ETag", "")).strip('"'),
            last_modified=resp.get("LastModified"),
            storage_class=resp.get("StorageClass", "STANDARD"),
        )

    def _get(self, key: str, **kwargs: Any) -> bytes:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
            return bytes(resp["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise _translate(exc, key) from None

    def get(self, key: str) -> bytes:
        return self._get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return self._get(key, Range=f"bytes={start}-{start + length - 1}")


class S3Store(S3Reader, ObjectStore):
    def put(self, key: str, data: bytes) -> ObjectInfo:
        try:
            resp = self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from None
        return ObjectInfo(key=key, size=len(data), etag=str(resp.get("ETag", "")).strip('"'))

    def create(self, key: str, data: bytes) -> bool:
        # S3 conditional write: If-None-Match "*" fails with 412 when the key exists.
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "PreconditionFailed" or status == 412:
                return False
            raise _translate(exc, key) from None
        except BotoCoreError as exc:
            raise _translate(exc, key) from None
        return True

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, key) from None

    def move(self, src: str, dst: str) -> None:
        # Server-side copy, then delete: no bytes pass through us.
        try:
            self._client.copy_object(
                Bucket=self.bucket, Key=self._key(dst), CopySource={"Bucket": self.bucket, "Key": self._key(src)}
            )
        except (ClientError, BotoCoreError) as exc:
            error = _translate(exc, src)
            if isinstance(error, ObjectNotFound) and self.exists(dst):
                return
            raise error from None
        self.delete(src)
