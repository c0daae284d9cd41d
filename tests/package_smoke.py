"""Run by `make package-check` in a fresh virtualenv with the built package installed (not the source tree)."""

import subprocess
import sys
from pathlib import Path

import torch

import autodrop_hf
from autodrop_hf import AutoDropConfig, AutoDropScheduler, AutoDropTrainer, __version__

assert "site-packages" in Path(autodrop_hf.__file__).parts, autodrop_hf.__file__  # the installed copy
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
scheduler = AutoDropScheduler(optimizer, model, AutoDropConfig(window_size=1), num_training_steps=200)
for _ in range(200):
    inputs = torch.randn(16, 4)
    loss = (model(inputs) - inputs.sum(1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
assert scheduler.autodrop.decisions and AutoDropTrainer.builds_autodrop_scheduler
for command in (["autodrop-hf", "--help"], [sys.executable, "-m", "autodrop_hf.run", "--help"]):
    executable = Path(sys.executable).parent / command[0] if command[0] == "autodrop-hf" else command[0]
    subprocess.run([str(executable), *command[1:]], check=True, capture_output=True, timeout=120)
print(f"autodrop-hf {__version__}: installed package OK")
