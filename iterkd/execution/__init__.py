"""Sandboxed execution of generated programs against their tests (see `executor.py`)."""

from iterkd.execution.config import SandboxConfig
from iterkd.execution.executor import Executor, SandboxError
from iterkd.execution.models import (
    Program,
    ProgramVerdict,
    Status,
    TestResult,
    TestStatus,
    TestSuite,
)
from iterkd.execution.runners import RUNNERS, InvalidProgram, LanguageRunner

__all__ = [
    "RUNNERS",
    "Executor",
    "InvalidProgram",
    "LanguageRunner",
    "Program",
    "ProgramVerdict",
    "SandboxConfig",
    "SandboxError",
    "Status",
    "TestResult",
    "TestStatus",
    "TestSuite",
]
