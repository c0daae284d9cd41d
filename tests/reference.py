"""Independent float64 NumPy references for AutoDrop (docs/algorithm.md), written without the library."""

from __future__ import annotations

import numpy as np


def window_angles(trajectory: np.ndarray, window_size: int, num_warmup_steps: int = 0) -> np.ndarray:
    """Angles (degrees) between consecutive displacements of window means of ``trajectory``.

    ``trajectory[t]`` is the parameter vector after optimizer step ``t + 1``.
    """
    observed = np.asarray(trajectory, dtype=np.float64)[num_warmup_steps:]
    num_windows = len(observed) // window_size
    means = observed[: num_windows * window_size].reshape(num_windows, window_size, -1).mean(axis=1)
    displacements = np.diff(means, axis=0)
    a, b = displacements[1:], displacements[:-1]
    cosine = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def smooth(buffer: np.ndarray, sigma_cap: float) -> float:
    buffer = np.asarray(buffer, dtype=np.float64)
    sigma = min(buffer.std(), sigma_cap)
    centre = buffer[len(buffer) // 2]
    if sigma == 0:
        return float(centre)
    weights = np.exp(-((centre - buffer) ** 2) / (2 * sigma**2))
    return float((weights * buffer).sum() / weights.sum())


def drop_indices(angles: np.ndarray, buffer_size: int, threshold: float) -> list[int]:
    """Indices into ``angles`` at which Algorithm 1 (as resolved in docs/algorithm.md, section 5) drops."""
    drops, start = [], 0
    previous = None
    for i in range(len(angles)):
        window = angles[start : i + 1][-buffer_size:]
        if i + 1 - start < buffer_size:
            continue
        value = smooth(window, buffer_size / 2)
        if previous is not None and abs(value - previous) < threshold:
            drops.append(i)
            start, previous = i + 1, None
        else:
            previous = value
    return drops
