"""Fixtures shared by the test modules."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a test module (and its module fixtures) on one torch thread: results do not depend on it, and on a loaded 2-core machine two
    OpenMP threads made each small op wait up to hundreds of milliseconds.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def celeba(tmp_path_factory) -> str:
    """A data spec for 48 synthetic CelebA-format faces at 32x32 (modules may define their own `celeba`)."""
    from attrnet.data.synth import generate

    root = tmp_path_factory.mktemp("celeba48") / "celeba"
    generate("celeba", root, num=48, seed=0, size=(32, 32))
    return f"celeba:{root}"
