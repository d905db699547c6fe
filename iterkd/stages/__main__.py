"""`python -m iterkd.stages RUN_DIR ROUND STAGE`: one step in its own process, as the controller
starts it. The process dies with the controller (PR_SET_PDEATHSIG), so a killed controller never
leaves a stage writing into a run that is being resumed."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(
            "usage: python -m iterkd.stages RUN_DIR ROUND|baseline STAGE PARENT_PID",
            file=sys.stderr,
        )
        return 2
    run_dir, label, stage, parent = argv
    _die_with_parent(int(parent))
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # one line per step, not per load
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from iterkd.controller import run_step_in_this_process

    return run_step_in_this_process(run_dir, label, stage)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
