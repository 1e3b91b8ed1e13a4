"""The sections of ``lakehouse.toml``: one frozen dataclass each, defaults written here only.

A field's default is the default of its setting; ``metadata`` holds what the loader checks
beyond the type (``min``, ``max``, ``choices``, ``placeholders``). The loader and
``lakehouse init`` both read these classes, so a new setting is one new field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lakehouse.errors import ConfigError

ZONES = ("archive", "restricted", "research", "datasets")
EXPORT_ENGINES = ("local", "spark")
ARCHIVE_SYMLINK_MODES = ("never", "inside")
IDENTITY_MODES = ("os", "aws", "asserted")
RESTORE_TIERS = ("bulk", "standard", "expedited")
LINEAGE_TRANSPORTS = ("none", "file", "http")

_Number = TypeVar("_Number", int, float)


def _at_least(low: float, default: _Number) -> _Number:
    """A numeric setting with a lower bound the loader enforces."""
    number: _Number = field(default=default, metadata={"min": low})
    return number


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """How to reach S3-compatible stores; ``[s3]`` is shared, a zone section may override any key."""

    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    profile: str = ""
    allow_http: bool = False
    conditional_put: str = "etag"  # Delta commit safety on S3


@dataclass(frozen=True)
class ZoneSettings(S3Settings):
    """Where one zone lives and how to reach it.

    In the file a zone section holds ``uri`` plus any ``[s3]`` key; ``name`` comes from the
    section and ``uri`` is resolved (relative paths against the config folder) by the loader.
    """

    name: str = field(metadata={"from_file": False})
    uri: str

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def local_path(self) -> Path:
        if self.is_s3:
            raise ConfigError(f"zone {self.name} is on S3, not a local folder")
        return Path(self.uri.removeprefix("file://"))

    def join(self, *parts: str) -> str:
        """URI of a location inside the zone (for Delta tables and the like)."""
        base = self.uri.rstrip("/")
        rest = "/".join(p.strip("/") for p in parts if p)
        return f"{base}/{rest}" if rest else base


@dataclass(frozen=True)
class ArchiveSettings(ZoneSettings):
    """The archive zone. On a local folder ``follow_symlinks`` says which symbolic links the
    catalog and exports follow: ``never`` (cataloged with parse status ``symlink``, never read)
    or ``inside`` (links whose target stays inside the archive folder; others as ``never``)."""

    follow_symlinks: str = field(default="never", metadata={"choices": ARCHIVE_SYMLINK_MODES})


@dataclass(frozen=True)
class ThrottleSettings:
    """Caps on archive traffic, shared by all threads of a process (0 = no cap).

    Adaptive: a request slower than ``slow_request_seconds``, or a transient error, halves
    the rates; each fast success wins back a little, up to the caps.
    """

    requests_per_second: float = _at_least(0, 200.0)
    bytes_per_second: float = _at_least(0, 200_000_000)
    max_retries: int = _at_least(0, 5)
    backoff_base_seconds: float = _at_least(0, 0.2)
    backoff_max_seconds: float = _at_least(0, 10.0)
    timeout_seconds: float = _at_least(0, 30.0)
    adaptive: bool = True
    slow_request_seconds: float = _at_least(0, 2.0)
    min_fraction: float = field(default=0.05, metadata={"min": 0, "max": 1})


@dataclass(frozen=True)
class CatalogSettings:
    """Header-only range reads (``header_bytes`` first, growing up to ``max_header_bytes``)."""

    header_bytes: int = _at_least(1, 65536)
    max_header_bytes: int = _at_least(1, 16 * 1024 * 1024)
    workers: int = _at_least(1, 8)
    batch_size: int = _at_least(1, 2000)


@dataclass(frozen=True)
class IdentitySettings:
    """How the tool knows who is acting: ``os`` (the login of the process), ``aws`` (the caller
    ARN that STS reports for the restricted zone's credentials) or ``asserted`` (names taken as
    typed: demos and tests only). ``signing_key`` is the acting user's OpenSSH Ed25519 private
    key that signs decisions; the mode is governed (file only), the key is per user (env allowed)."""

    mode: str = field(default="os", metadata={"choices": IDENTITY_MODES, "file_only": True})
    signing_key: str = ""


@dataclass(frozen=True)
class RolesSettings:
    """Who may do what: each role is a list of identities of the configured mode (OS logins,
    caller ARNs or asserted names), never one string."""

    requesters: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    curators: tuple[str, ...] = ()  # build and withdraw labeling datasets
    labelers: tuple[str, ...] = ()  # pull labeling datasets


@dataclass(frozen=True)
class PolicySettings:
    """A quorum of distinct approvers, the longest approval, the k-anonymity floor, and the public keys that may sign
    decisions: ``allowed_signers`` lines in OpenSSH format, as git uses them
    (``principal[,principal] [valid-after="YYYYMMDD",valid-before="YYYYMMDD"] ssh-ed25519 AAAA… [comment]``)."""

    approvals_required: int = _at_least(1, 1)
    max_validity_days: int = _at_least(1, 365)
    allowed_signers: tuple[str, ...] = ()
    # The k-anonymity floor of every export and dataset over its kept quasi-identifiers
    # (schemas/deid/quasi_identifiers.json); 1 switches the check off (the review says so).
    min_k: int = _at_least(1, 5)


@dataclass(frozen=True)
class DeidKeySettings:
    """Where a project's key comes from: the env var named by ``key_env`` (as hex), else
    ``restricted/keys/<project>.key``, created on first use."""

    # {project} keeps projects apart: one shared key would link their pseudonyms.
    key_env: str = field(default="LAKEHOUSE_DEID_KEY_{project}", metadata={"placeholders": ("project",)})


@dataclass(frozen=True)
class ExportSettings:
    """The export's default engine, pool size and batch size; vacuum retention after purges
    (hours; 0 removes purged files at once); the term of a project's writer lease (seconds,
    renewed every quarter of it) and how long a purge waits for a running export's lease; how
    often a run with no terminal to show a bar on logs its progress (seconds; 0 = never)."""

    engine: str = field(default="local", metadata={"choices": EXPORT_ENGINES})
    workers: int = _at_least(1, 2)
    batch_size: int = _at_least(1, 500)
    vacuum_retention_hours: int = _at_least(0, 0)
    lease_seconds: int = _at_least(2, 60)
    lease_wait_seconds: int = _at_least(0, 300)
    progress_log_seconds: float = _at_least(0, 60.0)


@dataclass(frozen=True)
class LineageSettings:
    """Where OpenLineage run events of exports, catalog syncs and dataset builds go: ``none``
    (the default), ``file`` (one JSON event per line appended to ``file``, relative to the config
    folder) or ``http`` (POSTed to ``url`` + ``endpoint``, as Marquez and DataHub take them).
    ``namespace`` names this lakehouse's jobs; ``api_key_env`` names the env var holding the
    server's API key, if it wants one (sent as a bearer token; the key never sits in the file).
    A transport that fails only logs a warning."""

    transport: str = field(default="none", metadata={"choices": LINEAGE_TRANSPORTS})
    namespace: str = "lakehouse"
    file: str = "lineage/openlineage.jsonl"
    url: str = ""
    endpoint: str = "api/v1/lineage"
    timeout_seconds: float = _at_least(0.1, 5.0)
    api_key_env: str = ""


@dataclass(frozen=True)
class TablesSettings:
    """Where ``tables register`` puts a project's tables: the AWS Glue Data Catalog of
    ``glue_region`` (empty: the research zone's region) at ``glue_endpoint_url`` (empty: AWS's own),
    in the database named by ``database`` (``--database`` overrides it). Credentials are the
    research zone's."""

    database: str = field(default="lakehouse_{project}", metadata={"placeholders": ("project",)})
    glue_endpoint_url: str = ""
    glue_region: str = ""


@dataclass(frozen=True)
class StorageTiersSettings:
    """The archive's storage tiers: the retrieval tier of the restores an operator requests
    (``bulk``: cheapest and slowest), and a price table replacing the packaged one
    (``schemas/pricing/s3.json``): a JSON file of the same shape for another region or
    negotiated prices, relative to the config file's folder; "" = the packaged table."""

    restore_tier: str = field(default="bulk", metadata={"choices": RESTORE_TIERS})
    price_table: str = ""
