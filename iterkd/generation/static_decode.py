"""A decode loop for the `hf` backend in which every shape stays fixed, so that on a GPU one decode
step can be captured once as a CUDA graph and replayed (`model.generate` launches every kernel of
every layer from Python at each step: a 135M model spends its time in launches, not in math).

- The prompts of a batch are prefilled once each; their keys and values are copied to the n rows
  that sample from them (`repeat_interleave`), not computed n times.
- The KV cache is preallocated for prompt width + max_new_tokens and written at a position held
  in a device tensor; the attention mask is a 4D tensor built here, so transformers takes it as
  it is and nothing in a step reads a value back to the host.
- A step reads the cache only up to the next multiple of `WINDOW` (64) past its position, not
  to the end of the generation; on a GPU each window has its CUDA graph.
- A one-token step of a grouped-query model (SmolLM2: 9 query heads share 3 key/value heads)
  reads each cached key and value once (`grouped_decode_attention`); transformers' sdpa copies
  them once per query head whenever a mask is given on CUDA, and at 1,640 rows of ~1,000
  positions those copies are most of a step.
- `compile_step`: the step's forward is `torch.compile`d (one graph for every layer, with
  dynamic shapes; the prefill stays eager), so the norms', rotary embeddings' and activations'
  elementwise kernels fuse; on a GPU the compiled step is then captured as a CUDA graph too.
- Sampling is `hf.RowSampler`'s: one pre-drawn uniform per row and step, so a row's tokens depend
  on its own seed only, whichever rows share its batch. Rows that reached an end-of-turn token are
  padded; the host looks at them every `CHECK_EVERY` steps to stop early.

Stop strings are applied afterwards by the backend (`cut_at_stop`), as they are on the
`generate` path: the text is the same, a row just runs on until its end-of-turn token.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

CHECK_EVERY = 16  # steps between looks at "all rows done?" (each look waits for the GPU)
WARMUP_STEPS = 2  # steps run before the first CUDA graph is captured (kernel warm-up)
WINDOW = 64  # the cache prefix a step reads grows in blocks of this many positions
SUPPORTED_ATTENTION = ("sdpa", "eager")
# generation-config fields that change the distribution of the next token; a model whose
# generation config sets one keeps the `generate` path, which applies it
LOGITS_SETTINGS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "encoder_repetition_penalty",
    "sequence_bias",
    "min_length",
    "min_new_tokens",
)


GROUPED_ATTENTION = "iterkd_grouped_decode"  # the name it is registered under in transformers


def grouped_decode_attention(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:  # fmt: skip
    """Attention of one decode step without repeating keys and values per query head: query head
    h reads key/value head h // groups, so the `groups` query heads of a key/value head are laid
    out as `groups` query positions of that head (all at the same position, so one mask row does
    for them all) and one SDPA call reads the cache once. Prefill, and models whose heads are
    not grouped, go to transformers' sdpa."""
    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows, heads, _, dim = query.shape
    grouped = query.reshape(rows, key.shape[1], groups, dim)
    output = torch.nn.functional.scaled_dot_product_attention(
        grouped, key, value, attn_mask=attention_mask, scale=scaling
    )
    return output.reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(GROUPED_ATTENTION, grouped_decode_attention)


@contextlib.contextmanager
def grouped_attention(model: Any) -> Iterator[None]:
    """An sdpa model attends through `grouped_decode_attention` inside the block (the setting is
    the model's config, so it is put back after, also on an error)."""
    config = model.config
    before = config._attn_implementation
    if before == "sdpa":
        config._attn_implementation = GROUPED_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = before


class PrefillKV:
    """The cache a prefill pass writes: each layer's keys and values, kept as computed."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        self.keys.append(key_states)
        self.values.append(value_states)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # position ids are always passed explicitly


class StaticKV:
    """rows x heads x length x head_dim per layer, written at `index` (a device tensor). A step
    reads the prefix as long as its attention mask (`window`): the positions not reached yet
    are not read at all, rather than read and masked out."""

    def __init__(self, prefill: PrefillKV, n: int, length: int) -> None:
        # one spare position, never read: a window is then never the whole tensor, so its view
        # is never contiguous (a compiled step would compile again for the one that is); the
        # decoder's mask has one spare column for the same reason
        self.length = length
        self.keys = [_grown(k.repeat_interleave(n, dim=0), length + 1) for k in prefill.keys]
        self.values = [_grown(v.repeat_interleave(n, dim=0), length + 1) for v in prefill.values]
        device = self.keys[0].device
        self.index = torch.tensor([prefill.keys[0].shape[2]], dtype=torch.long, device=device)
        # its length is what a step reads (a shape, not an int: a compiled step treats it as a
        # dynamic size, not a constant)
        self.window = _dynamic_length(self.keys[0][:1, :1, :length, :1])

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        self.keys[layer_idx].index_copy_(2, self.index, key_states)
        self.values[layer_idx].index_copy_(2, self.index, value_states)
        read = self.window.shape[2]
        return self.keys[layer_idx][:, :, :read], self.values[layer_idx][:, :, :read]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # position ids are always passed explicitly


def _grown(states: torch.Tensor, length: int) -> torch.Tensor:
    out = states.new_zeros((*states.shape[:2], length, states.shape[3]))
    out[:, :, : states.shape[2]] = states
    return out


def _dynamic_length(view: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """`view`, its length along `dim` marked as a size that varies (a compiled step reads a
    window of the cache that grows: one graph for every window, not one compile each)."""
    torch._dynamo.maybe_mark_dynamic(view, dim)
    return view


def unsupported_reason(model: Any) -> str | None:
    """Why `model` must keep the `generate` path, or None when the static loop can run it."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in SUPPORTED_ATTENTION:
        return f"attention implementation {implementation!r}"
    kinds = getattr(config, "layer_types", None) or []
    if getattr(config, "sliding_window", None) or any(k != "full_attention" for k in kinds):
        return "sliding-window attention"
    generation = model.generation_config
    for name in LOGITS_SETTINGS:
        value = getattr(generation, name, None)
        if value not in (None, 1.0, 0, [], False):  # 1.0: no repetition penalty
            return f"generation config sets {name}={value!r}"
    return None


def choose_tokens(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float,
                  top_p: float) -> torch.Tensor:  # fmt: skip
    """One token per row: argmax at temperature 0, else inverse-CDF sampling with the row's
    uniform (`uniforms` is rows x 1), the same arithmetic as `hf.RowSampler`."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    from iterkd.generation.hf import _top_p

    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        probs = _top_p(probs, top_p)
    cumulative = probs.cumsum(dim=-1)
    chosen = torch.searchsorted(cumulative, uniforms * cumulative[:, -1:])
    return chosen.clamp_(max=logits.shape[-1] - 1).squeeze(1)


class StaticDecoder:
    """Generates for a batch of prompts, n rows each; see the module docstring."""

    def __init__(self, model: Any, pad_id: int, eos_ids: Sequence[int], *, cuda_graphs: bool = True,
                 group_queries: bool = True, compile_step: bool = False) -> None:  # fmt: skip
        self.model = model
        self.pad_id = pad_id
        self.eos_ids = sorted(set(eos_ids))
        implementation = model.config._attn_implementation
        self.boolean_mask = implementation == "sdpa"  # eager attention adds a float mask
        self.cuda_graphs = cuda_graphs and model.device.type == "cuda"
        self.graph_steps = 0  # decode steps replayed from a CUDA graph (for tests and benchmarks)
        self.graph_pool: Any = None  # one memory pool for every captured step
        self.group_queries = group_queries  # off: transformers' sdpa (the A/B in benchmarks)
        # the step's forward as one compiled graph (dynamic shapes: one compile a process, not
        # one a batch); its elementwise kernels fuse, so a step launches fewer of them
        self.forward = torch.compile(model.forward, dynamic=True) if compile_step else model

    @torch.inference_mode()
    def run(self, prompts: Sequence[Sequence[int]], n: int, uniforms: torch.Tensor,
            temperature: float, top_p: float) -> torch.Tensor:  # fmt: skip
        """Rows x max_new_tokens token ids (prompt p's samples in rows p*n .. p*n+n-1); after a
        row's end-of-turn token, pad."""
        device = self.model.device
        width, steps = max(len(p) for p in prompts), uniforms.shape[1]
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + list(p) for p in prompts])
        real = torch.tensor([[False] * (width - len(p)) + [True] * len(p) for p in prompts])
        ids, real, uniforms = ids.to(device), real.to(device), uniforms.to(device)
        attention = (
            grouped_attention(self.model) if self.group_queries else contextlib.nullcontext()
        )
        with attention:
            cache, logits = self._prefill(ids, real)
            state = self._decode_state(real, n, width + steps, cache)
            first = choose_tokens(logits.repeat_interleave(n, 0), uniforms[:, :1], temperature,
                                  top_p)  # fmt: skip
            self._record(state, first, torch.zeros(1, dtype=torch.long, device=device))
            if steps > 1:
                self._decode(state, uniforms, temperature, top_p, steps)
        return state["out"]

    def _prefill(self, ids: torch.Tensor, real: torch.Tensor) -> tuple[PrefillKV, torch.Tensor]:
        width = ids.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None, None] & real[:, None, None, :]
        # a pad position attends to itself: no row of the mask is empty, so no NaN reaches the
        # cache (a pad's keys are masked out later anyway)
        allowed |= torch.eye(width, dtype=torch.bool, device=ids.device)[None, None]
        positions = (real.long().cumsum(-1) - 1).clamp_(min=0)
        cache = PrefillKV()
        out = self.model(input_ids=ids, attention_mask=self._mask(allowed), position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)  # fmt: skip
        return cache, out.logits[:, -1, :]

    def _decode_state(self, real: torch.Tensor, n: int, length: int, prefill: PrefillKV) -> dict:
        rows, width = real.shape[0] * n, real.shape[1]
        # one spare column, as the cache has one spare position: no window's view is contiguous
        allowed = torch.zeros(rows, 1, 1, length + 1, dtype=torch.bool, device=real.device)
        allowed[:, 0, 0, :width] = real.repeat_interleave(n, 0)
        return {
            "cache": StaticKV(prefill, n, length),
            "mask": self._mask(allowed),  # what the model reads; each step opens one column
            "positions": real.sum(-1).repeat_interleave(n).unsqueeze(1),
            "tokens": torch.full((rows, 1), self.pad_id, dtype=torch.long, device=real.device),
            "done": torch.zeros(rows, dtype=torch.bool, device=real.device),
            "eos": torch.tensor(self.eos_ids, dtype=torch.long, device=real.device),
            "out": torch.full(
                (rows, length - width), self.pad_id, dtype=torch.long, device=real.device
            ),
            "step": torch.ones(1, dtype=torch.long, device=real.device),
        }

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        if self.boolean_mask:
            return allowed
        lowest = torch.finfo(self.model.dtype).min
        return torch.zeros(
            allowed.shape, dtype=self.model.dtype, device=allowed.device
        ).masked_fill_(~allowed, lowest)

    def _record(self, state: dict, chosen: torch.Tensor, step: torch.Tensor) -> None:
        """Keep a step's tokens: pad for rows already done; done after an end-of-turn token."""
        chosen = torch.where(state["done"], torch.full_like(chosen, self.pad_id), chosen)
        state["out"].index_copy_(1, step, chosen.unsqueeze(1))
        state["done"] |= (chosen.unsqueeze(1) == state["eos"]).any(dim=1)
        state["tokens"].copy_(chosen.unsqueeze(1))

    def _step(self, state: dict, uniforms: torch.Tensor, temperature: float, top_p: float) -> None:
        """One decode step, entirely on the device (what a CUDA graph captures)."""
        cache = state["cache"]
        state["mask"].index_fill_(3, cache.index, True if self.boolean_mask else 0.0)
        mask = _dynamic_length(state["mask"][..., : cache.window.shape[2]], dim=3)
        logits = self.forward(input_ids=state["tokens"], attention_mask=mask,
                            position_ids=state["positions"], past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1, :]  # fmt: skip
        column = uniforms.index_select(1, state["step"])
        self._record(state, choose_tokens(logits, column, temperature, top_p), state["step"])
        state["positions"].add_(1)
        cache.index.add_(1)
        state["step"].add_(1)

    def _decode(self, state: dict, uniforms: torch.Tensor, temperature: float, top_p: float,
                steps: int) -> None:  # fmt: skip
        """Steps 1 .. steps-1. Each reads the cache up to the next multiple of `WINDOW` past the
        position it writes; on a GPU each window's step is a CUDA graph of its own (all share one
        memory pool), captured once `WARMUP_STEPS` steps have run without one."""
        cache = state["cache"]
        start, length = int(cache.index.item()), cache.length
        graphs: dict[int, torch.cuda.CUDAGraph | None] = {}
        ungraphed = 0
        for done_steps in range(1, steps):
            read = min(length, -(-(start + done_steps) // WINDOW) * WINDOW)
            if read != cache.window.shape[2]:  # a new window: every WINDOW steps, not each step
                cache.window = _dynamic_length(cache.keys[0][:1, :1, :read, :1])
            graph = graphs.get(read)
            if graph is None and self.cuda_graphs and ungraphed >= WARMUP_STEPS:
                graph = graphs[read] = self._capture(state, uniforms, temperature, top_p)
            if graph is not None:
                graph.replay()
                self.graph_steps += 1
            else:
                self._step(state, uniforms, temperature, top_p)
                ungraphed += 1
            if done_steps % CHECK_EVERY == 0 and bool(state["done"].all()):
                return

    def _capture(self, state: dict, uniforms: torch.Tensor, temperature: float,
                 top_p: float) -> torch.cuda.CUDAGraph | None:  # fmt: skip
        """The decode step as a CUDA graph (capturing records it without running it); None,
        with a warning, where the model does something a graph cannot hold: then every step
        runs eagerly, slower but the same."""
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        if self.graph_pool is None:
            self.graph_pool = torch.cuda.graph_pool_handle()
        try:
            with torch.cuda.graph(graph, pool=self.graph_pool):
                self._step(state, uniforms, temperature, top_p)
        except RuntimeError as error:
            self.cuda_graphs = False
            warnings.warn(f"decode step not capturable as a CUDA graph ({error}); running it "
                          "eagerly", RuntimeWarning, stacklevel=2)  # fmt: skip
            return None
        return graph
