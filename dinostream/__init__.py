"""dinostream: real-time video analytics on DINOv3 embeddings.

For notebooks and scripts, `dinostream.Engine` is the service's engine with plain return types
(see `dinostream.api`):

    >>> import dinostream
    >>> ds = dinostream.Engine.load("random:vits16", device="cpu")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Comparison", "Engine", "FrameHit", "Match", "Phase", "SceneChange", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: the CLI and the settings do not pay for importing torch.
    if name in __all__ and name != "__version__":
        from dinostream import api

        return getattr(api, name)
    raise AttributeError(f"module 'dinostream' has no attribute {name!r}")
