"""The ``autodrop-hf`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="autodrop-hf", description="AutoDrop tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    plot = commands.add_parser(
        "plot", help="draw LR, angular velocity, loss and eval metrics of a Trainer run into a PNG"
    )
    plot.add_argument("output_dir", help="the run's output_dir (holds autodrop_history.jsonl)")
    plot.add_argument("--output", help="PNG path (default: OUTPUT_DIR/autodrop.png)")
    nqm = commands.add_parser(
        "nqm", help="the paper's noisy quadratic model: Figures 1-2, Theorem 3.2 and Eq. 38 checked"
    )
    nqm.add_argument("--output", default="nqm", help="folder for figures and nqm_results.json (default: nqm)")
    nqm.add_argument("--steps", type=int, default=3000, help="iterations of the Figure 1-2 runs")
    nqm.add_argument("--theorem_steps", type=int, default=20_000, help="stationary iterations per lr for Thm 3.2")
    nqm.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "nqm":
        from ..paper.nqm_experiment import run

        run(args.output, steps=args.steps, seed=args.seed, theorem_steps=args.theorem_steps)
    elif args.command == "plot":
        from .plot import plot_run

        try:
            print(plot_run(args.output_dir, args.output))
        except FileNotFoundError as error:
            parser.exit(2, f"autodrop-hf plot: {error}\n")


if __name__ == "__main__":
    main()
