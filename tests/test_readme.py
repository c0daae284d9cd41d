"""The README's snippets run, and say what the README says they do."""

import math
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).parents[1] / "README.md"


def python_blocks(heading: str) -> list[str]:
    section = README.read_text().split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_quick_start_snippets_run_and_decide(capsys):
    autodrop_scheduler, two_objects = python_blocks("Quick start: a plain PyTorch loop")
    namespace: dict = {}
    exec(compile(autodrop_scheduler, str(README), "exec"), namespace)
    autodrop, optimizer = namespace["autodrop"], namespace["optimizer"]
    assert autodrop.window_size == 2  # "auto": 2,000 steps / 1,000
    # angles from the third window after warm-up until the last stair takes the learning rate to 0
    assert autodrop.scale == 0 and len(autodrop.angles) == (autodrop.drops[-1] - 50) // 2 - 2
    assert len(autodrop.decisions) == len(autodrop.angles) // 10 and len(autodrop.drops) > 50
    assert optimizer.param_groups[0]["lr"] == 1e-2 * autodrop.scale
    printed = capsys.readouterr().out
    assert f"{len(autodrop.decisions)} decisions, {len(autodrop.drops)} drops; noise floor 28.43°" in printed

    composed = two_objects.replace("...  #", "#")
    torch.manual_seed(0)  # a fresh model and optimizer, as a reader composing a schedule would start
    namespace["model"] = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    namespace["optimizer"] = torch.optim.AdamW(namespace["model"].parameters(), lr=1e-2)
    exec(compile(composed, str(README), "exec"), namespace)
    cosine, autodrop = namespace["scheduler"], namespace["autodrop"]
    assert isinstance(cosine, torch.optim.lr_scheduler.CosineAnnealingLR) and autodrop.scheduler is cosine
    # the loop the comment names: the drops multiply the cosine's own value (its closed form), step by step
    model, optimizer = namespace["model"], namespace["optimizer"]
    peak = optimizer.param_groups[0]["initial_lr"]
    for step in range(1, 1001):
        batch = torch.randint(0, 1024, (32,))
        loss = torch.nn.functional.mse_loss(model(namespace["inputs"][batch]), namespace["targets"][batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        cosine.step()
        autodrop.step()
        expected = peak * (1 + math.cos(math.pi * step / 2000)) / 2 * autodrop.scale
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9), step
    assert autodrop.drops  # the check above saw drops


def test_the_files_the_docs_name_exist():
    root = README.parent
    texts = [README.read_text(), *(path.read_text() for path in (root / "docs").glob("*.md"))]
    named = {
        match.rstrip(".,")
        for text in texts
        for match in re.findall(r"\b(?:autodrop_hf|benchmarks|examples|tests|docs)/[\w./-]+", text)
    }
    assert len(named) > 20
    assert sorted(path for path in named if not (root / path).exists()) == []
