"""iterkd: iterative knowledge distillation of code LLMs."""

__version__ = "0.1.0"
