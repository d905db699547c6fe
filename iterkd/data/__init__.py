"""Question sets bundled with iterkd, one JSON object per line (see `iterkd.questions.Question`).

- `seed.jsonl`: the questions the first teacher is trained and evaluated on.
- `heldout.jsonl`: different tasks, never trained on; for measuring generalization.

Load them with `iterkd.questions.load_bundled("seed")`.
"""

BUNDLED_SETS = ("seed", "heldout")
