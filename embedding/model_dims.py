"""The vector sizes a model's records will have, read from its configuration without loading it
(the index and gateway roles open the index before, or without, any model).

    >>> model_dims(ModelSettings(model="random:vitb16", patch_pca_dims=64))
    (768, 64)
"""

from __future__ import annotations

import json
from pathlib import Path

from dinostream.core.errors import DinostreamError
from dinostream.core.settings import ModelSettings
from dinostream.embedding.archs import RANDOM_ALIASES, RANDOM_ARCHS


def model_dims(model: ModelSettings) -> tuple[int, int | None]:
    """(vector size, patch vector size or None = the same) of the records the model produces,
    read from its configuration without loading weights (`random:SIZE`, a checkpoint directory,
    a Hub id in the cache or on the Hub); DinostreamError when it cannot be read."""
    spec = model.model
    dim: int | None = None
    try:
        if spec.startswith("random:"):
            size = spec.removeprefix("random:")
            arch = RANDOM_ARCHS.get(RANDOM_ALIASES.get(size, size))
            dim = int(arch["hidden_size"]) if arch else None
        else:
            path = Path(spec).expanduser()
            if (path / "config.json").is_file():
                dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
            elif not path.exists():
                from huggingface_hub import hf_hub_download

                dim = int(json.loads(Path(hf_hub_download(spec, "config.json")).read_text())["hidden_size"])
    except Exception as e:  # noqa: BLE001 - any way of failing names the model
        raise DinostreamError(f"cannot read the vector size of model {spec!r} from its config: {e}") from None
    if dim is None:
        raise DinostreamError(
            f"cannot read the vector size of model {spec!r} without loading it: use a checkpoint directory, a Hub "
            "id or random:SIZE for the index and gateway roles"
        )
    return dim, model.patch_pca_dims
