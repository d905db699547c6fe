"""Sandbox settings. Every default lives here; the defaults are generous on purpose: a verdict
must not flip because the machine was busy, so limits catch runaways, not slow-but-correct code."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: PositiveInt | None = Field(
        None, description="sandbox workers running programs at once; default: one per core"
    )
    timeout_s: PositiveFloat = Field(10.0, description="wall-clock limit per program")
    cpu_time_s: PositiveFloat | None = Field(None, description="CPU limit; default: timeout_s")
    memory_mb: PositiveInt = Field(2048, description="address-space limit (RLIMIT_AS)")
    file_size_mb: PositiveInt = Field(16, description="largest file a program may write")
    open_files: PositiveInt = Field(
        256, description="RLIMIT_NOFILE; R does not start below 167 (it reserves 100 for DLLs)"
    )
    max_processes: PositiveInt = Field(
        32, description="RLIMIT_NPROC for the slot's uid: processes + threads of one program"
    )
    output_limit_bytes: PositiveInt = Field(
        1 << 20, description="stdout+stderr beyond this kills the program (output_limit)"
    )
    output_keep_bytes: int = Field(2048, ge=0, description="head of the output kept in the verdict")
    max_result_bytes: PositiveInt = Field(
        16 << 20, description="test-result channel beyond this kills the program"
    )
    max_source_bytes: PositiveInt = Field(2 << 20, description="larger programs are refused")
    tmpfs_mb: PositiveInt = Field(256, description="private /tmp of each worker (mount namespace)")
    straggler_after_s: PositiveFloat = Field(
        0.25,
        description="a program running longer than this stops counting against `workers` (another "
        "starts beside it) and is niced: sleeping or looping programs no longer stall the pool",
    )
    max_stragglers: int | None = Field(
        None, ge=0, description="extra slots for stragglers; default: 2 per worker"
    )
    straggler_idle: bool = Field(
        True,
        description="stragglers run under SCHED_IDLE (only on otherwise idle CPU); this can slow "
        "a legitimately long program on a saturated machine: keep timeout_s generous",
    )
    recycle_after: PositiveInt = Field(
        200, description="a worker is replaced after this many programs"
    )
    seed: int = Field(0, description="PYTHONHASHSEED and random.seed() of every program")
    python: str | None = Field(None, description="interpreter for programs; default: this one")
    extra_env: dict[str, str] = Field(
        default_factory=dict, description="variables added to the scrubbed environment, by name"
    )
    # isolation layers: all on by default; each can be turned off to measure its cost
    drop_privileges: bool = Field(
        True, description="run programs as an unprivileged uid (root only)"
    )
    sandbox_uid_base: int = Field(
        1_900_000, ge=1000, description="slot i runs as uid/gid sandbox_uid_base + i"
    )
    pid_namespace: bool = Field(True, description="a new PID namespace per program (kill-all)")
    net_namespace: bool = Field(True, description="no network: an empty network namespace")
    mount_namespace: bool = Field(True, description="private /tmp, /var/tmp, /dev/shm per worker")
    rlimits: bool = Field(True, description="apply the resource limits above")
    bubblewrap: Literal["auto", "on", "off"] = Field(
        "auto", description="wrap workers in bwrap (read-only /) when installed; 'on' requires it"
    )
    watchdog_grace_s: PositiveFloat = Field(
        15.0, description="a worker silent this long past a program's deadline is replaced"
    )

    def effective_cpu_time_s(self) -> float:
        return self.cpu_time_s if self.cpu_time_s is not None else self.timeout_s
