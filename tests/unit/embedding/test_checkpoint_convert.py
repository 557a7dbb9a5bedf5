"""Meta .pth checkpoints: a DINOv3ViTModel written out in Meta's own key names (by an inverse
mapping written here, independently of the converter) loads back through `load_model` and
computes the same outputs; sizes are recognised from shapes; bad files fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from dinostream.core.errors import ModelLoadError
from dinostream.embedding.checkpoint_convert import infer_config
from dinostream.embedding.model_loader import RANDOM_ARCHS, load_model


def _source_model(*, gated: bool, key_bias: bool, registers: int = 4, seed: int = 0) -> DINOv3ViTModel:
    """A tiny DINOv3 whose every weight is random and non-trivial (biases, layer scales, norms)."""
    config = DINOv3ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        use_gated_mlp=gated,
        hidden_act="silu" if gated else "gelu",
        num_register_tokens=registers,
        key_bias=key_bias,
        rope_theta=100.0,
        layer_norm_eps=1e-5,
    )
    gen = torch.Generator().manual_seed(seed)
    model = DINOv3ViTModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif "lambda1" in name:
                p.copy_(0.5 + 0.2 * noise)
            else:
                p.copy_(0.05 * noise)
    return model


def _to_meta(model: DINOv3ViTModel, *, masked_k_bias: bool) -> dict[str, torch.Tensor]:
    """The state dict Meta's DinoVisionTransformer would have for the same weights.

    Meta names (dinov3/models/vision_transformer.py, dinov3/layers): cls_token (1,1,D),
    storage_tokens (1,R,D), mask_token (1,D), patch_embed.proj, rope_embed.periods
    (base ** (2i / (Dh/2)), i < Dh/4), blocks.N.{norm1, attn.qkv (q|k|v stacked), attn.qkv.bias_mask,
    attn.proj, ls1.gamma, norm2, mlp.fc1/fc2 or mlp.w1 (gate)/w2 (up)/w3 (down), ls2.gamma}, norm.
    """
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = model.config
    d, heads = cfg.hidden_size, cfg.num_attention_heads
    head_dim = d // heads
    meta = {
        "cls_token": sd["embeddings.cls_token"],
        "mask_token": sd["embeddings.mask_token"].reshape(1, d),
        "patch_embed.proj.weight": sd["embeddings.patch_embeddings.weight"],
        "patch_embed.proj.bias": sd["embeddings.patch_embeddings.bias"],
        "rope_embed.periods": cfg.rope_theta
        ** (2 * torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 2)),
        "norm.weight": sd["norm.weight"],
        "norm.bias": sd["norm.bias"],
    }
    if cfg.num_register_tokens:
        meta["storage_tokens"] = sd["embeddings.register_tokens"]
    for i in range(cfg.num_hidden_layers):
        hf, m = f"model.layer.{i}.", f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            meta[f"{m}{norm}.weight"] = sd[f"{hf}{norm}.weight"]
            meta[f"{m}{norm}.bias"] = sd[f"{hf}{norm}.bias"]
        meta[f"{m}attn.qkv.weight"] = torch.cat([sd[f"{hf}attention.{p}_proj.weight"] for p in ("q", "k", "v")], dim=0)
        if masked_k_bias:
            # Meta keeps a K bias tensor but multiplies it by a 0 mask: stored garbage must not leak.
            k_bias = torch.full((d,), 3.0)
            meta[f"{m}attn.qkv.bias_mask"] = torch.cat([torch.ones(d), torch.zeros(d), torch.ones(d)])
        else:
            k_bias = sd[f"{hf}attention.k_proj.bias"]
        meta[f"{m}attn.qkv.bias"] = torch.cat(
            [sd[f"{hf}attention.q_proj.bias"], k_bias, sd[f"{hf}attention.v_proj.bias"]]
        )
        meta[f"{m}attn.proj.weight"] = sd[f"{hf}attention.o_proj.weight"]
        meta[f"{m}attn.proj.bias"] = sd[f"{hf}attention.o_proj.bias"]
        meta[f"{m}ls1.gamma"] = sd[f"{hf}layer_scale1.lambda1"]
        meta[f"{m}ls2.gamma"] = sd[f"{hf}layer_scale2.lambda1"]
        names = {"w1": "gate_proj", "w2": "up_proj", "w3": "down_proj"} if cfg.use_gated_mlp else {}
        names = names or {"fc1": "up_proj", "fc2": "down_proj"}
        for meta_name, hf_name in names.items():
            meta[f"{m}mlp.{meta_name}.weight"] = sd[f"{hf}mlp.{hf_name}.weight"]
            meta[f"{m}mlp.{meta_name}.bias"] = sd[f"{hf}mlp.{hf_name}.bias"]
    return meta


def _outputs(model: DINOv3ViTModel, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(pixel_values=x).last_hidden_state


@pytest.mark.parametrize(
    ("gated", "key_bias", "masked", "registers"),
    [(False, False, True, 4), (True, False, True, 4), (False, True, False, 0)],
    ids=["vit-mlp-masked-k-bias", "swiglu-like-s-plus", "live-k-bias-no-registers"],
)
def test_meta_pth_loads_to_the_same_model(
    tmp_path: Path, gated: bool, key_bias: bool, masked: bool, registers: int
) -> None:
    source = _source_model(gated=gated, key_bias=key_bias, registers=registers)
    pth = tmp_path / "dinov3_custom_pretrain.pth"
    torch.save(_to_meta(source, masked_k_bias=masked), pth)

    loaded = load_model(str(pth), device="cpu")

    assert loaded.model_id == str(pth.resolve()) and loaded.untrained is False
    assert loaded.model.config._attn_implementation == "sdpa"
    cfg = loaded.model.config
    assert (cfg.use_gated_mlp, cfg.key_bias, cfg.num_register_tokens) == (gated, key_bias, registers)
    assert (loaded.hidden_size, loaded.num_register_tokens, loaded.patch_size) == (64, registers, 16)
    got = loaded.model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(got[key], value), key
    gen = torch.Generator().manual_seed(1)
    for h, w in ((32, 32), (48, 80)):  # square and wide: RoPE periods must match on both axes
        x = torch.randn(2, 3, h, w, generator=gen)
        torch.testing.assert_close(_outputs(loaded.model, x), _outputs(source, x), atol=1e-5, rtol=1e-5)


def test_training_checkpoint_wrapper_is_unwrapped(tmp_path: Path) -> None:
    source = _source_model(gated=False, key_bias=False)
    meta = _to_meta(source, masked_k_bias=True)
    wrapped = {
        "teacher": {**{f"backbone.{k}": v for k, v in meta.items()}, "dino_head.mlp.0.weight": torch.zeros(2, 2)},
        "iteration": 5,
    }
    pth = tmp_path / "model_final.pth"
    torch.save(wrapped, pth)

    loaded = load_model(str(pth), device="cpu")

    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_outputs(loaded.model, x), _outputs(source, x), atol=1e-5, rtol=1e-5)


def _meta_shapes(size: str) -> dict[str, torch.Tensor]:
    """Meta key names with the released shapes of `size`, as zero-memory views (nothing is allocated)."""
    a = RANDOM_ARCHS[size]
    d, depth, heads, hidden = a["hidden_size"], a["num_hidden_layers"], a["num_attention_heads"], a["intermediate_size"]

    def t(*shape: int) -> torch.Tensor:
        return torch.zeros(1).expand(*shape)

    head_dim = d // heads
    meta = {
        "cls_token": t(1, 1, d),
        "storage_tokens": t(1, 4, d),
        "mask_token": t(1, d),
        "patch_embed.proj.weight": t(d, 3, 16, 16),
        "patch_embed.proj.bias": t(d),
        "rope_embed.periods": 100.0 ** (2 * torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 2)),
        "norm.weight": t(d),
        "norm.bias": t(d),
    }
    for i in range(depth):
        m = f"blocks.{i}."
        meta |= {
            f"{m}norm1.weight": t(d),
            f"{m}norm1.bias": t(d),
            f"{m}attn.qkv.weight": t(3 * d, d),
            f"{m}attn.qkv.bias": t(3 * d),
            f"{m}attn.qkv.bias_mask": t(3 * d),
            f"{m}attn.proj.weight": t(d, d),
            f"{m}attn.proj.bias": t(d),
            f"{m}ls1.gamma": t(d),
            f"{m}norm2.weight": t(d),
            f"{m}norm2.bias": t(d),
            f"{m}ls2.gamma": t(d),
        }
        if a.get("use_gated_mlp"):
            meta |= {f"{m}mlp.w1.weight": t(hidden, d), f"{m}mlp.w2.weight": t(hidden, d)}
            meta |= {f"{m}mlp.w3.weight": t(d, hidden), f"{m}mlp.w1.bias": t(hidden)}
            meta |= {f"{m}mlp.w2.bias": t(hidden), f"{m}mlp.w3.bias": t(d)}
        else:
            meta |= {f"{m}mlp.fc1.weight": t(hidden, d), f"{m}mlp.fc1.bias": t(hidden)}
            meta |= {f"{m}mlp.fc2.weight": t(d, hidden), f"{m}mlp.fc2.bias": t(d)}
    return meta


@pytest.mark.parametrize("size", ["vits16", "vitsplus16", "vitb16", "vitl16"], ids=["S", "S+", "B", "L"])
def test_released_sizes_are_recognised_from_shapes(size: str) -> None:
    config, name = infer_config(_meta_shapes(size))

    assert name == size
    expected = RANDOM_ARCHS[size]
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert getattr(config, field) == expected[field], field
    assert config.use_gated_mlp == expected.get("use_gated_mlp", False)
    assert config.hidden_act == expected.get("hidden_act", "gelu")
    assert (config.num_register_tokens, config.patch_size, config.rope_theta) == (4, 16, pytest.approx(100.0))
    assert (config.query_bias, config.key_bias, config.value_bias, config.proj_bias) == (True, False, True, True)


def _broken(kind: str, tmp_path: Path) -> Path:
    pth = tmp_path / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    meta = _to_meta(_source_model(gated=False, key_bias=False), masked_k_bias=True)
    if kind == "corrupt":
        pth.write_bytes(b"this is not a checkpoint")
        return pth
    if kind == "not-dinov3":
        meta = {"fc.weight": torch.zeros(2, 2)}
    elif kind == "unknown-tensor":
        meta["blocks.0.attn.extra.weight"] = torch.zeros(2)
    elif kind == "untied-cls-norm":
        meta["cls_norm.weight"] = torch.ones(64)
    elif kind == "bad-shape":
        meta["blocks.1.attn.proj.weight"] = torch.zeros(64, 32)
    torch.save(meta, pth)
    return pth


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("corrupt", "cannot read it as a PyTorch checkpoint"),
        ("not-dinov3", "not a DINOv3 ViT backbone"),
        ("unknown-tensor", "'blocks.0.attn.extra.weight'"),
        ("untied-cls-norm", "separate CLS norm"),
        ("bad-shape", "model.layer.1.attention.o_proj.weight"),
    ],
    ids=["corrupt", "not-dinov3", "unknown-tensor", "untied-cls-norm", "bad-shape"],
)
def test_bad_meta_files_fail_in_one_line(tmp_path: Path, kind: str, reason: str) -> None:
    pth = _broken(kind, tmp_path)
    with pytest.raises(ModelLoadError) as err:
        load_model(str(pth), device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"cannot load model {str(pth)!r}: Meta checkpoint: ")
    assert reason in msg, msg


def test_directory_with_only_a_pth_points_at_the_file(tmp_path: Path) -> None:
    pth = tmp_path / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    torch.save(_to_meta(_source_model(gated=False, key_bias=False), masked_k_bias=True), pth)
    with pytest.raises(ModelLoadError, match="pass the .pth file itself"):
        load_model(str(tmp_path), device="cpu")
    assert load_model(str(pth), device="cpu").hidden_size == 64
