"""Generation backends (hf, vllm, openai) behind one interface, with a content-hash cache."""

from iterkd.generation.base import (
    Backend,
    GenerationError,
    GenerationReport,
    Message,
    Prompt,
    Sample,
    SamplingParams,
)
from iterkd.generation.cache import CacheCorruptError, GenerationCache, generate

__all__ = [
    "Backend",
    "CacheCorruptError",
    "GenerationCache",
    "GenerationError",
    "GenerationReport",
    "Message",
    "Prompt",
    "Sample",
    "SamplingParams",
    "generate",
]
