"""A small real model for demos and tests: `eiplane artifact pack eiplane.artifacts.demo_model:tiny_cnn`.

Input (N, 3, 32, 32) float32, output (N, 10) logits. Weights come from a private generator with
a fixed seed, so every call returns the same model and the global RNG is left alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

INPUT_SHAPE = (3, 32, 32)
SEED = 20240601


def tiny_cnn() -> nn.Module:
    import torch
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            return self.fc(torch.flatten(self.pool(x), 1))

    # Built without touching the global RNG's draws: modules are created under a forked RNG,
    # then every parameter is overwritten from a local generator (uniform, PyTorch's default
    # bound 1/sqrt(fan_in)), which does not depend on torch's init code from version to version.
    with torch.random.fork_rng(devices=[]):
        model = TinyCNN()
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for module in (model.conv1, model.conv2, model.fc):
            weight = module.weight
            bound = 1.0 / math.sqrt(weight[0].numel())
            weight.uniform_(-bound, bound, generator=generator)
            bias = module.bias
            assert bias is not None
            bias.uniform_(-bound, bound, generator=generator)
    return model.eval()
