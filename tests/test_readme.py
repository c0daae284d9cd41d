import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks(heading: str) -> list[str]:
    section = README.read_text().split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_quick_start_snippet_runs_and_drops(capsys):
    (snippet,) = python_blocks("Quick start: a plain PyTorch loop")
    namespace: dict = {}
    exec(compile(snippet, str(README), "exec"), namespace)
    autodrop, scheduler = namespace["autodrop"], namespace["scheduler"]
    assert len(autodrop.angles) == (2000 - 50) // 5 - 2
    assert autodrop.drops, "the snippet should show at least one drop"
    assert scheduler.get_last_lr()[0] == 1e-2 * autodrop.scale
    assert "lr dropped to" in capsys.readouterr().out
