"""The store's own settings: its mode and its two nodes, from KV_* variables.

fender's settings carry the rest (NETWORK_TIMEOUT_SEC, MAX_STALENESS_MS, the server, the
logs); these three are the store's alone. A bad value fails when the app is built, with a
:class:`~fender.errors.ConfigurationError` naming the variable::

    KV_MODE='xyz' is invalid: expected cp | ap
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fender.errors import ConfigurationError

__all__ = ["URL_SCHEMES", "KvSettings", "load_kv_settings"]

URL_SCHEMES: Final = ("redis://", "rediss://", "sqlite:///")
"""The node URLs the store opens (see ``nodes.open_node``)."""


class KvSettings(BaseSettings):
    """KV_MODE, KV_LOCAL_URL, KV_PEER_URL and KV_SYNC_INTERVAL_MS."""

    model_config = SettingsConfigDict(env_prefix="KV_", extra="ignore", frozen=True)

    mode: Literal["cp", "ap"] = Field(
        "ap",
        description="cp: a write needs both nodes, a read a current one (503 otherwise); "
        "ap: writes and reads need one node, the other catches up (reads say how stale).",
    )
    local_url: str = Field(
        "sqlite:///data/kv-local.db",
        description="This instance's own node: redis://host:port/db or sqlite:///path.",
    )
    peer_url: str = Field(
        "sqlite:///data/kv-peer.db",
        description="The other node, which the other instance calls local.",
    )
    sync_interval_ms: int = Field(
        250,
        ge=10,
        le=600_000,
        description="Milliseconds between background syncs (hint replays both ways, the "
        "staleness check) in each worker.",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("local_url", "peer_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(URL_SCHEMES):
            raise ValueError(f"a URL starting with {' or '.join(URL_SCHEMES)}")
        return value


def load_kv_settings(**overrides: Any) -> KvSettings:
    """KvSettings from the environment, ``overrides`` (field names) winning.

    Raises:
        ConfigurationError: a bad value, naming its variable (``KV_MODE``...).
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return KvSettings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        expected = str(error["msg"]).removeprefix("Value error, ")
        if field == "mode":
            expected = "cp | ap"
        value = error.get("input")
        # A URL may hold a password: then only its length is shown.
        secret = isinstance(value, str) and "@" in value
        raise ConfigurationError(f"KV_{field.upper()}", value, expected, secret=secret) from None
