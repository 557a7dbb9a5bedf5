"""Load a DINOv3 ViT from a local checkpoint, the Hugging Face Hub, or seeded random weights.

One function per kind of source, chosen from the spec's shape; every failure a user can fix
becomes a one-line `ModelLoadError` that names the spec, the reason and what to do.

    >>> loaded = load_model("random:tiny", device="cpu")
    >>> loaded.hidden_size, loaded.untrained
    (32, True)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from dinostream.core.errors import ModelLoadError
from dinostream.embedding.archs import DINOV3_COMMON, RANDOM_ALIASES, RANDOM_ARCHS

log = logging.getLogger(__name__)

DINOV3_MODEL_TYPE = "dinov3_vit"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

RGB = tuple[float, float, float]
_Loaded = tuple[DINOv3ViTModel, str, RGB, RGB]  # model, model_id, image_mean, image_std

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_FIX = "pass --model DIR with a downloaded DINOv3 checkpoint, or --model random:vits16 for untrained weights"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A DINOv3 ViT ready for inference, with what the embedder needs to feed it."""

    model: DINOv3ViTModel  # eval mode, on `device`; on CUDA its Linear/Conv weights are stored in `dtype`
    model_id: str  # written into every record: Hub id, absolute directory, or "random:SIZE"
    untrained: bool  # random weights: features carry no meaning
    device: torch.device
    dtype: torch.dtype  # compute dtype: bf16 (or fp16) under autocast on CUDA, fp32 on CPU
    patch_size: int
    num_register_tokens: int
    hidden_size: int
    image_mean: RGB
    image_std: RGB
    # Replicas on other devices by (device, precision), made once (see `replicate`); not copied by
    # dataclasses.replace, so a LoadedModel with another model never hands out this one's replicas.
    replicas: dict[tuple[torch.device, str], LoadedModel] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )


def load_model(spec: str, *, device: str = "auto", seed: int = 0, precision: str = "auto") -> LoadedModel:
    """Load the model named by `spec`: a checkpoint directory, a Meta `.pth` file, a Hub id, or `random:SIZE`.

    `precision` is the compute dtype on CUDA ("auto": bf16 where supported, else fp16; "bf16",
    "fp16", "fp32"); the CPU always computes in fp32. On CUDA the Linear and Conv weights are
    stored in that dtype once, here (autocast would otherwise re-cast every weight on every batch:
    its cache keeps only leaf tensors that require grad, and is cleared on exit); fp32 on CUDA
    enables TF32 matrix products.

    Raises `ModelLoadError` (one line: the spec, the reason, the fix) for anything a user can
    correct; never a traceback for a bad spec, a missing checkpoint or an unreachable Hub.
    """
    if not spec.strip():
        raise _error(spec, "no model given", _FIX)
    dev = resolve_device(device, spec)
    if spec.startswith("random:"):
        model, model_id, mean, std = _build_random(spec, seed)
        untrained = True
    elif _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            model, model_id, mean, std = _load_local_dir(spec, path)
        elif path.suffix == ".pth" and path.is_file():
            model, model_id, mean, std = _load_meta_pth(spec, path)
        elif path.exists():
            raise _error(spec, "it is a file, not a checkpoint directory", "pass the directory that holds config.json")
        else:
            raise _error(spec, "no such directory", _FIX)
        untrained = False
    elif _HUB_ID.match(spec):
        model, model_id, mean, std = _load_hub(spec)
        untrained = False
    else:
        raise _error(spec, "it is neither a directory, a Hugging Face Hub id (org/name) nor random:SIZE", _FIX)

    try:
        model = model.to(dev).eval().requires_grad_(False)  # type: ignore[arg-type]  # decorated .to
    except RuntimeError as e:  # CUDA out of memory, driver errors
        reason = f"cannot move it to {dev}: {_first_line(e)}"
        raise _error(spec, reason, "use --device cpu or a smaller model") from None
    dtype = compute_dtype(dev, precision)
    prepare_for_inference(model, dev, dtype)
    cfg = model.config
    patch = cfg.patch_size
    if not isinstance(patch, int):
        if len(set(patch)) != 1:
            raise _error(spec, f"non-square patch size {patch} is not supported", _FIX)
        patch = int(patch[0])
    return LoadedModel(
        model=model,
        model_id=model_id,
        untrained=untrained,
        device=dev,
        dtype=dtype,
        patch_size=patch,
        num_register_tokens=int(cfg.num_register_tokens),
        hidden_size=int(cfg.hidden_size),
        image_mean=mean,
        image_std=std,
    )


def resolve_device(device: str, spec: str = "") -> torch.device:
    """'auto' -> the first CUDA device when there is one, else the CPU; 'cpu'; 'cuda' or 'cuda:N'."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        log.warning(
            "device auto: no CUDA device is available (CUDA build: %s), so the model runs on the CPU, "
            "many times slower; pass --device cpu to silence this",
            torch.version.cuda or "no",
        )
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise _error(spec, f"unknown device {device!r}", "use --device auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise _error(spec, f"device {device!r} requested but CUDA is not available", "use --device cpu or auto")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise _error(
                spec,
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist",
                "use --device cuda:0 or auto",
            )
        dev = torch.device("cuda", index)
    return dev


def compute_dtype(dev: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype to autocast to on CUDA: `precision`, where "auto" is bf16 when supported, else fp16.
    The CPU computes in fp32 whatever is asked (CPU half precision is slower, not faster, without AMX)."""
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    if dev.type != "cuda" or precision == "fp32":
        return torch.float32
    if precision == "fp16":
        return torch.float16
    with torch.cuda.device(dev):
        bf16 = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16:
        raise ModelLoadError(f"precision bf16 requested but {dev} does not support bfloat16; use fp16 or auto")
    return torch.bfloat16 if bf16 else torch.float16


def prepare_for_inference(model: torch.nn.Module, dev: torch.device, dtype: torch.dtype) -> None:
    """Store the weights of every Linear and Conv layer in `dtype` (CUDA half precision only), so
    autocast finds them already cast; norms, layer scales and tokens stay fp32 (autocast computes
    norms in fp32). fp32 on CUDA turns TF32 on for matrix products and convolutions.

    The CPU is left alone: it computes in fp32 with the weights as loaded.
    """
    if dev.type != "cuda":
        return
    if dtype == torch.float32:
        enable_tf32()
        return
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.to(dtype)


def enable_tf32() -> None:
    """TF32 for fp32 matrix products and convolutions on CUDA (about 8x the plain fp32 rate on
    Ampere and later, with a 10-bit mantissa in the products); process-wide, as PyTorch's flags are."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # type: ignore[attr-defined]
    else:
        matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    log.info("fp32 on CUDA: TF32 matrix products enabled")


def replicate(loaded: LoadedModel, device: str, precision: str = "auto") -> LoadedModel:
    """The same weights on another device (one replica per device of a multi-GPU stage).

    Blocking (a copy of every weight): call it off the event loop. Each replica is made once and
    kept on `loaded`, so a later call for the same device and precision returns it at once. The
    weights are copied straight to the target device, without a second copy on the source's.
    """
    dev = resolve_device(device, loaded.model_id)
    if dev == loaded.device:
        return loaded
    key = (dev, precision)
    if key in loaded.replicas:
        return loaded.replicas[key]
    dtype = compute_dtype(dev, precision)
    try:
        model = copy_module(loaded.model, dev)
        prepare_for_inference(model, dev, dtype)
    except RuntimeError as e:  # CUDA out of memory, driver errors
        raise _error(loaded.model_id, f"cannot copy it to {dev}: {_first_line(e)}", "use fewer devices") from None
    replica = dataclasses.replace(loaded, model=model, device=dev, dtype=dtype)
    loaded.replicas[key] = replica
    return replica


def copy_module(model: torch.nn.Module, dev: torch.device) -> Any:
    """A deep copy of `model` whose parameters and buffers are created directly on `dev` (a
    `deepcopy` followed by `.to(dev)` would first duplicate every weight on the source device)."""
    memo: dict[int, Any] = {}
    with torch.no_grad():
        for p in model.parameters():
            memo[id(p)] = torch.nn.Parameter(p.detach().to(dev, copy=True), requires_grad=False)
        for b in model.buffers():
            memo[id(b)] = b.detach().to(dev, copy=True)
    return copy.deepcopy(model, memo).eval()


# --- one function per kind of source ---------------------------------------------------------


def _build_random(spec: str, seed: int) -> _Loaded:
    """The real architecture of a released size with weights drawn from `seed`."""
    size = spec.removeprefix("random:")
    size = RANDOM_ALIASES.get(size, size)
    if size not in RANDOM_ARCHS:
        raise _error(spec, f"unknown random model size {size!r}", f"use one of: {', '.join(random_specs())}")
    config = DINOv3ViTConfig(**{**DINOV3_COMMON, **RANDOM_ARCHS[size], "attn_implementation": "sdpa"})
    # A private RNG stream: the same seed gives the same weights without touching global state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DINOv3ViTModel(config)
    return model, f"random:{size}", IMAGENET_MEAN, IMAGENET_STD


def _load_local_dir(spec: str, path: Path) -> _Loaded:
    """A directory written by `save_pretrained` (config.json + safetensors/bin weights)."""
    config_file = path / "config.json"
    if not config_file.is_file():
        pth = sorted(path.glob("*.pth"))
        if pth:
            raise _error(
                spec,
                "the directory holds Meta .pth weights but no config.json",
                f"pass the .pth file itself, e.g. --model {pth[0]}",
            )
        raise _error(spec, "the directory is not a transformers checkpoint (no config.json)", _FIX)
    _check_config(spec, _read_json(spec, config_file))
    model = _from_pretrained(spec, str(path), local_files_only=True)
    mean, std = _normalisation(spec, path / "preprocessor_config.json")
    return model, str(path.resolve()), mean, std


def _load_hub(spec: str) -> _Loaded:
    """A Hub repository, through the normal cache; only the cache when HF_HUB_OFFLINE is set."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_offline()
    try:
        config_file = hf_hub_download(spec, "config.json", local_files_only=offline)
    except GatedRepoError:
        raise _error(
            spec,
            "the repository is gated and this machine has no access",
            f"accept the license at https://huggingface.co/{spec}, run `hf auth login`, or {_FIX}",
        ) from None
    except RepositoryNotFoundError:
        raise _error(spec, "no such model on the Hugging Face Hub (or it is private)", _FIX) from None
    except RevisionNotFoundError:
        raise _error(spec, "the Hub repository has no main revision", _FIX) from None
    except LocalEntryNotFoundError:
        why = "offline (HF_HUB_OFFLINE is set)" if offline else "unreachable"
        raise _error(spec, f"not found locally and the Hugging Face Hub is {why}", _FIX) from None
    except EntryNotFoundError:
        raise _error(spec, "the Hub repository has no config.json: not a transformers checkpoint", _FIX) from None
    except HFValidationError as e:
        raise _error(spec, f"not a valid Hub id ({_first_line(e)})", _FIX) from None
    except Exception as e:  # network stacks raise many types (some misleading); all mean the same here
        log.debug("Hub lookup of %s failed: %r", spec, e)
        raise _error(spec, "not found locally and the Hugging Face Hub is unreachable", _FIX) from None
    _check_config(spec, _read_json(spec, Path(config_file)))
    model = _from_pretrained(spec, spec, local_files_only=offline)
    try:
        pre = Path(hf_hub_download(spec, "preprocessor_config.json", local_files_only=offline))
    except Exception:  # optional file: ImageNet statistics are DINOv3's defaults
        pre = None
    mean, std = _normalisation(spec, pre) if pre is not None else (IMAGENET_MEAN, IMAGENET_STD)
    return model, spec, mean, std


def _load_meta_pth(spec: str, path: Path) -> _Loaded:
    """Meta's original `dinov3_*.pth` backbone, its keys mapped to DINOv3ViTModel's in-process."""
    from dinostream.embedding.checkpoint_convert import CheckpointError, load_meta_checkpoint

    try:
        model, arch = load_meta_checkpoint(path)
    except CheckpointError as e:
        raise _error(
            spec, f"Meta checkpoint: {e}", "pass one of Meta's dinov3_vit*_pretrain_*.pth backbone files"
        ) from None
    log.info("converted Meta checkpoint %s (%s)", path.name, arch)
    return model, str(path.resolve()), IMAGENET_MEAN, IMAGENET_STD


# --- helpers -----------------------------------------------------------------------------------


def random_specs() -> list[str]:
    """Every accepted `random:` spec, for help texts and errors."""
    return [f"random:{name}" for name in RANDOM_ARCHS]


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them once at import)."""
    from huggingface_hub import constants

    def on(name: str) -> bool:
        return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}

    return bool(constants.HF_HUB_OFFLINE) or on("HF_HUB_OFFLINE") or on("TRANSFORMERS_OFFLINE")


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or Path(spec).exists()


def _read_json(spec: str, file: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _error(spec, f"cannot read {file.name}: {_first_line(e)}", _FIX) from None
    if not isinstance(data, dict):
        raise _error(spec, f"{file.name} is not a JSON object", _FIX)
    return data


def _check_config(spec: str, config: Mapping[str, Any]) -> None:
    model_type = config.get("model_type")
    if model_type != DINOV3_MODEL_TYPE:
        raise _error(
            spec,
            f"config.json has model_type {model_type!r}, not {DINOV3_MODEL_TYPE!r}: only DINOv3 ViT checkpoints "
            "are supported",
            _FIX,
        )


def _from_pretrained(spec: str, source: str, *, local_files_only: bool) -> DINOv3ViTModel:
    try:
        result: Any = DINOv3ViTModel.from_pretrained(
            source,
            local_files_only=local_files_only,
            dtype=torch.float32,  # master weights; CUDA computes under autocast
            attn_implementation="sdpa",
            output_loading_info=True,
        )
    except Exception as e:  # OSError (no weights), RuntimeError (shape mismatch), safetensors errors...
        raise _error(spec, f"cannot load its weights: {_first_line(e)}", _FIX) from None
    model, info = result
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        bad = missing or mismatched
        raise _error(
            spec,
            f"its weights do not match its config.json ({len(bad)} tensors missing or mis-shaped, e.g. {bad[0]})",
            "re-export the checkpoint with save_pretrained",
        )
    return model


def _normalisation(spec: str, file: Path) -> tuple[RGB, RGB]:
    """image_mean / image_std from a preprocessor_config.json, ImageNet's when absent."""
    if not file.is_file():
        return IMAGENET_MEAN, IMAGENET_STD
    data = _read_json(spec, file)
    out = []
    for key, default in (("image_mean", IMAGENET_MEAN), ("image_std", IMAGENET_STD)):
        value = data.get(key, default)
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 3
            or not all(isinstance(v, (int, float)) for v in value)
            or (key == "image_std" and not all(v > 0 for v in value))
        ):
            raise _error(spec, f"preprocessor_config.json has an invalid {key}: {value!r}", "fix or delete that file")
        out.append((float(value[0]), float(value[1]), float(value[2])))
    return out[0], out[1]


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _error(spec: str, reason: str, fix: str) -> ModelLoadError:
    return ModelLoadError(f"cannot load model {spec!r}: {reason}; {fix}".replace("\n", " "))
