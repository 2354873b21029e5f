"""Mixing: add scaled low-rank deltas into a loaded model's weights in place, and take them out exactly.

Answering with a program-conditioned adapter must cost no more than a plain forward pass, so the
deltas are merged into the weights rather than run beside them; and because the same loaded model
answers the next question with another adapter, removal must restore every weight bit for bit.
Subtracting the delta again would leave rounding residue, so the handle keeps an exact copy of
every tensor it touched and copies it back.

A `Mixture` collects terms from any source (a synthesized AdapterSet, PEFT bank adapters, small
cone adapters), each with its weight; the handle sums them per module, applies an optional global
delta-norm cap (the Frobenius norm over all touched weights together, NANODEX_DELTA_CAP at the CLI),
and writes `W = W0 + s * delta` where `s` is the current scale (1 normally; ramped by alpha warmup).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanodex.errors import NanodexError
from pca_otf.synth import AdapterSet

DELTA_CAP_ENV = "NANODEX_DELTA_CAP"
_QUANTIZED = ("Linear4bit", "Linear8bitLt", "Params4bit")


def torch_trace(m: Any) -> Any:
    import torch

    return torch.trace(m)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread, then restore the previous count.

    Mixing is a memory-bound pass over the touched weights (a rank-R update per matrix), which
    extra threads barely speed up; on a busy CPU their barriers make it 5-10x slower (measured:
    20.8 s with 2 threads vs 2.3 s with 1 for SmolLM2 at load 10 on 2 cores).
    """
    import torch

    prev = torch.get_num_threads()
    if prev == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def parse_delta_cap(value: str | float | None) -> float | None:
    """A cap from a flag or the environment: a positive number, or None when unset/empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        cap = float(value)
    except ValueError as err:
        raise NanodexError(
            f"bad delta cap '{value}'", f"set {DELTA_CAP_ENV} (or --delta-cap) to a number > 0"
        ) from err
    if not math.isfinite(cap) or cap <= 0:
        raise NanodexError(
            f"delta cap must be a finite number > 0, got {value}", f"fix {DELTA_CAP_ENV} / --delta-cap"
        )
    return cap


def env_delta_cap(environ: Mapping[str, str] | None = None) -> float | None:
    """NANODEX_DELTA_CAP read once at the CLI edge (`environ` defaults to os.environ)."""
    env = os.environ if environ is None else environ
    return parse_delta_cap(env.get(DELTA_CAP_ENV))


@dataclass
class Term:
    """One low-rank contribution: rows [out_offset, out_offset + B.rows) of `module` += weight * B @ A."""

    module: str
    A: np.ndarray  # (r, in)
    B: np.ndarray  # (out_slice, r), any LoRA scaling already folded in
    weight: float
    out_offset: int = 0
    source: str = ""
    target: str = ""  # canonical target (q k v o gate up down), "" when unknown (bank adapters)


@dataclass
class Mixture:
    """The terms to mix, from every source, before anything touches the model."""

    terms: list[Term] = field(default_factory=list)

    def add_adapter_set(
        self,
        aset: AdapterSet,
        weight: float = 1.0,
        *,
        target_weights: Mapping[str, float] | None = None,
        source: str = "synth",
    ) -> Mixture:
        for (layer, target), pair in sorted(aset.pairs.items()):
            w = weight * (1.0 if target_weights is None else float(target_weights.get(target, 1.0)))
            if w == 0.0:
                continue
            shape = aset.shapes[target]
            self.terms.append(
                Term(
                    module=shape.module_name(layer),
                    A=pair.A,
                    B=(pair.B.astype(np.float64) * pair.scale).astype(np.float32),
                    weight=w,
                    out_offset=shape.out_offset,
                    source=source,
                    target=target,
                )
            )
        return self

    def add_factors(
        self, factors: Mapping[str, tuple[np.ndarray, np.ndarray]], weight: float, *, source: str
    ) -> Mixture:
        """Full-module (A, B) pairs with scaling folded into B (PEFT bank adapters)."""
        for module, (A, B) in sorted(factors.items()):
            if weight != 0.0:
                self.terms.append(Term(module=module, A=A, B=B, weight=weight, source=source))
        return self

    def modules(self) -> list[str]:
        return sorted({t.module for t in self.terms})


def _is_conv1d(module: Any) -> bool:
    return type(module).__name__ == "Conv1D"


def _module_weight(model: Any, name: str) -> tuple[Any, Any]:
    import torch

    try:
        module = model.get_submodule(name)
    except AttributeError as err:
        raise NanodexError(
            f"the model has no module '{name}' to mix an adapter into",
            "build the adapters for this base model (rebuild with --base set to the model you run)",
        ) from err
    weight = getattr(module, "weight", None)
    quantized = type(module).__name__ in _QUANTIZED
    if quantized or not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise NanodexError(
            f"module '{name}' ({type(module).__name__}) has no float weight to mix into",
            "load the base model unquantized (float32 or bfloat16) for pca_otf",
        )
    return module, weight


class WeightSnapshot:
    """Exact copies of a model's base weights, kept across mixes (one clone per process, not per answer).

    Copying ~100M touched weights costs about a second on a CPU; a runner answering many questions
    with one loaded model keeps one snapshot and passes it to every `apply`. It is only valid while
    every change to the model goes through handles using it, so at most one handle may hold it at a
    time (a second apply before the first handle's remove() is an error).
    """

    def __init__(self) -> None:
        self._tensors: dict[str, Any] = {}
        self._holder: MixHandle | None = None

    def original(self, name: str, weight: Any) -> Any:
        t = self._tensors.get(name)
        if t is None:
            t = self._tensors[name] = weight.detach().clone()
        return t

    def acquire(self, handle: MixHandle) -> None:
        if self._holder is not None and not self._holder.removed:
            raise NanodexError(
                "an adapter mix is still applied to this model",
                "remove() the previous mix before applying another",
            )
        self._holder = handle

    def release(self, handle: MixHandle) -> None:
        if self._holder is handle:
            self._holder = None


class MixHandle:
    """Deltas merged into a model; `remove()` restores the exact original weights.

    `scale` (0..1) multiplies every delta; `set_scale` rewrites the touched weights from the
    exact originals, so ramping (alpha warmup) never accumulates rounding error.
    """

    def __init__(
        self,
        model: Any,
        mixture: Mixture,
        *,
        delta_cap: float | None = None,
        scale: float = 1.0,
        snapshot: WeightSnapshot | None = None,
    ) -> None:
        import torch

        self.model = model
        self.snapshot = snapshot
        self.mixture = mixture
        self.delta_cap = delta_cap
        self._originals: dict[str, torch.Tensor] = {}
        self._weights: dict[str, Any] = {}
        self._conv1d: dict[str, bool] = {}
        self.removed = False
        for name in mixture.modules():
            module, weight = _module_weight(model, name)
            self._weights[name] = weight
            self._conv1d[name] = _is_conv1d(module)
        # check every term's shape before touching anything
        for t in mixture.terms:
            w = self._weights[t.module]
            out_f, in_f = (w.shape[1], w.shape[0]) if self._conv1d[t.module] else (w.shape[0], w.shape[1])
            if t.A.shape[1] != in_f or t.out_offset + t.B.shape[0] > out_f or t.A.shape[0] != t.B.shape[1]:
                raise NanodexError(
                    f"adapter term {t.source}:{t.module} has shape A{tuple(t.A.shape)} B{tuple(t.B.shape)}, "
                    f"the model's weight is {out_f}x{in_f}",
                    "use adapters built for this base model (rebuild pca_otf artifacts with its config)",
                )
        with _one_thread():
            self._factors = {name: self._stack(name, terms) for name, terms in self._group().items()}
            self.raw_norm = math.sqrt(sum(self._norm2(A, B) for A, B in self._factors.values()))
        self.cap_factor = 1.0
        if delta_cap is not None and self.raw_norm > delta_cap:
            self.cap_factor = delta_cap / self.raw_norm
        if snapshot is not None:
            snapshot.acquire(self)
        with torch.no_grad(), _one_thread():
            for name, weight in self._weights.items():
                self._originals[name] = (
                    snapshot.original(name, weight) if snapshot is not None else weight.detach().clone()
                )
        self.scale = 0.0
        try:
            self.set_scale(scale)
        except BaseException:
            self.remove()  # never leave a half-mixed model behind
            raise

    def _group(self) -> dict[str, list[Term]]:
        out: dict[str, list[Term]] = {}
        for t in self.mixture.terms:
            out.setdefault(t.module, []).append(t)
        return out

    def _stack(self, name: str, terms: list[Term]) -> tuple[Any, Any]:
        """One (A, B) per module: A's stacked, each B weighted and placed at its output rows.

        Sum of weight * B_t @ A_t == B @ A, so the module's delta is one matmul, and its norm
        comes from R x R products (R = the stacked rank) without forming the dense delta.
        """
        import torch

        w = self._weights[name]
        out_f = w.shape[1] if self._conv1d[name] else w.shape[0]
        rank = sum(t.A.shape[0] for t in terms)
        A = np.concatenate([np.asarray(t.A, dtype=np.float32) for t in terms], axis=0)
        B = np.zeros((out_f, rank), dtype=np.float32)
        r0 = 0
        for t in terms:
            r = t.A.shape[0]
            B[t.out_offset : t.out_offset + t.B.shape[0], r0 : r0 + r] = (
                np.asarray(t.B, dtype=np.float64) * t.weight
            )
            r0 += r
        return torch.from_numpy(A).to(w.device), torch.from_numpy(B).to(w.device)

    @staticmethod
    def _norm2(A: Any, B: Any) -> float:
        a, b = A.double(), B.double()
        return max(0.0, float(torch_trace((b.T @ b) @ (a @ a.T))))

    @property
    def delta_norm(self) -> float:
        """Frobenius norm of all deltas as applied now (after cap and scale)."""
        return self.raw_norm * self.cap_factor * self.scale

    def set_scale(self, scale: float) -> None:
        """Rewrite touched weights as W0 + scale * cap_factor * delta."""
        import torch

        if self.removed:
            raise NanodexError("this adapter mix was already removed", "apply the adapters again")
        factor = float(scale) * self.cap_factor
        with torch.no_grad(), _one_thread():
            for name, weight in self._weights.items():
                orig = self._originals[name]
                if factor == 0.0:
                    weight.copy_(orig)
                    continue
                A, B = self._factors[name]
                if weight.dtype == torch.float32:
                    # W = W0 + factor * B @ A in one fused op, written straight into the weight
                    if self._conv1d[name]:
                        torch.addmm(orig, A.t(), B.t(), alpha=factor, out=weight)
                    else:
                        torch.addmm(orig, B, A, alpha=factor, out=weight)
                else:
                    d = (B @ A) * factor
                    if self._conv1d[name]:
                        d = d.t()
                    weight.copy_((orig.float() + d).to(weight.dtype))
        self.scale = float(scale)

    def remove(self) -> None:
        """Copy every touched weight back from its exact original (idempotent)."""
        import torch

        if self.removed:
            return
        with torch.no_grad(), _one_thread():
            for name, weight in self._weights.items():
                weight.copy_(self._originals[name])
        self._originals.clear()
        self.removed = True
        if self.snapshot is not None:
            self.snapshot.release(self)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """The base weights for the block (adapter-aware decoding's base logits), then the mix again."""
        current = self.scale
        self.set_scale(0.0)
        try:
            yield
        finally:
            self.set_scale(current)

    def info(self) -> dict[str, Any]:
        """What was mixed, for telemetry."""
        sources: dict[str, int] = {}
        for t in self.mixture.terms:
            sources[t.source] = sources.get(t.source, 0) + 1
        return {
            "modules": len(self._weights),
            "terms": sources,
            "raw_delta_norm": self.raw_norm,
            "cap": self.delta_cap,
            "cap_factor": self.cap_factor,
            "scale": self.scale,
            "delta_norm": self.delta_norm,
        }


def blend(
    subgraph: AdapterSet | None,
    program: AdapterSet | None,
    gsub: float,
    *,
    alpha_scale: float = 1.0,
    target_weights: Mapping[str, float] | None = None,
    mixture: Mixture | None = None,
) -> Mixture:
    """gsub * subgraph + (1 - gsub) * program, times alpha_scale (either set may be None)."""
    mix = mixture or Mixture()
    if subgraph is not None:
        mix.add_adapter_set(subgraph, gsub * alpha_scale, target_weights=target_weights, source="subgraph")
    if program is not None:
        mix.add_adapter_set(
            program, (1.0 - gsub) * alpha_scale, target_weights=target_weights, source="program"
        )
    return mix


def apply(
    model: Any,
    adapter_set: AdapterSet | None,
    *,
    gsub: float = 1.0,
    alpha_scale: float = 1.0,
    delta_cap: float | None = None,
    target_weights: Mapping[str, float] | None = None,
    program_set: AdapterSet | None = None,
    extra: Mixture | None = None,
    scale: float = 1.0,
    snapshot: WeightSnapshot | None = None,
) -> MixHandle:
    """Merge `adapter_set` into `model` in place and return the handle that takes it out again.

    With `program_set` (the build's whole-program adapter) the delta is the blend
    gsub * adapter_set + (1 - gsub) * program_set; without it, gsub simply scales adapter_set.
    `extra` adds further terms (bank adapters, cones) under the same cap and handle; `snapshot`
    reuses exact base-weight copies across calls (see WeightSnapshot).
    """
    if not 0.0 <= gsub <= 1.0 and program_set is not None:
        raise NanodexError(f"gsub must lie in [0, 1], got {gsub}", "pass --gsub between 0 and 1")
    mix = Mixture(list(extra.terms) if extra else [])
    blend(adapter_set, program_set, gsub, alpha_scale=alpha_scale, target_weights=target_weights, mixture=mix)
    return MixHandle(model, mix, delta_cap=delta_cap, scale=scale, snapshot=snapshot)


@contextlib.contextmanager
def mixed(model: Any, adapter_set: AdapterSet | None, **kwargs: Any) -> Iterator[MixHandle]:
    """`with mixed(model, aset, gsub=...) as h:` — the adapters are in for the block, out after it."""
    handle = apply(model, adapter_set, **kwargs)
    try:
        yield handle
    finally:
        handle.remove()


class AlphaWarmup:
    """Ramps a MixHandle's scale from 1/steps to 1 over the first `steps` generated tokens.

    Usable as a transformers LogitsProcessor: generate() calls it once per new token, after the
    forward pass that produced it, so the next forward runs with the next scale.
    """

    def __init__(self, handle: MixHandle, steps: int) -> None:
        if steps < 1:
            raise NanodexError(f"alpha warmup needs >= 1 step, got {steps}", "pass --alpha-warmup 1 or more")
        self.handle = handle
        self.steps = steps
        self.step_no = 0
        handle.set_scale(self.scale_at(0))

    def scale_at(self, step: int) -> float:
        return min(1.0, (step + 1) / self.steps)

    def step(self) -> float:
        self.step_no += 1
        s = self.scale_at(self.step_no)
        if s != self.handle.scale:
            self.handle.set_scale(s)
        return s

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.step()
        return scores


def total_delta_norm(model: Any, originals: Mapping[str, Any], names: Sequence[str]) -> float:
    """||W - W0|| over `names` (tests and telemetry check the cap with this)."""
    total = 0.0
    for n in names:
        w = model.get_submodule(n).weight.detach().double()
        total += float((w - originals[n].double()).pow(2).sum())
    return math.sqrt(total)


def add_cones(mixture: Mixture, cones: Sequence[AdapterSet], weight: float) -> Mixture:
    """Add cone adapters sharing `weight` equally (their total weight in the mix is `weight`)."""
    for i, cone in enumerate(cones):
        mixture.add_adapter_set(cone, weight / len(cones), source=f"cone:{i}")
    return mixture
