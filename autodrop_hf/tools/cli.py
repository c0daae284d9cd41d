"""The ``autodrop-hf`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _integer(minimum: int, maximum: int = 2**31):
    """An argparse type: an integer from ``minimum`` to ``maximum``, or a message naming what to give."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {minimum} to {maximum}, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected an integer from {minimum} to {maximum}, got {value}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="autodrop-hf", description="AutoDrop tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a Trainer-based script unchanged, with --lr_scheduler_type autodrop and the --autodrop_* flags",
    )
    run.add_argument("script", help="the script, as you would give it to python")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="the script's own arguments")
    plot = commands.add_parser(
        "plot", help="draw LR, angular velocity and its noise floor, decisions, loss and eval metrics into a PNG"
    )
    plot.add_argument(
        "output_dir", help="the run's output_dir (holds autodrop_history.jsonl), or a history file of a plain loop"
    )
    plot.add_argument(
        "--output", help="image file (.png, .pdf, .svg), or a folder for autodrop.png (default: beside the history)"
    )
    nqm = commands.add_parser(
        "nqm", help="the paper's noisy quadratic model: Figures 1-2, Theorem 3.2 and Eq. 38 checked"
    )
    nqm.add_argument("--output", default="nqm", help="folder for figures and nqm_results.json (default: nqm)")
    nqm.add_argument("--steps", type=_integer(100), default=3000, help="iterations of the Figure 1-2 runs (>= 100)")
    nqm.add_argument(
        "--theorem_steps", type=_integer(100), default=20_000, help="stationary iterations per lr for Thm 3.2 (>= 100)"
    )
    nqm.add_argument("--seed", type=_integer(0, 2**63 - 1), default=0)
    args = parser.parse_args(argv)
    if args.command == "run":
        from ..hf.launcher import run_script

        run_script(args.script, args.arguments)
    elif args.command == "nqm":
        from ..paper.nqm_experiment import run

        try:
            run(args.output, steps=args.steps, seed=args.seed, theorem_steps=args.theorem_steps)
        except OSError as error:  # an output folder that cannot be made (a file in its path, no permission)
            parser.exit(2, f"autodrop-hf nqm: {error}\n")
    elif args.command == "plot":
        from .plot import plot_run

        try:
            print(plot_run(args.output_dir, args.output))
        except (OSError, ValueError) as error:  # no history; not an image name; a folder that cannot be made
            parser.exit(2, f"autodrop-hf plot: {error}\n")


if __name__ == "__main__":
    main()
