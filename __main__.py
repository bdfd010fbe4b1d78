"""The Pulumi program: this stack's settings -> MlopsEnvironment -> stack outputs."""

import pulumi

from components.environment import MlopsEnvironment, MlopsEnvironmentArgs
from stacks.outputs import export_outputs
from stacks.runtime_config import current_settings

environment = MlopsEnvironment(
    "mlops", MlopsEnvironmentArgs(settings=current_settings(), stack=pulumi.get_stack())
)
export_outputs(environment)
