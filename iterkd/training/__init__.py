"""Training the student: `data` (SFT rows and contrastive pairs, pure), `losses` (pure tensor
functions) and `trainer` (a `transformers.Trainer` using them; torch is imported there only)."""
