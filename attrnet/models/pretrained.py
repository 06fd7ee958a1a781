"""Pretrained backbone weights (torchvision ResNet-18/50, VGG-16) loaded into any topology.

`source` is a local file (a torchvision state dict saved with `torch.save`,
read with ``weights_only=True``, or a `.safetensors` file) or a torchvision
weights enum (`imagenet` for the architecture's default, or a name such as
``ResNet50_Weights.IMAGENET1K_V2``; torchvision downloads it into its cache
when the user has network access). The weights are mapped onto a
single-branch trunk and replicated into every branch of the grouped layers.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from attrnet.core.errors import AttrnetError, InputError

if TYPE_CHECKING:
    from attrnet.models.net import MultiTaskNet

__all__ = ["load_pretrained", "PRETRAINABLE", "read_state_dict", "trunk_tensors"]

PRETRAINABLE = ("resnet18", "resnet50", "vgg16")
_ENUMS = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights", "vgg16": "VGG16_Weights"}


def read_state_dict(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a `.safetensors` file, or a `torch.save` state dict read with
    ``weights_only=True`` (a nested ``state_dict`` is unwrapped, ``module.`` prefixes dropped).

    A missing or unreadable file, or one holding anything but named tensors, is one InputError
    line naming the file; torch's own message (which suggests unpickling) is not passed on.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch and safetensors raise many types for a file they cannot read
        raise InputError("not a readable weights file (expected a .safetensors file or a torch.save state dict "
                         "of tensors)", path) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("not a state dict (expected a mapping of names to tensors)", path)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _from_enum(arch: str, name: str) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    enum_name, _, member = name.partition(".")
    if name in ("imagenet", "default", "DEFAULT"):
        enum_name, member = _ENUMS[arch], "DEFAULT"
    enum = getattr(tvm, enum_name, None)
    if enum is None or not hasattr(enum, member or "DEFAULT"):
        raise InputError(f"unknown torchvision weights {name!r} (e.g. {_ENUMS[arch]}.DEFAULT or a file path)")
    try:
        return getattr(enum, member or "DEFAULT").get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - download/cache failures are runtime errors
        raise AttrnetError(f"cannot fetch torchvision weights {name}: {exc} (pass a local file instead)") from None


def _resnet_keys(state: dict[str, torch.Tensor], blocks: list[int]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    starts = [1 + sum(blocks[:i]) for i in range(len(blocks))]
    for key, v in state.items():
        parts = key.split(".")
        if parts[0] in ("conv1", "bn1"):
            out[f"stages.0.{key}"] = v
        elif parts[0].startswith("layer"):
            layer, block = int(parts[0][5:]) - 1, int(parts[1])
            out[f"stages.{starts[layer] + block}." + ".".join(parts[2:])] = v
    return out


def _vgg_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    convs = sorted({int(k.split(".")[1]) for k, v in state.items()
                    if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4})
    for s, idx in enumerate(convs):
        out[f"stages.{s}.conv.weight"] = state[f"features.{idx}.weight"]
        out[f"stages.{s}.conv.bias"] = state[f"features.{idx}.bias"]
        bn = f"features.{idx + 1}"
        if f"{bn}.running_mean" in state:  # vgg16_bn
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                if f"{bn}.{p}" in state:
                    out[f"stages.{s}.bn.{p}"] = state[f"{bn}.{p}"]
    for s, idx in ((len(convs), 0), (len(convs) + 1, 3)):
        if f"classifier.{idx}.weight" in state:
            out[f"stages.{s}.fc.weight"] = state[f"classifier.{idx}.weight"].unsqueeze(0)
            out[f"stages.{s}.fc.bias"] = state[f"classifier.{idx}.bias"].unsqueeze(0)
    return out


def trunk_tensors(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision state dict renamed to attrnet's single-branch trunk keys."""
    if arch == "resnet18":
        return _resnet_keys(state, [2, 2, 2, 2])
    if arch == "resnet50":
        return _resnet_keys(state, [3, 4, 6, 3])
    if arch == "vgg16":
        return _vgg_keys(state)
    raise InputError(f"no pretrained weights for arch {arch!r} (available for {', '.join(PRETRAINABLE)}; "
                     "vgg16-thin is initialised from a wide VGG-16 by FAFS --somp-from)")


def load_pretrained(model: "MultiTaskNet", source: str) -> int:
    """Load pretrained backbone weights into every branch of `model`; returns tensors loaded."""
    from attrnet.models.backbones import backbone
    from attrnet.models.columns import replicate_into_columns
    from attrnet.core.topology import shared

    arch = model.topology.arch
    if arch not in PRETRAINABLE:
        trunk_tensors(arch, {})
    path = Path(source).expanduser()
    is_file = path.exists() or path.suffix in (".pth", ".pt", ".safetensors")
    state = read_state_dict(path, "pretrained weights file") if is_file else _from_enum(arch, source)
    tensors = trunk_tensors(arch, state)
    if not tensors:
        raise InputError(f"no {arch} backbone weights found in {source}", source)
    trunk = shared(arch, backbone(arch).widths, model.schema.names)
    try:
        untouched = replicate_into_columns(model, tensors, trunk)
    except ValueError as exc:
        raise InputError(f"pretrained weights do not fit {arch}: {exc}", source) from None
    return len(model.state_dict()) - len(untouched)
