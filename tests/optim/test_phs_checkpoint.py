"""PHS state dicts load with torch.load(weights_only=True), Lightning's default."""

import io

import pytest
import torch

from goalbrake import PHS
from goalbrake.optim import KINETIC_NAMES, get_kinetic


@pytest.mark.parametrize("name", KINETIC_NAMES)
def test_state_with_a_kinetic_instance_loads_weights_only(name: str) -> None:
    model = torch.nn.Linear(3, 2)
    kinetic = type(get_kinetic(name))()  # an instance, as a config's class_path gives
    opt = PHS(model.parameters(), lr=0.1, kinetic=kinetic)
    model(torch.randn(4, 3)).square().sum().backward()
    opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["param_groups"][0]["kinetic"] == kinetic

    restored = PHS(torch.nn.Linear(3, 2).parameters(), lr=0.1, kinetic=name)
    restored.load_state_dict(state)
    momenta = [restored.state[p]["momentum"] for p in restored.param_groups[0]["params"]]
    expected = [opt.state[p]["momentum"] for p in opt.param_groups[0]["params"]]
    for got, want in zip(momenta, expected, strict=True):
        torch.testing.assert_close(got, want)
