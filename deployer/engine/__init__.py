"""The engine that executes plans: the step loop (:mod:`.engine`) and the step handlers,
grouped by what they touch (:mod:`.deployments`, :mod:`.services`, :mod:`.traffic`,
:mod:`.holds`). Handlers get a :class:`~deployer.engine.context.StepContext`, never the
engine itself."""

from deployer.engine.context import RunSettings
from deployer.engine.engine import Engine

__all__ = ["Engine", "RunSettings"]
