"""Settings from ``lakehouse.toml`` plus ``LAKEHOUSE_<SECTION>_<KEY>`` env overrides."""

from lakehouse.config.settings import (
    CONFIG_FILENAME,
    DEFAULTS,
    ZONES,
    Settings,
    ZoneSettings,
    find_config,
    init_root,
    load_settings,
    render_config,
)

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULTS",
    "ZONES",
    "Settings",
    "ZoneSettings",
    "find_config",
    "init_root",
    "load_settings",
    "render_config",
]
