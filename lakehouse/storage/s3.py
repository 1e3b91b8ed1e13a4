"""S3 (and S3-compatible) object stores through boto3.

boto3 rather than pyarrow.fs: it exposes ETag and StorageClass (needed for
incremental cataloging and manifests), paginated listing, and ranged GETs,
and lets us translate its errors into Transient/Permanent ones ourselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from lakehouse.config import ThrottleSettings, ZoneSettings
from lakehouse.errors import ObjectArchived, ObjectNotFound, PermanentStorageError, TransientStorageError
from lakehouse.storage.base import ObjectInfo, ObjectReader, ObjectStore
from lakehouse.storage.throttle import Throttle, with_retries

T = TypeVar("T")

# Timeout and listing retries of a store opened without settings (the writable zones).
_DEFAULTS = ThrottleSettings()

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


@dataclass(frozen=True)
class S3Access:
    """A zone's S3 settings as every client takes them: blanks are None, and plain HTTP is
    allowed when the endpoint is ``http://`` or the zone says so. boto3 (here) and the Delta
    and Arrow clients (``lakehouse.lake.s3``) all start from this one reading."""

    endpoint_url: str | None
    region: str | None
    access_key_id: str | None
    secret_access_key: str | None
    profile: str | None
    allow_http: bool
    conditional_put: str

    @classmethod
    def of(cls, zone: ZoneSettings) -> S3Access:
        return cls(
            endpoint_url=zone.endpoint_url or None,
            region=zone.region or None,
            access_key_id=zone.access_key_id or None,
            secret_access_key=zone.secret_access_key or None,
            profile=zone.profile or None,
            allow_http=zone.allow_http or zone.endpoint_url.startswith("http://"),
            conditional_put=zone.conditional_put,
        )

    def credentials(self) -> tuple[str, str, str | None] | None:
        """(key id, secret, session token): the zone's keys, else its profile's as boto3
        resolves them (for clients that take no profile name); None = the default chain."""
        if self.access_key_id:
            return self.access_key_id, self.secret_access_key or "", None
        if not self.profile:
            return None
        found = boto3.session.Session(profile_name=self.profile).get_credentials()
        if found is None:
            raise PermanentStorageError(f"AWS profile {self.profile!r} has no credentials")
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token


def make_client(zone: ZoneSettings, timeout: float) -> Any:
    access = S3Access.of(zone)
    session = boto3.session.Session(profile_name=access.profile)
    return session.client(
        "s3",
        endpoint_url=access.endpoint_url,
        region_name=access.region,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        # Retries are ours (jittered, shared throttle), so botocore's are off.
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=32,
        ),
    )


def caller_arn(zone: ZoneSettings, timeout: float = _DEFAULTS.timeout_seconds) -> str:
    """The ARN STS ``GetCallerIdentity`` reports for the zone's credentials: who the cloud
    says is acting (identity mode ``aws``). An S3-compatible endpoint of the zone serves STS too."""
    access = S3Access.of(zone)
    session = boto3.session.Session(profile_name=access.profile)
    client = session.client(
        "sts",
        endpoint_url=access.endpoint_url,
        region_name=access.region,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=timeout, read_timeout=timeout),
    )
    try:
        arn: str = client.get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        raise PermanentStorageError(f"STS GetCallerIdentity failed: {code or type(exc).__name__}") from None
    return arn


def _translate(exc: Exception, key: str) -> Exception:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFound(f"no object at key {key!r}")
        if code == "InvalidObjectState":
            return ObjectArchived(f"S3 {code} on key {key!r}: archived, not restored")
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
        timeout: float = _DEFAULTS.timeout_seconds,
        list_retry: dict[str, Any] | None = None,
    ) -> None:
        self.uri = zone.uri
        self._list_retry = {
            "max_retries": _DEFAULTS.max_retries,
            "base": _DEFAULTS.backoff_base_seconds,
            "cap": _DEFAULTS.backoff_max_seconds,
            **(list_retry or {}),
        }
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
            restore=resp.get("Restore"),
            archive_status=resp.get("ArchiveStatus"),
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


class ArchiveRestorer:
    """The one thing besides reading that may reach the archive: asking S3 to restore an
    archived object (``RestoreObject``: a temporary readable copy; the object itself is not
    changed). Only HEAD and restore exist here, throttled and retried with the archive's
    reads, and only the operator's ``export restore`` opens one (``storage.open_restorer``)."""

    def __init__(self, zone: ZoneSettings, throttle: Throttle, *, timeout: float, retry: dict[str, Any]) -> None:
        self._reader = S3Reader(zone, timeout=timeout)
        self._throttle = throttle
        self._retry = retry

    def _call(self, call: Callable[[], T]) -> T:
        def attempt() -> T:
            self._throttle.before_request()
            return call()

        return with_retries(attempt, **self._retry)

    def head(self, key: str) -> ObjectInfo:
        return self._call(partial(self._reader.head, key))

    def restore(self, key: str, *, days: int, tier: str) -> None:
        """Request a copy readable for ``days`` days at retrieval ``tier`` (bulk, standard,
        expedited). A restore already under way is not an error."""
        self._call(partial(self._restore, key, days, tier))

    def _restore(self, key: str, days: int, tier: str) -> None:
        reader = self._reader
        request = {"Days": days, "GlacierJobParameters": {"Tier": tier.capitalize()}}
        try:
            reader._client.restore_object(Bucket=reader.bucket, Key=reader._key(key), RestoreRequest=request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RestoreAlreadyInProgress":
                return
            raise _translate(exc, key) from None
        except BotoCoreError as exc:
            raise _translate(exc, key) from None
