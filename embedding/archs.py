"""The architectures of DINOv3's released sizes (and a tiny one for tests), as transformers'
`DINOv3ViTConfig` fields: what `random:SIZE` builds and what a role reads a vector size from,
without importing torch or transformers (the index and gateway roles never load a model).

    >>> RANDOM_ARCHS["vits16"]["hidden_size"]
    384
"""

from __future__ import annotations

from typing import Any

# Fields shared by every released DINOv3 ViT (Meta's `dinov3/hub/backbones.py` and the
# `config.json` files of the converted `facebook/dinov3-*-pretrain-lvd1689m` checkpoints):
# patch 16, 4 register ("storage") tokens, RoPE base 100, LayerNorm eps 1e-5 ("layernormbf16"),
# q/v/proj/mlp biases but no key bias (Meta's `mask_k_bias`).
#
# `layerscale_value` is 1.0 as in the released config.json files, not Meta's training init of
# 1e-5: with 1e-5 and random weights every block is a near no-op, so the CLS token is the same
# vector for every image (cosine 1.0 between unrelated inputs), which would make untrained
# runs of scene-change detection and search degenerate. Pretrained weights overwrite it anyway.
DINOV3_COMMON: dict[str, Any] = {
    "patch_size": 16,
    "num_register_tokens": 4,
    "rope_theta": 100.0,
    "layer_norm_eps": 1e-5,
    "layerscale_value": 1.0,
    "query_bias": True,
    "key_bias": False,
    "value_bias": True,
    "proj_bias": True,
    "mlp_bias": True,
    "image_size": 224,
}

# Architecture of each released size. SwiGLU sizes (the "+" models) use Meta's 2/3 rule:
# ViT-S+/16 has ffn_ratio 6 -> int(6 * 384 * 2 / 3) = 1536 hidden units, activation SiLU.
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "vits16": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "vitsplus16": {
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
        "use_gated_mlp": True,
        "hidden_act": "silu",
    },
    "vitb16": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "vitl16": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    # Not a released size: the smallest DINOv3 that exercises every code path, for tests.
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}
RANDOM_ALIASES = {"vits16plus": "vitsplus16"}  # Meta's spelling of the same model
