"""Settings from ``lakehouse.toml`` plus ``LAKEHOUSE_<SECTION>_<KEY>`` env overrides,
as one typed section per ``[section]``: ``settings.export.batch_size``,
``settings.throttle.requests_per_second``, ``settings.roles.approvers``. Governed settings
(roles, policy, identity mode) come from the file only."""

from lakehouse.config.sections import (
    EXPORT_ENGINES,
    IDENTITY_MODES,
    ZONES,
    ArchiveSettings,
    CatalogSettings,
    DeidKeySettings,
    ExportSettings,
    IdentitySettings,
    LineageSettings,
    PolicySettings,
    RolesSettings,
    S3Settings,
    StorageTiersSettings,
    TablesSettings,
    ThrottleSettings,
    ZoneSettings,
)
from lakehouse.config.settings import CONFIG_FILENAME, Settings, find_config, load_settings
from lakehouse.config.template import default_values, exposed_restricted_folder, init_root, render_config

__all__ = [
    "CONFIG_FILENAME",
    "EXPORT_ENGINES",
    "IDENTITY_MODES",
    "ZONES",
    "ArchiveSettings",
    "CatalogSettings",
    "DeidKeySettings",
    "ExportSettings",
    "IdentitySettings",
    "LineageSettings",
    "PolicySettings",
    "RolesSettings",
    "S3Settings",
    "Settings",
    "StorageTiersSettings",
    "TablesSettings",
    "ThrottleSettings",
    "ZoneSettings",
    "default_values",
    "exposed_restricted_folder",
    "find_config",
    "init_root",
    "load_settings",
    "render_config",
]
