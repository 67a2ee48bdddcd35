"""Reading settings: defaults merged with a file, environment overrides, typed values. Pure.

kopers.config says what the settings are; this module holds the generic
rules every setting follows: unknown keys are errors, an environment value
takes the type of the setting it replaces, and numbers are checked for range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kopers.errors import ConfigError

# Short environment names for scripts, beside the generic KOPERS_<SECTION>_<KEY>.
SHORT_ENV = {
    "KOPERS_DATA_DIR": ("", "data_dir"),
    "KOPERS_LISTEN": ("server", "listen"),
    "KOPERS_PUBLIC_URL": ("server", "public_url"),
}


def tables(section: Mapping[str, Any], key: str, allowed: set[str]) -> list[Mapping[str, Any]]:
    items = section.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigError(f"vm.{key} must be an array of tables ([[vm.{key}]])")
    for item in items:
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(f"unknown setting(s) in [[vm.{key}]]: {', '.join(sorted(unknown))}")
    return items


def required_str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} needs a non-empty string {key!r}")
    return value


def natural(section: Mapping[str, Any], key: str) -> int:
    """A non-negative integer (0 is meaningful: no warm clones, the image's own size)."""
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def positive(section: Mapping[str, Any], key: str) -> int:
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def path_setting(value: Any, base: Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (base / path).resolve()


def merge(defaults: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in defaults.keys() | override.keys():
        d, o = defaults.get(key), override.get(key)
        if isinstance(d, Mapping) and isinstance(o, Mapping):
            out[key] = merge(d, o)
        elif key in override:
            out[key] = o
        else:
            out[key] = d
    unknown = set(override) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return out


def apply_env(merged: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if name in SHORT_ENV:
            section, key = SHORT_ENV[name]
        elif name.startswith("KOPERS_") and name != "KOPERS_CONFIG":
            parts = name[len("KOPERS_") :].lower().split("_", 1)
            if len(parts) != 2 or not isinstance(merged.get(parts[0]), dict):
                continue
            section, key = parts
            if key not in merged[section]:
                continue
        else:
            continue
        target = merged if not section else merged[section]
        target[key] = env_value(value, target.get(key))


def env_value(text: str, current: Any) -> Any:
    """Give an environment string the type of the setting it replaces."""
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {text!r}")
    if isinstance(current, list):
        # KOPERS_NETWORK_ALLOW="10.1.0.0/16,192.168.5.0/24"
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError as exc:
            raise ConfigError(f"expected an integer, got {text!r}") from exc
    return text
