"""Each default and each environment name is declared once: in the settings model.

``fender.ratelimit._config`` reads its defaults and variable names from the settings fields
(``field_default``, ``env_name``); these tests fail if a copy creeps back in and drifts.
"""

from __future__ import annotations

import dataclasses

from fender.ratelimit._config import ENV_NAMES, RateLimitConfig
from fender.ratelimit._lease import ENV_NAMES as LEASE_ENV_NAMES
from fender.settings import Settings, env_name, env_vars, field_default, load_settings

# The config fields built from a setting (the others, key_prefix, max_keys..., are the
# limiter's own and have no variable).
FROM_SETTINGS = tuple(ENV_NAMES)


def test_rate_limit_config_defaults_are_the_settings_defaults():
    by_hand = RateLimitConfig()
    from_settings = RateLimitConfig.from_settings(load_settings({}, env_file=None))
    for name in FROM_SETTINGS:
        assert getattr(by_hand, name) == getattr(from_settings, name), name


def test_the_default_rate_limit_is_declared_once():
    assert str(RateLimitConfig().default) == field_default("rate_limit")
    assert RateLimitConfig().timeout == field_default("rate_limit_timeout_ms") / 1000


def test_rate_limit_env_names_are_the_settings_names():
    documented = {var.name for var in env_vars()}
    assert set(ENV_NAMES.values()) <= documented
    rate_limit_fields = {f for f in Settings.model_fields if f.startswith("rate_limit")}
    read = set(ENV_NAMES.values()) | set(LEASE_ENV_NAMES.values())
    assert {env_name(f) for f in rate_limit_fields} <= read


def test_every_config_field_from_settings_has_its_variable():
    fields = {f.name for f in dataclasses.fields(RateLimitConfig) if f.init}
    assert set(FROM_SETTINGS) <= fields


def test_field_default_and_env_name_read_the_model():
    assert field_default("rate_limit") == Settings.model_fields["rate_limit"].default
    assert env_name("redis_url") == "REDIS_URL"
    assert env_name("commit") == "FENDER_COMMIT"  # the first of its names
