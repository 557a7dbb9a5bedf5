"""load_model: checkpoint directories, seeded random architectures, and one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from dinostream.core.errors import ModelLoadError
from dinostream.embedding.model_loader import IMAGENET_MEAN, IMAGENET_STD, compute_dtype, load_model, replicate


def _tiny_config(**overrides: object) -> DINOv3ViTConfig:
    kwargs: dict = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=16,
        num_register_tokens=4,
        layerscale_value=1.0,
    )
    kwargs.update(overrides)
    return DINOv3ViTConfig(**kwargs)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, DINOv3ViTModel]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        model = DINOv3ViTModel(_tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


def _assert_one_line_naming(err: pytest.ExceptionInfo[ModelLoadError], spec: str, *fragments: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot load model {spec!r}: ")
    for fragment in fragments:
        assert fragment in msg, msg


# --- local checkpoint directories -------------------------------------------------------------


def test_local_dir_round_trip_loads_the_same_weights(saved: tuple[Path, DINOv3ViTModel]) -> None:
    path, original = saved
    loaded = load_model(str(path), device="cpu")

    assert isinstance(loaded.model, DINOv3ViTModel)
    assert not loaded.model.training
    assert loaded.untrained is False
    assert loaded.model_id == str(path.resolve())
    assert (loaded.device.type, loaded.dtype) == ("cpu", torch.float32)
    assert (loaded.patch_size, loaded.num_register_tokens, loaded.hidden_size) == (16, 4, 32)
    assert (loaded.image_mean, loaded.image_std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert loaded.model.config._attn_implementation == "sdpa"
    expected = original.state_dict()
    got = loaded.model.state_dict()
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert got[key].dtype == torch.float32
        assert torch.equal(got[key], value), key


def test_local_dir_reads_mean_and_std_from_preprocessor_config(saved: tuple[Path, DINOv3ViTModel]) -> None:
    path, _ = saved
    (path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2] * 3}))

    loaded = load_model(str(path), device="cpu")

    assert loaded.image_mean == (0.5, 0.4, 0.3)
    assert loaded.image_std == (0.2, 0.2, 0.2)


def test_half_precision_checkpoint_is_loaded_as_fp32_master_weights(tmp_path: Path) -> None:
    DINOv3ViTModel(_tiny_config()).to(torch.bfloat16).save_pretrained(tmp_path)  # type: ignore[arg-type]
    loaded = load_model(str(tmp_path), device="cpu")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


# --- seeded random architectures ----------------------------------------------------------------


def test_random_tiny_builds_an_untrained_dinov3() -> None:
    loaded = load_model("random:tiny", device="cpu")
    assert loaded.untrained is True
    assert loaded.model_id == "random:tiny"
    assert (loaded.hidden_size, loaded.num_register_tokens, loaded.patch_size) == (32, 4, 16)
    assert not loaded.model.training


def test_random_vits16_is_the_released_vit_s16_architecture() -> None:
    loaded = load_model("random:vits16", device="cpu")
    cfg = loaded.model.config
    n_params = sum(p.numel() for p in loaded.model.parameters())

    assert 21_000_000 <= n_params <= 22_000_000
    assert (loaded.hidden_size, loaded.num_register_tokens, loaded.patch_size) == (384, 4, 16)
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (12, 6, 1536)
    assert (cfg.use_gated_mlp, cfg.key_bias, cfg.rope_theta) == (False, False, 100.0)
    # Different images must give different CLS vectors even with random weights (a too-small
    # layer scale would make every block a no-op and the CLS token constant).
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cls = torch.nn.functional.normalize(loaded.model(pixel_values=x).pooler_output, dim=-1)
    assert float(cls[0] @ cls[1]) < 0.99


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a = load_model("random:tiny", device="cpu", seed=7).model.state_dict()
    b = load_model("random:tiny", device="cpu", seed=7).model.state_dict()
    c = load_model("random:tiny", device="cpu", seed=8).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["embeddings.patch_embeddings.weight"], c["embeddings.patch_embeddings.weight"])


def test_random_build_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    load_model("random:tiny", device="cpu", seed=5)
    assert torch.equal(torch.rand(3), expected)


# --- errors: one line, naming the spec, the reason and the fix ---------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    spec = str(tmp_path / "nope")
    with pytest.raises(ModelLoadError) as err:
        load_model(spec, device="cpu")
    _assert_one_line_naming(err, spec, "no such directory", "--model")


def test_relative_path_that_does_not_exist() -> None:
    with pytest.raises(ModelLoadError) as err:
        load_model("./no/such/checkpoint", device="cpu")
    _assert_one_line_naming(err, "./no/such/checkpoint", "no such directory")


def test_directory_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path), device="cpu")
    _assert_one_line_naming(err, str(tmp_path), "not a transformers checkpoint", "no config.json")


def test_directory_with_a_non_dinov3_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "dinov2", "hidden_size": 384}))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path), device="cpu")
    _assert_one_line_naming(err, str(tmp_path), "'dinov2'", "only DINOv3 ViT")


def test_directory_with_config_but_no_weights(tmp_path: Path) -> None:
    _tiny_config().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path), device="cpu")
    _assert_one_line_naming(err, str(tmp_path), "cannot load its weights")


def test_weights_that_do_not_match_the_config(saved: tuple[Path, DINOv3ViTModel]) -> None:
    # A config that says "gated MLP" over weights without gate_proj would otherwise silently
    # leave gate_proj randomly initialised.
    path, _ = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["use_gated_mlp"] = True
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(path), device="cpu")
    _assert_one_line_naming(err, str(path), "do not match its config.json", "gate_proj")


def test_unreadable_meta_pth_file(tmp_path: Path) -> None:
    # Loading Meta checkpoints is covered in test_checkpoint_convert.py; this is the loader's one line.
    pth = tmp_path / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    pth.write_bytes(b"\x80")
    with pytest.raises(ModelLoadError) as err:
        load_model(str(pth), device="cpu")
    _assert_one_line_naming(err, str(pth), "Meta checkpoint", "cannot read it as a PyTorch checkpoint", ".pth")


def test_unknown_random_size() -> None:
    with pytest.raises(ModelLoadError) as err:
        load_model("random:vitg99", device="cpu")
    _assert_one_line_naming(err, "random:vitg99", "unknown random model size 'vitg99'", "random:vits16")


def test_hub_id_offline_and_not_cached_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = "dinostream-tests/no-such-dinov3"
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_model(spec, device="cpu")
    assert time.monotonic() - start < 5
    _assert_one_line_naming(err, spec, "not found locally", "offline", "--model DIR", "random:vits16")


@pytest.mark.parametrize(
    ("spec", "reason"), [("two words", "neither a directory"), ("", "no model given")], ids=["two-words", "empty"]
)
def test_not_a_spec_at_all(spec: str, reason: str) -> None:
    with pytest.raises(ModelLoadError) as err:
        load_model(spec, device="cpu")
    _assert_one_line_naming(err, spec, reason)


@pytest.mark.parametrize("device", ["tpu", "cuda:99"], ids=["unknown-device", "absent-cuda-device"])
def test_bad_device(device: str) -> None:
    with pytest.raises(ModelLoadError) as err:
        load_model("random:tiny", device=device)
    _assert_one_line_naming(err, "random:tiny", repr(device))


# --- precision and replicas ---------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
def test_the_cpu_computes_in_fp32_whatever_precision_is_asked(precision: str) -> None:
    assert compute_dtype(torch.device("cpu"), precision) == torch.float32
    assert load_model("random:tiny", device="cpu", precision=precision).dtype == torch.float32


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        compute_dtype(torch.device("cpu"), "int4")


def test_replicate_on_the_same_device_is_the_same_model() -> None:
    loaded = load_model("random:tiny", device="cpu")
    assert replicate(loaded, "cpu") is loaded


def test_a_device_list_names_one_replica_per_device() -> None:
    from dinostream.core.settings import ModelSettings

    assert ModelSettings(device="cuda:0, cuda:1").devices == ["cuda:0", "cuda:1"]
    assert ModelSettings().devices == ["auto"]
    for bad in ("cpu,cuda:0", "cuda:0,cuda:0", "cuda:0,"):
        with pytest.raises(ValueError, match="device"):
            ModelSettings(device=bad)


def test_replicating_to_a_missing_cuda_device_fails_in_one_line() -> None:
    loaded = load_model("random:tiny", device="cpu")
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last device (cuda:0 without CUDA)
    with pytest.raises(ModelLoadError) as err:
        replicate(loaded, missing)
    _assert_one_line_naming(err, "random:tiny", repr(missing), "requested but")


def test_device_auto_without_cuda_falls_back_to_the_cpu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="dinostream.embedding.model_loader"):
        loaded = load_model("random:tiny", device="auto")
    assert loaded.device == torch.device("cpu")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "CPU" in r.getMessage()]
    assert "no CUDA device" in warning.getMessage()


def test_half_precision_weights_are_stored_once_so_autocast_casts_no_weight_per_step() -> None:
    """CPU autocast stands in for CUDA's: the same casting rules, visible on any machine."""
    from bench.gpu_check import weight_casts
    from dinostream.embedding.model_loader import prepare_for_inference

    model = load_model("random:tiny", device="cpu").model
    pixels = torch.zeros(1, 3, 64, 64)

    def step() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(pixel_values=pixels.to(model.embeddings.patch_embeddings.weight.dtype))

    assert len(weight_casts(model, step)) >= 2 * 6  # fp32 master weights: every Linear's, every step
    prepare_for_inference(model, torch.device("cuda"), torch.bfloat16)  # what load_model does on CUDA
    assert weight_casts(model, step) == []
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # norms stay fp32
    assert model.embeddings.cls_token.dtype == torch.float32


def test_the_cpu_keeps_its_fp32_weights() -> None:
    loaded = load_model("random:tiny", device="cpu", precision="bf16")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


def test_a_module_copy_has_its_own_weights_with_the_same_values_and_outputs() -> None:
    from dinostream.embedding.model_loader import copy_module

    loaded = load_model("random:tiny", device="cpu")
    copy = copy_module(loaded.model, torch.device("cpu"))
    pairs = list(zip(loaded.model.state_dict().values(), copy.state_dict().values(), strict=True))
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in pairs)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded.model(pixel_values=x).last_hidden_state, copy(pixel_values=x).last_hidden_state)
    assert not any(p.requires_grad for p in copy.parameters())
