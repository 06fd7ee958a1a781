"""Backbones cut into stages.

VGG is cut layer by layer (every conv and fc layer is a stage, as FAFS
branches layer by layer); ResNet block by block (the stem is stage 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from attrnet.core.errors import InputError
from attrnet.models import layers

__all__ = ["ARCHS", "backbone", "BACKBONES", "BackboneSpec", "make_stage", "StageKind", "StageSpec"]

StageKind = Literal["conv", "fc", "stem", "basic", "bottleneck"]


@dataclass(frozen=True)
class StageSpec:
    kind: StageKind
    width: int
    stride: int = 1
    pool: bool = False  # 2x2 max pool after a conv stage


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    stages: tuple[StageSpec, ...]
    fc_pool: int = 7  # spatial size the first fc stage pools to (VGG)

    @property
    def widths(self) -> list[int]:
        return [s.width for s in self.stages]

    def resolution_ends(self) -> list[int]:
        """Stages whose output ends a resolution level or is a fc layer: a stage that pools after itself,
        one the next stage downsamples from (ResNet's strided first block), every fc stage, and the last
        stage (the features the heads read). Cross-stitch's ``--stitch-at pools``."""
        last = len(self.stages) - 1
        return [s for s, st in enumerate(self.stages)
                if st.pool or st.kind == "fc" or s == last or self.stages[s + 1].stride > 1]

    def pools_from(self, stage: int) -> int:
        """Pooling (downsampling) layers between stage `stage`'s input and the heads (FAFS's p_l)."""
        return sum(1 for s in self.stages[stage:] if s.pool or s.stride > 1)


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _vgg(name: str, cap: int | None, fc: int) -> BackboneSpec:
    stages: list[StageSpec] = []
    for v in _VGG16:
        if v == "M":
            last = stages[-1]
            stages[-1] = StageSpec("conv", last.width, pool=True)
        else:
            stages.append(StageSpec("conv", min(cap, v) if cap else v))
    stages += [StageSpec("fc", fc), StageSpec("fc", fc)]
    return BackboneSpec(name, tuple(stages))


def _resnet(name: str, kind: StageKind, blocks: list[int], widths: list[int]) -> BackboneSpec:
    stages = [StageSpec("stem", 64, stride=4)]
    for i, (n, w) in enumerate(zip(blocks, widths)):
        for j in range(n):
            stages.append(StageSpec(kind, w, stride=2 if (j == 0 and i > 0) else 1))
    return BackboneSpec(name, tuple(stages))


BACKBONES: dict[str, BackboneSpec] = {
    "tiny": BackboneSpec("tiny", (
        StageSpec("conv", 16, pool=True),
        StageSpec("conv", 32, pool=True),
        StageSpec("conv", 48, pool=True),
        StageSpec("conv", 64),
    )),
    "vgg16": _vgg("vgg16", None, 4096),
    "vgg16-thin": _vgg("vgg16-thin", 32, 64),
    "resnet18": _resnet("resnet18", "basic", [2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet50": _resnet("resnet50", "bottleneck", [3, 4, 6, 3], [256, 512, 1024, 2048]),
}
ARCHS = tuple(BACKBONES)


def backbone(arch: str) -> BackboneSpec:
    try:
        return BACKBONES[arch]
    except KeyError:
        raise InputError(f"unknown arch {arch!r} (choose from {', '.join(ARCHS)})") from None


def make_stage(spec: BackboneSpec, index: int, branches: int, cin: int, cout: int) -> nn.Module:
    """The module of stage `index` for `branches` siblings reading `cin` channels each."""
    st = spec.stages[index]
    if st.kind == "conv":
        return layers.GroupedConvBlock(branches, cin, cout, 3, st.stride, st.pool, shared_input=index == 0)
    if st.kind == "fc":
        first_fc = index == 0 or spec.stages[index - 1].kind != "fc"
        return layers.GroupedFCBlock(branches, cin, cout, spec.fc_pool if first_fc else None)
    if st.kind == "stem":
        return layers.GroupedStem(branches, cin, cout, shared_input=index == 0)
    if st.kind == "basic":
        return layers.GroupedBasicBlock(branches, cin, cout, st.stride)
    if st.kind == "bottleneck":
        return layers.GroupedBottleneck(branches, cin, cout, st.stride)
    raise ValueError(f"unknown stage kind {st.kind!r}")
