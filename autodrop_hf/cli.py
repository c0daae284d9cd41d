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
    args = parser.parse_args(argv)
    if args.command == "plot":
        from .plot import plot_run

        try:
            print(plot_run(args.output_dir, args.output))
        except FileNotFoundError as error:
            parser.exit(2, f"autodrop-hf plot: {error}\n")


if __name__ == "__main__":
    main()
