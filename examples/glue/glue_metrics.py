"""GLUE metrics as GLUE defines them, through ``evaluate`` when it can load, else computed here.

The local computation follows ``evaluate``'s ``glue`` metric to the letter (the same scikit-learn and
SciPy functions; predictions cast to int64, or to float32 for STS-B, as its features do), so both
routes give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Metric names per task, in the order GLUE reports them.
TASK_METRICS = {
    "cola": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "stsb": ("pearson", "spearmanr"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
    "negation": ("accuracy",),
}


def local_glue_metric(task: str, predictions, references) -> dict[str, float]:
    """GLUE's metric for ``task`` with scikit-learn / SciPy."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    dtype = np.float32 if task == "stsb" else np.int64
    predictions, references = np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)
    if task == "cola":
        return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
    if task == "stsb":
        return {
            "pearson": float(pearsonr(predictions, references)[0]),
            "spearmanr": float(spearmanr(predictions, references)[0]),
        }
    accuracy = float((predictions == references).mean())
    if task in ("mrpc", "qqp"):
        return {"accuracy": accuracy, "f1": float(f1_score(y_true=references, y_pred=predictions))}
    if task in TASK_METRICS:
        return {"accuracy": accuracy}
    raise ValueError(f"no GLUE metric for task {task!r}; known: {sorted(TASK_METRICS)}.")


def glue_metric(task: str) -> tuple[Callable[..., dict[str, float]], str]:
    """``(compute(predictions, references) -> dict, source)``; source is ``"evaluate"`` or ``"local"``."""
    if task in TASK_METRICS and task != "negation":
        try:
            import evaluate

            metric = evaluate.load("glue", task)
            return (lambda predictions, references: metric.compute(predictions=predictions, references=references)), (
                "evaluate"
            )
        except Exception:  # offline, or evaluate not installed: same definitions, computed here
            pass
    return (lambda predictions, references: local_glue_metric(task, predictions, references)), "local"
