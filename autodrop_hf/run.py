"""``python -m autodrop_hf.run SCRIPT [ARGS...]`` (also under ``accelerate launch -m`` and ``torchrun -m``):
run a Trainer-based script unchanged, with ``--lr_scheduler_type autodrop`` available; ``autodrop-hf run`` is
the same. What it does: :mod:`autodrop_hf.hf.launcher`."""

import sys

from autodrop_hf.hf.launcher import run_script

USAGE = """usage: python -m autodrop_hf.run SCRIPT [ARGS...]

Run a Trainer-based script unchanged, with --lr_scheduler_type autodrop and the --autodrop_* flags
(the same as autodrop-hf run SCRIPT [ARGS...])."""


def main() -> None:
    """Run ``sys.argv[1]`` with the arguments after it."""
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    run_script(argv[0], argv[1:])


if __name__ == "__main__":
    main()
