"""Meta's original DINOv3 `.pth` checkpoints, converted in-process to `DINOv3ViTModel`.

The key mapping follows transformers' `convert_dinov3_vit_to_hf.py` (its `ORIGINAL_TO_CONVERTED_KEY_MAPPING`
and `split_qkv`) and the modules of Meta's `dinov3/models/vision_transformer.py` and `dinov3/layers`:

    cls_token                 (1, 1, D)   -> embeddings.cls_token
    storage_tokens            (1, R, D)   -> embeddings.register_tokens
    mask_token                (1, D)      -> embeddings.mask_token (1, 1, D)
    patch_embed.proj.{w,b}                -> embeddings.patch_embeddings.{w,b}
    rope_embed.periods        (Dh/4,)     -> nothing to load: HF recomputes inv_freq = 1/periods from rope_theta;
                                             the buffer gives the head size (4 x its length) and the base
    blocks.N.norm1/norm2                  -> layer.N.norm1/norm2
    blocks.N.attn.qkv.weight  (3D, D)     -> layer.N.attention.{q,k,v}_proj.weight (split in thirds, q k v)
    blocks.N.attn.qkv.bias    (3D,)       -> {q,k,v}_proj.bias, after `bias * bias_mask` (Meta's
                                             LinearKMaskedBias zeroes the K third; a K bias that survives the mask
                                             is kept: with RoPE it is not a no-op)
    blocks.N.attn.proj                    -> layer.N.attention.o_proj
    blocks.N.ls1.gamma / ls2.gamma        -> layer.N.layer_scale1.lambda1 / layer_scale2.lambda1
    blocks.N.mlp.fc1 / fc2                -> layer.N.mlp.up_proj / down_proj              (ViT-S, B, L: GELU MLP)
    blocks.N.mlp.w1 / w2 / w3             -> layer.N.mlp.gate_proj / up_proj / down_proj  (S+, H+: SwiGLU,
                                             Meta computes w3(silu(w1 x) * w2 x))
    norm                                  -> norm
    local_cls_norm                        -> dropped (Meta applies it to local crops in training only)

`layer.N` is `model.layer.N` in transformers 5 (the encoder is a submodule); the prefix is read
from the installed model class. The architecture comes from tensor shapes alone: width from the
CLS token, depth from the block count, heads from the RoPE periods, MLP kind and width from the
MLP weights, registers from the storage tokens, biases from which bias tensors exist.

    >>> model, arch = load_meta_checkpoint(Path("dinov3_vits16_pretrain_lvd1689m-08c60483.pth"))
    >>> arch
    'vits16'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel


class CheckpointError(ValueError):
    """The file is not a DINOv3 ViT checkpoint this converter understands; the message says why."""


# Released sizes (Meta's `dinov3/hub/backbones.py`): hidden, depth, heads, MLP width, SwiGLU.
KNOWN_ARCHS: dict[str, tuple[int, int, int, int, bool]] = {
    "vits16": (384, 12, 6, 1536, False),
    "vitsplus16": (384, 12, 6, 1536, True),
    "vitb16": (768, 12, 12, 3072, False),
    "vitl16": (1024, 24, 16, 4096, False),
    "vithplus16": (1280, 32, 20, 5120, True),
}
# Meta's "layernormbf16", used by every released ViT; the eps is not stored in the weights.
_LAYER_NORM_EPS = 1e-5
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BLOCK_KEYS = {
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.qkv.bias_mask",
    "attn.proj.weight",
    "attn.proj.bias",
    "ls1.gamma",
    "ls2.gamma",
}
_MLP = {"mlp.fc1": "up_proj", "mlp.fc2": "down_proj", "mlp.w1": "gate_proj", "mlp.w2": "up_proj", "mlp.w3": "down_proj"}
_TOP_KEYS = {
    "cls_token",
    "mask_token",
    "storage_tokens",
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "rope_embed.periods",
    "norm.weight",
    "norm.bias",
}
_DROPPED_PREFIXES = ("local_cls_norm.",)


def read_meta_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The backbone state dict of a Meta `.pth` file (tensors only: `weights_only` loading, no code runs).

    Accepts the released backbone files (a flat state dict) and training checkpoints that wrap it
    (`{"teacher": {"backbone.blocks.0...": ...}}`, `{"model": ...}`, `module.` prefixes).
    """
    try:
        try:
            obj: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as e:  # pickle errors, zip errors, truncation, unsupported globals
        raise CheckpointError(f"cannot read it as a PyTorch checkpoint ({_first_line(e)})") from None
    for wrapper in ("teacher", "model", "state_dict", "model_ema"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError("it holds no state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in ("module.", "backbone."):
        if any(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if "cls_token" not in state or "patch_embed.proj.weight" not in state:
        raise CheckpointError("it is not a DINOv3 ViT backbone (no cls_token / patch_embed.proj.weight)")
    return state


def infer_config(state: Mapping[str, torch.Tensor]) -> tuple[DINOv3ViTConfig, str]:
    """The `DINOv3ViTConfig` of a Meta state dict, from shapes only, and the size's name ("vits16"...)."""
    _check_keys(state)
    dim = int(state["cls_token"].shape[-1])
    patch_w = state["patch_embed.proj.weight"]
    if patch_w.ndim != 4 or patch_w.shape[0] != dim or patch_w.shape[2] != patch_w.shape[3]:
        raise CheckpointError(f"patch_embed.proj.weight has shape {tuple(patch_w.shape)}, not (D, C, P, P)")
    depth = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK.match(k)))
    gated = "blocks.0.mlp.w1.weight" in state
    hidden = int(state["blocks.0.mlp.w1.weight" if gated else "blocks.0.mlp.fc1.weight"].shape[0])
    heads, theta = _heads_and_theta(state, dim)
    registers = int(state["storage_tokens"].shape[1]) if "storage_tokens" in state else 0
    qkv_bias = "blocks.0.attn.qkv.bias" in state
    key_bias = qkv_bias and any(
        bool(_effective_qkv_bias(state, i)[dim : 2 * dim].any()) for i in range(depth)
    )  # a K bias is dead only where Meta's bias_mask zeroes it
    fields: dict[str, Any] = dict(
        hidden_size=dim,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=hidden,
        use_gated_mlp=gated,
        hidden_act="silu" if gated else "gelu",
        patch_size=int(patch_w.shape[-1]),
        num_channels=int(patch_w.shape[1]),
        num_register_tokens=registers,
        rope_theta=theta,
        layer_norm_eps=_LAYER_NORM_EPS,
        layerscale_value=1.0,
        query_bias=qkv_bias,
        key_bias=key_bias,
        value_bias=qkv_bias,
        proj_bias="blocks.0.attn.proj.bias" in state,
        mlp_bias=f"blocks.0.mlp.{'w1' if gated else 'fc1'}.bias" in state,
        image_size=224,
        attn_implementation="sdpa",
    )
    config = DINOv3ViTConfig(**fields)
    shape = (dim, depth, heads, hidden, gated)
    name = next((n for n, a in KNOWN_ARCHS.items() if a == shape), f"custom-{dim}d{depth}l")
    return config, name


def convert_state_dict(
    state: Mapping[str, torch.Tensor], config: DINOv3ViTConfig, layer_prefix: str = "model.layer."
) -> dict[str, torch.Tensor]:
    """Meta's keys and tensors -> `DINOv3ViTModel` keys and fp32 tensors (`layer_prefix`: where its blocks are)."""
    dim = config.hidden_size
    out: dict[str, torch.Tensor] = {
        "embeddings.cls_token": state["cls_token"].reshape(1, 1, dim),
        # Only used with bool_masked_pos (training); zeros, Meta's init, where a file leaves it out.
        "embeddings.mask_token": state.get("mask_token", torch.zeros(dim)).reshape(1, 1, dim),
        "embeddings.patch_embeddings.weight": state["patch_embed.proj.weight"],
        "norm.weight": state["norm.weight"],
        "norm.bias": state["norm.bias"],
    }
    if "patch_embed.proj.bias" in state:
        out["embeddings.patch_embeddings.bias"] = state["patch_embed.proj.bias"]
    registers = state.get("storage_tokens", torch.zeros(1, 0, dim))  # DINOv3ViTModel keeps a (1, 0, D) tensor
    out["embeddings.register_tokens"] = registers.reshape(1, config.num_register_tokens, dim)
    for i in range(config.num_hidden_layers):
        src, dst = f"blocks.{i}.", f"{layer_prefix}{i}."
        for norm in ("norm1", "norm2"):
            out[f"{dst}{norm}.weight"] = state[f"{src}{norm}.weight"]
            out[f"{dst}{norm}.bias"] = state[f"{src}{norm}.bias"]
        q, k, v = state[f"{src}attn.qkv.weight"].chunk(3, dim=0)
        out[f"{dst}attention.q_proj.weight"] = q
        out[f"{dst}attention.k_proj.weight"] = k
        out[f"{dst}attention.v_proj.weight"] = v
        if config.query_bias:
            qb, kb, vb = _effective_qkv_bias(state, i).chunk(3)
            out[f"{dst}attention.q_proj.bias"] = qb
            out[f"{dst}attention.v_proj.bias"] = vb
            if config.key_bias:
                out[f"{dst}attention.k_proj.bias"] = kb
        out[f"{dst}attention.o_proj.weight"] = state[f"{src}attn.proj.weight"]
        if config.proj_bias:
            out[f"{dst}attention.o_proj.bias"] = state[f"{src}attn.proj.bias"]
        for n in (1, 2):  # Meta builds no LayerScale when layerscale_init is None: a scale of one
            gamma = state.get(f"{src}ls{n}.gamma")
            out[f"{dst}layer_scale{n}.lambda1"] = gamma if gamma is not None else torch.ones(dim)
        for meta, hf in _MLP.items():
            if f"{src}{meta}.weight" in state:
                out[f"{dst}mlp.{hf}.weight"] = state[f"{src}{meta}.weight"]
                if f"{src}{meta}.bias" in state:
                    out[f"{dst}mlp.{hf}.bias"] = state[f"{src}{meta}.bias"]
    return {k: t.detach().to(torch.float32).contiguous() for k, t in out.items()}


def load_meta_checkpoint(path: Path) -> tuple[DINOv3ViTModel, str]:
    """Read, convert and load a Meta `.pth` file; returns the fp32 model (eval mode) and the size's name."""
    state = read_meta_checkpoint(path)
    config, name = infer_config(state)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; keep the global RNG as is
        model = DINOv3ViTModel(config)
    keys = model.state_dict().keys()
    prefix = "model.layer." if "model.layer.0.norm1.weight" in keys else "layer."
    converted = convert_state_dict(state, config, prefix)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bad = sorted(k for k, t in converted.items() if k in expected and tuple(t.shape) != expected[k])
    missing, unexpected = sorted(expected.keys() - converted.keys()), sorted(converted.keys() - expected.keys())
    if bad or missing or unexpected:
        what = (
            f"{bad[0]} is {tuple(converted[bad[0]].shape)}, expected {expected[bad[0]]}"
            if bad
            else f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
        )
        raise CheckpointError(f"its tensors do not form a consistent DINOv3 ViT ({what})")
    model.load_state_dict(converted, strict=True)
    return model.eval(), name


# --- helpers -----------------------------------------------------------------------------------


def _check_keys(state: Mapping[str, torch.Tensor]) -> None:
    if "cls_norm.weight" in state:
        raise CheckpointError(
            "it has a separate CLS norm (untie_cls_and_patch_norms), which DINOv3ViTModel cannot represent"
        )
    unknown = []
    for key in state:
        if key in _TOP_KEYS or key.startswith(_DROPPED_PREFIXES):
            continue
        m = _BLOCK.match(key)
        if m and (m.group(2) in _BLOCK_KEYS or m.group(2).rsplit(".", 1)[0] in _MLP):
            continue
        unknown.append(key)
    if unknown:
        raise CheckpointError(f"it has {len(unknown)} tensors this converter does not know, e.g. {unknown[0]!r}")
    for key in ("norm.weight", "norm.bias", "blocks.0.attn.qkv.weight"):
        if key not in state:
            raise CheckpointError(f"it lacks {key!r}")
    if "blocks.0.mlp.w1.weight" not in state and "blocks.0.mlp.fc1.weight" not in state:
        raise CheckpointError("it has neither an MLP (mlp.fc1) nor a SwiGLU (mlp.w1) in block 0")


def _heads_and_theta(state: Mapping[str, torch.Tensor], dim: int) -> tuple[int, float]:
    """Attention heads and RoPE base from `rope_embed.periods` = base ** (4 i / head_dim), i < head_dim / 4."""
    periods = state.get("rope_embed.periods")
    if periods is None:  # stripped buffer: the released sizes all use 64-wide heads and base 100
        known = {a[0]: a[2] for a in KNOWN_ARCHS.values()}
        return known.get(dim, max(1, dim // 64)), 100.0
    p = periods.detach().to(torch.float64).flatten()
    head_dim = 4 * p.numel()
    if head_dim == 0 or dim % head_dim:
        raise CheckpointError(f"rope_embed.periods has {p.numel()} entries, which fits no head size of width {dim}")
    theta = float(p[1] ** (head_dim / 4)) if p.numel() > 1 else 100.0
    expected = theta ** (4 * torch.arange(p.numel(), dtype=torch.float64) / head_dim)
    if not math.isfinite(theta) or not torch.allclose(p, expected, rtol=1e-3):
        raise CheckpointError(
            "its RoPE periods are not base ** (4 i / head_dim) (min/max-period RoPE is not supported)"
        )
    return dim // head_dim, theta


def _effective_qkv_bias(state: Mapping[str, torch.Tensor], block: int) -> torch.Tensor:
    """Meta's LinearKMaskedBias adds `bias * bias_mask`; without a mask the bias applies as stored."""
    bias = state[f"blocks.{block}.attn.qkv.bias"].detach().to(torch.float32)
    mask = state.get(f"blocks.{block}.attn.qkv.bias_mask")
    if mask is not None:
        bias = bias * mask.detach().to(torch.float32)
    if not torch.isfinite(bias).all():  # Meta initialises bias_mask with NaN until init_weights() runs
        raise CheckpointError(f"block {block} has a non-finite qkv bias (or an uninitialised bias_mask)")
    return bias


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]
