"""The scratch pool hands out reused tensors; a step's temporaries come from it."""

from __future__ import annotations

import pytest
import torch
from phs_helpers import make_params, set_grads

from goalbrake.optim import PHS
from goalbrake.optim.scratch import SMALL, Scratch, product


def test_like_reuses_after_release_and_keeps_shapes_apart() -> None:
    scratch = Scratch()
    a, b = scratch.like([torch.ones(3), torch.ones(2, 2)])
    assert (a.shape, b.shape) == ((3,), (2, 2))
    (c,) = scratch.like([torch.ones(3)])
    assert c is not a  # a is still handed out
    scratch.release()
    again = scratch.like([torch.ones(3), torch.ones(3), torch.ones(2, 2)])
    assert {id(t) for t in again} == {id(a), id(b), id(c)}


@pytest.mark.parametrize("factor", [2.5, torch.tensor(-0.5), "per-tensor"])
@pytest.mark.parametrize("size", [4, SMALL], ids=["small", "large"])
def test_product_equals_foreach_mul(factor: object, size: int) -> None:
    ts = [torch.randn(size), torch.randn(()), torch.randn(2, 3)]
    f = [torch.rand_like(t) for t in ts] if factor == "per-tensor" else factor
    expected = torch._foreach_mul(ts, f)
    for scratch in (None, Scratch()):
        for out, e in zip(product(ts, f, scratch), expected, strict=True):
            assert torch.equal(out, e)


def test_a_step_reuses_its_temporaries() -> None:
    params = [torch.nn.Parameter(torch.randn(SMALL + 1, dtype=torch.float64))]
    opt = PHS(params, lr=0.1, friction=1.0, kinetic="soft_clip")
    pooled = []
    for _ in range(3):
        set_grads(params, lambda ps: ps[0].square().sum())
        opt.step()
        pooled.append(sum(len(v) for v in opt._scratch._free.values()))
    assert pooled[0] > 0 and pooled[0] == pooled[1] == pooled[2]


def test_small_groups_do_not_fill_the_pool() -> None:
    params = make_params()
    opt = PHS(params, lr=0.1, friction=1.0, kinetic="soft_clip")
    set_grads(params)
    opt.step()
    assert not opt._scratch._free
