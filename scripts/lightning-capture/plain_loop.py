#!/usr/bin/env python3
"""A plain PyTorch loop with a tqdm bar (no Trainer, no Lightning): rtrain's fixture for `for step in tqdm(...)`."""

import torch
from torch import nn
from tqdm import tqdm

torch.manual_seed(42)
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(4096, 16)
y = x.sum(dim=1, keepdim=True) * 0.1
for step in tqdm(range(200)):
    i = (step * 8) % len(x)
    loss = nn.functional.mse_loss(model(x[i : i + 8]), y[i : i + 8])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if (step + 1) % 50 == 0:
        tqdm.write(f"step {step + 1} loss {loss.item():.4f}")
