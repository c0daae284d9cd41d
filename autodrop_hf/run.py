"""``python -m autodrop_hf.run SCRIPT [ARGS...]`` (also under ``accelerate launch -m`` and ``torchrun -m``):
run a Trainer-based script unchanged, with ``--lr_scheduler_type autodrop`` available."""

from autodrop_hf.hf.launcher import main

if __name__ == "__main__":
    main()
