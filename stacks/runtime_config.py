"""Settings for the running Pulumi program, from the config the engine hands it."""

from __future__ import annotations

import pulumi
import pulumi.runtime

from stacks.loader import SettingsError, settings_from_config, shown, stack_file
from stacks.settings import Settings


def current_settings() -> Settings:
    """Validate this stack's whole config once; a bad value stops `pulumi up` with one message.

    The engine passes every config key of the stack in PULUMI_CONFIG (the mocks harness sets
    them directly); reading all of them, not key by key, is what lets unknown keys fail.
    """
    config = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    try:
        return settings_from_config(config, source=shown(stack_file(pulumi.get_stack())))
    except SettingsError as exc:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(exc)) from None
