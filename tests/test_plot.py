"""`autodrop-hf plot`: what the figure says, where it is written, and runs it draws despite damaged files."""

import json

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Polygon, Rectangle

from autodrop_hf.tools.cli import main
from autodrop_hf.tools.plot import draw, image_path, read_run


def _windows(drops=(30, 50), done=None, steps=range(12, 61, 2)):
    records = []
    for step in steps:
        decided = step % 10 == 0
        records.append(
            {
                "step": step,
                "angle": 25.0 + step % 3,
                "noise_floor": 25.84 if step < 40 else 36.88,
                "statistic": (0.5 if step in drops else -3.0) if decided else None,
                "smoothed": None,
                "lr": 1e-3,
                "lr_scale": 1.0,
                "dropped": step in drops,
                "done": done is not None and step >= done,
                "window": 1 if step < 40 else 4,
                "boundary": -2.0,
            }
        )
    return records


def _log():
    log = [{"step": s, "loss": 1.0 / s, "learning_rate": 1e-3} for s in range(10, 81, 10)]
    log += [{"step": s, "eval_loss": 0.5, "eval_bleu": 20.0 + s, "eval_runtime": 1.0} for s in (40, 80)]
    return log


def test_the_figure_says_what_ran_and_reads_right():
    figure = draw(_windows(done=50), _log())
    axes = figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["learning rate", "degrees", "statistic", "loss", "bleu", "loss"]
    assert axes[0].get_title() == (
        "AutoDrop, noise-floor test, window 1→4 steps, floor ψ 25.8°→36.9°: 2 drops (red lines), done at step 50"
    )
    boundary = [line for line in axes[2].get_lines() if list(line.get_ydata()) == [-2.0, -2.0]]
    assert len(boundary) == 1 and boundary[0].get_label() == "hold | drop at -2"  # not at 0
    assert all(ax.get_xlim() == (0, 80) for ax in axes)  # the whole run: the last log, past the last window
    shaded = [p for p in axes[0].patches if isinstance(p, Polygon | Rectangle)] + [
        c for c in axes[0].collections if isinstance(c, PolyCollection)
    ]
    assert shaded and "warm-up (not observed)" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "1 drop (red lines)" in draw(_windows(drops=(30,)), []).axes[0].get_title()  # singular


def test_the_image_goes_where_asked(tmp_path, capsys):
    assert image_path(None, tmp_path) == tmp_path / "autodrop.png"
    assert image_path(tmp_path / "figure", tmp_path) == tmp_path / "figure.png"
    assert image_path(tmp_path, tmp_path / "x") == tmp_path / "autodrop.png"  # an existing folder
    assert image_path(tmp_path / "f.pdf", tmp_path) == tmp_path / "f.pdf"
    with pytest.raises(ValueError, match=r"--output .*f\.txt: not an image file name; end it in one of \.png"):
        image_path(tmp_path / "f.txt", tmp_path)
    history = tmp_path / "run" / "autodrop_history.jsonl"
    history.parent.mkdir()
    history.write_text("".join(json.dumps(w) + "\n" for w in _windows()))
    main(["plot", str(history.parent), "--output", str(tmp_path / "named")])
    assert capsys.readouterr().out.strip() == str(tmp_path / "named.png") and (tmp_path / "named.png").exists()
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["plot", str(history.parent), "--output", str(blocked / "x.png")])
    assert exit_.value.code == 2 and "autodrop-hf plot:" in capsys.readouterr().err


def test_damaged_and_unusual_files_are_drawn_with_one_line_each(tmp_path, capsys):
    records = _windows()
    del records[3]["dropped"]  # a record without a field: drawn without it
    lines = [json.dumps(r).encode() for r in records]
    lines[5] = b"[1, 2]"  # not an object
    lines[6] = b"not json"
    lines[7] = '{"step": 26, "angle": "caf\xe9"}'.encode("latin-1")  # not UTF-8
    (tmp_path / "autodrop_history.jsonl").write_bytes(b"\n".join(lines) + b'\n{"st')
    (tmp_path / "checkpoint-best").mkdir()  # not a step
    (tmp_path / "checkpoint-best" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-40").mkdir()
    log = [*_log(), {"step": 40, "eval_recall": [0.5, 0.7]}]  # a metric per class: not a number to draw
    (tmp_path / "checkpoint-40" / "trainer_state.json").write_text(json.dumps({"log_history": log}))
    (tmp_path / "trainer_state.json").write_text('{"log_history": [{"st')  # truncated: the checkpoint's is read
    windows, log_history, skipped = read_run(tmp_path)
    assert len(windows) == len(records) - 3 and log_history == log
    assert skipped[0].endswith("4 line(s) that are not window records left out (line 6, 7, 8, 26)")
    assert "trainer_state.json left out: it does not read" in skipped[1]
    main(["plot", str(tmp_path)])
    err = capsys.readouterr().err
    assert err.count("autodrop-hf plot:") == 2 and (tmp_path / "autodrop.png").stat().st_size > 10_000
    assert [ax.get_ylabel() for ax in draw(windows, log_history).axes][-2:] == ["bleu", "loss"]
