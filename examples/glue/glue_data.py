"""GLUE data without the Hub: the original TSV layout, and a generated offline task.

Plain Python (no ``datasets``), so benchmark scripts on machines without it can read the same files.
Each task's layout is the one GLUE's ``download_glue_data.py`` writes: CoLA has no header, MRPC's header
starts with a byte-order mark, MNLI has matched and mismatched dev files, STS-B is a regression.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path


class GlueDataError(ValueError):
    """A GLUE file that is missing or does not have its task's layout."""


def not_utf8(data: bytes, error: UnicodeDecodeError) -> str:
    """What to tell about a file that is not UTF-8 text, guessing its encoding from the first bytes."""
    guess = "UTF-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "Latin-1 or another 8-bit code page"
    return (
        f"not UTF-8 text (byte {error.start}: {error.reason}); it looks like {guess}. The files must be UTF-8: "
        f"convert it, e.g. `iconv -f {'UTF-16' if guess == 'UTF-16' else 'LATIN1'} -t UTF-8`."
    )


@dataclass(frozen=True)
class GlueTask:
    """Where a task's columns and labels are in its TSV files."""

    name: str
    folder: str
    text_columns: tuple[str, ...] | tuple[int, ...]
    label_column: str | int
    label_values: tuple[str, ...] | None  # as written in the files; None: regression
    label_names: tuple[str, ...] | None  # the names Hugging Face's glue dataset uses
    dev_files: tuple[str, ...] = ("dev.tsv",)
    has_header: bool = True

    @property
    def is_regression(self) -> bool:
        return self.label_values is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_values is None else len(self.label_values)


GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", (3,), 1, ("0", "1"), ("unacceptable", "acceptable"), has_header=False),
        GlueTask("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("negative", "positive")),
        GlueTask(
            "mrpc",
            "MRPC",
            ("#1 String", "#2 String"),
            "Quality",
            ("0", "1"),
            ("not_equivalent", "equivalent"),
        ),
        GlueTask(
            "qqp",
            "QQP",
            ("question1", "question2"),
            "is_duplicate",
            ("0", "1"),
            ("not_duplicate", "duplicate"),
        ),
        GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, None),
        GlueTask(
            "mnli",
            "MNLI",
            ("sentence1", "sentence2"),
            "gold_label",
            ("entailment", "neutral", "contradiction"),
            ("entailment", "neutral", "contradiction"),
            dev_files=("dev_matched.tsv", "dev_mismatched.tsv"),
        ),
        GlueTask(
            "qnli",
            "QNLI",
            ("question", "sentence"),
            "label",
            ("entailment", "not_entailment"),
            ("entailment", "not_entailment"),
        ),
        GlueTask(
            "rte",
            "RTE",
            ("sentence1", "sentence2"),
            "label",
            ("entailment", "not_entailment"),
            ("entailment", "not_entailment"),
        ),
        GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), ("not_entailment", "entailment")),
    )
}


def read_glue_tsv(path: str | Path, task: GlueTask) -> dict[str, list]:
    """Read one labelled GLUE TSV file into columns ``sentence1`` (``sentence2``) and ``label``.

    Labels become ids in ``task.label_values`` order (floats for STS-B). Quotes are literal text,
    as in GLUE (``csv`` with ``quoting=QUOTE_NONE``). Raises :class:`GlueDataError` naming the file
    and the problem: missing file, missing columns, short lines, labels outside the label set.
    """
    path = Path(path)
    if not path.is_file():
        raise GlueDataError(f"{path}: file not found (task {task.name} needs {task.folder}/train.tsv and dev).")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as error:
        raise GlueDataError(f"{path}: {not_utf8(path.read_bytes(), error)}") from None
    if task.has_header:
        if not rows:
            raise GlueDataError(f"{path}: empty file, expected a header line for task {task.name}.")
        header, rows = rows[0], rows[1:]
        wanted = [*task.text_columns, task.label_column]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise GlueDataError(
                f"{path}: columns {missing} missing for task {task.name} (header has {header}); "
                f"is this the {task.folder} file?"
            )
        text_index = [header.index(name) for name in task.text_columns]
        label_index = header.index(task.label_column)
    else:
        text_index, label_index = list(task.text_columns), task.label_column
    needed = max(*text_index, label_index) + 1
    columns: dict[str, list] = {f"sentence{i + 1}": [] for i in range(len(text_index))}
    columns["label"] = []
    first_line = 2 if task.has_header else 1
    for line_number, row in enumerate(rows, start=first_line):
        if not row:
            continue
        if len(row) < needed:
            raise GlueDataError(
                f"{path}, line {line_number}: {len(row)} tab-separated fields, task {task.name} needs {needed}."
            )
        for i, index in enumerate(text_index):
            columns[f"sentence{i + 1}"].append(row[index])
        columns["label"].append(_label(row[label_index], task, path, line_number))
    if not columns["label"]:
        raise GlueDataError(f"{path}: no examples.")
    return columns


def _label(value: str, task: GlueTask, path: Path, line_number: int) -> int | float:
    value = value.strip()
    if task.label_values is None:
        try:
            return float(value)
        except ValueError:
            raise GlueDataError(f"{path}, line {line_number}: score {value!r} is not a number.") from None
    if value not in task.label_values:
        raise GlueDataError(
            f"{path}, line {line_number}: label {value!r} is not one of {list(task.label_values)} (task {task.name})."
        )
    return task.label_values.index(value)


def read_glue_dir(glue_dir: str | Path, task_name: str) -> dict[str, dict[str, list]]:
    """``{"train": columns, "validation": columns[, "validation_mismatched": columns]}`` of one task."""
    task = glue_task(task_name)
    folder = Path(glue_dir) / task.folder
    splits = {"train": read_glue_tsv(folder / "train.tsv", task)}
    names = ["validation", "validation_mismatched"]
    for name, file_name in zip(names, task.dev_files, strict=False):
        splits[name] = read_glue_tsv(folder / file_name, task)
    return splits


def glue_task(task_name: str) -> GlueTask:
    try:
        return GLUE_TASKS[task_name.lower()]
    except KeyError:
        raise GlueDataError(f"unknown GLUE task {task_name!r}; choose one of {sorted(GLUE_TASKS)}.") from None


# --- The generated offline task -------------------------------------------------------------------

#: The task the main job runs when no GLUE task or file is given.
NEGATION_TASK = GlueTask("negation", "", ("sentence",), "label", ("0", "1"), ("negative", "positive"))

_SUBJECTS = [
    "the movie",
    "the plot",
    "the acting",
    "this film",
    "the soundtrack",
    "the ending",
    "the cast",
    "the script",
    "the director's work",
    "the dialogue",
    "the story",
    "the camera work",
]
POSITIVE_WORDS = [
    "good",
    "great",
    "wonderful",
    "brilliant",
    "enjoyable",
    "charming",
    "moving",
    "funny",
    "clever",
    "delightful",
    "gripping",
    "beautiful",
]
NEGATIVE_WORDS = [
    "bad",
    "boring",
    "awful",
    "dull",
    "terrible",
    "tedious",
    "weak",
    "clumsy",
    "bland",
    "predictable",
    "painful",
    "forgettable",
]
_ADVERBS = ["", "", "very ", "really ", "quite ", "truly ", "rather "]
_NEGATIONS = ["not ", "never ", "hardly "]
_FRAMES = ["i would not say that {}", "it is not true that {}", "nobody could claim that {}"]


#: Adjectives the training split never shows: the validation split tests what pretraining knows.
HELD_OUT = 3


def _clause(rng: random.Random, held_out: bool) -> tuple[str, int]:
    """A clause and its sentiment (1 positive): a negation flips the adjective's polarity."""
    positive = rng.random() < 0.5
    adjectives = POSITIVE_WORDS if positive else NEGATIVE_WORDS
    adjective = rng.choice(adjectives if held_out else adjectives[:-HELD_OUT])
    negated = rng.random() < 0.45
    verb = rng.choice(["was", "is"])
    negation = rng.choice(_NEGATIONS) if negated else ""
    text = f"{rng.choice(_SUBJECTS)} {verb} {negation}{rng.choice(_ADVERBS)}{adjective}"
    return text, int(positive != negated)


def negation_sentence(rng: random.Random, held_out: bool = False) -> tuple[str, int]:
    """One example of compositional sentiment: negation, framing negation and contrast with "but".

    - ``clause``: the clause's sentiment;
    - ``FRAME(clause)`` ("it is not true that ..."): the opposite;
    - ``clause, but clause``: the sentiment of the clause after "but";
    - ``although clause, clause`` and ``clause, although clause``: the main clause's sentiment.

    With ``held_out``, clauses may also use adjectives the training split never contains.
    """
    kind = rng.random()
    if kind < 0.4:
        return _clause(rng, held_out)
    if kind < 0.6:
        text, label = _clause(rng, held_out)
        return rng.choice(_FRAMES).format(text), 1 - label
    (first, first_label), (second, second_label) = _clause(rng, held_out), _clause(rng, held_out)
    if kind < 0.8:
        return f"{first}, but {second}", second_label
    if kind < 0.9:
        return f"although {first}, {second}", second_label
    return f"{first}, although {second}", first_label


def negation_task(num_train: int = 2000, num_validation: int = 500, seed: int = 0) -> dict[str, dict[str, list]]:
    """A generated binary sentiment task whose labels follow from the text (no network, no files).

    It is not GLUE: it exists so the example runs anywhere. Sentences are unique across splits, and
    the validation split also uses adjectives that training never shows (see ``HELD_OUT``).
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, dict[str, list]] = {}
    for split, size in (("train", num_train), ("validation", num_validation)):
        columns: dict[str, list] = {"sentence1": [], "label": []}
        while len(columns["label"]) < size:
            text, label = negation_sentence(rng, held_out=split == "validation")
            if text not in seen:
                seen.add(text)
                columns["sentence1"].append(text)
                columns["label"].append(label)
        splits[split] = columns
    return splits
