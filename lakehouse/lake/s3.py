"""The one translation of a zone's S3 settings for Delta (delta-rs) and Arrow.

Both start from ``storage.s3.S3Access``, the same reading boto3 uses, so the three
clients always reach the same endpoint with the same credentials. Local zones need no
options.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlparse

import pyarrow.fs as pa_fs

from lakehouse.config import ZoneSettings


def delta_storage_options(zone: ZoneSettings) -> dict[str, str]:
    """Options for deltalake / object_store (empty for local zones)."""
    if not zone.is_s3:
        return {}
    from lakehouse.storage.s3 import S3Access  # boto3: only for S3 zones

    access = S3Access.of(zone)
    options = {"conditional_put": access.conditional_put}
    if access.region:
        options["AWS_REGION"] = access.region
    if access.endpoint_url:
        options["AWS_ENDPOINT_URL"] = access.endpoint_url
    if access.allow_http:
        options["AWS_ALLOW_HTTP"] = "true"
    if access.access_key_id:
        options["AWS_ACCESS_KEY_ID"] = access.access_key_id
        options["AWS_SECRET_ACCESS_KEY"] = access.secret_access_key or ""
    elif access.profile:
        options["AWS_PROFILE"] = access.profile  # delta-rs resolves (and refreshes) it itself
    return options


def arrow_filesystem(zone: ZoneSettings) -> pa_fs.S3FileSystem:
    """Arrow's native S3 client for an S3 zone (Arrow takes no profile name: boto3 resolves it)."""
    from lakehouse.storage.s3 import S3Access

    access = S3Access.of(zone)
    return _arrow_s3(access.endpoint_url, access.region, access.allow_http, access.credentials())


@lru_cache(maxsize=8)
def _arrow_s3(
    endpoint_url: str | None, region: str | None, allow_http: bool, credentials: tuple[str, str, str | None] | None
) -> pa_fs.S3FileSystem:
    options: dict[str, object] = {}
    if region:
        options["region"] = region
    if endpoint_url:
        endpoint = urlparse(endpoint_url)
        options["endpoint_override"] = endpoint.netloc or endpoint.path
        options["scheme"] = endpoint.scheme or ("http" if allow_http else "https")
    if credentials is not None:
        options["access_key"], options["secret_key"], options["session_token"] = credentials
    return pa_fs.S3FileSystem(**options)
