"""Per-kernel digests under the numerics pin: which kernel rounds differently on this CPU?

A path is bit-identical across machines only if every kernel it runs is. This module runs each
operation that pathviz's models, optimizer, recorder and evaluation use (forward and backward,
at the shapes the presets and the README's snippets use), on fixed inputs drawn from numpy's
generator, in one pinned process, and hashes each result's bytes. Two machines whose digests
agree compute the same golden figures; where one differs, its name says which kernel to pin,
replace or route around, before any figure moves.

``python -m pathviz.digests`` prints them as JSON; ``--references`` compares them
with every file in :data:`REFERENCES` (recorded on other CPUs, named by vendor and level) and
exits 1 naming each op that differs. docs/numerics.md says how to read and extend it.

Three kinds of entries:
- ``digests``: what the project runs; compared with every reference that has the same name.
  The first 26 names are those of the op-digest tool the references from an Intel Xeon were
  recorded with, so those files compare as they are.
- ``vendor_kernels``: kernels pathviz deliberately avoids because they round by CPU vendor (MKL's
  vector math, :data:`pathviz.numerics.VML_OPS`); printed for information, never a failure.
- :func:`vendor_ops_run` traces a function and names every VML op it ran on CPU float tensors:
  tests/test_digests.py runs real training, recording and evaluation under it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pathviz import numerics
from pathviz.config import PRESETS
from pathviz.groups import slbi_param_groups
from pathviz.models import build_model
from pathviz.numerics import VML_OPS, NumericsError, sqrt_
from pathviz.optim import SLBI
from pathviz.recorder import _span_stats, layers_of
from pathviz.train import make_optimizer

__all__ = ["REFERENCES", "compare", "compute", "reference_files", "vendor_ops_run"]

#: the reference digests kept in the project: ``<vendor>-<cpu>.<level>.json``
REFERENCES = Path(__file__).with_name("references")


def _digest(*tensors: Any) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _cases(torch: Any) -> tuple[list[tuple[str, Callable]], list[tuple[str, Callable]]]:
    """(project cases, vendor-kernel cases): (name, fn) pairs; each fn returns the tensors whose
    bytes are hashed."""
    F = torch.nn.functional

    def gen(seed: int) -> Callable:  # inputs from numpy's generator: no torch kernel shapes them
        g = np.random.default_rng(seed)
        return lambda *shape: torch.from_numpy(g.standard_normal(shape, dtype=np.float32))

    def fwd_bwd(fn: Callable, *shapes: tuple, seed: int = 0) -> Callable:
        def run() -> list:
            r = gen(seed)
            xs = [r(*s).requires_grad_(True) for s in shapes]
            y = fn(*xs)
            y.backward(r(*y.shape) if y.dim() else torch.ones(()))
            return [y.detach()] + [x.grad for x in xs]
        return run

    def lin(x, w, b):
        return F.linear(x, w, b)

    def seeded(m):  # weights from numpy too, at the scale of a default init
        r = gen(9)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(r(*p.shape) * (p.shape[-1] if p.dim() > 1 else 64) ** -0.5)
        return m

    def model(name: str, **kw):
        return seeded(build_model(name, num_classes=10, in_channels=1, **kw))

    def step(name: str, batch: int, seed: int) -> Callable:
        def run() -> list:
            m = model(name)
            loss = F.cross_entropy(m(gen(seed)(batch, 1, 28, 28)), torch.arange(batch) % 10)
            loss.backward()
            return [loss.detach()] + [p.grad for p in m.parameters()]
        return run

    def evaluation(name: str, batch: int, **kw) -> Callable:
        def run() -> list:
            m = model(name, **kw).eval()
            with torch.no_grad():
                return [m(gen(6)(batch, 1, 28, 28))]
        return run

    def slbi(preset: str, model_name: str, steps: int, batch: int, **overrides) -> Callable:
        """``steps`` SLBI steps with the optimizer the worker builds for ``preset`` (its groups,
        spans, balance and lambdas), lambda lowered so that groups enter within them."""
        def run() -> list:
            m = model(model_name)
            opt = make_optimizer(m, dataclasses.replace(PRESETS[preset], **overrides))
            r = gen(5)
            for _ in range(steps):
                opt.zero_grad()
                F.cross_entropy(m(r(batch, 1, 28, 28)), torch.arange(batch) % 10).backward()
                opt.step()
            out = [p.detach() for p in m.parameters()]
            out += [opt.state[p]["gamma"] for g in opt.param_groups for p in g["params"]
                    if "gamma" in opt.state[p]]
            params = dict(m.named_parameters())
            for spec in layers_of(m, opt):
                if spec.members:
                    ws = [params[mem.param] for mem in spec.members]
                    out += list(_span_stats(spec, ws, [opt.gamma(w) for w in ws]))
            return out
        return run

    def slbi_default() -> list:  # the op-digest tool's SLBI case, as it wrote it
        m = model("vit_tiny")
        opt = SLBI(slbi_param_groups(m), lr=0.1, kappa=1.0, nu=25.0, lam=0.15, momentum=0.9,
                   weight_decay=5e-4)
        r = gen(5)
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(m(r(32, 1, 28, 28)), torch.arange(32) % 10).backward()
            opt.step()
        return [p.detach() for p in m.parameters()]

    def encoder_layer(batch: int) -> Callable:  # the README's transformer snippet's layer
        def run() -> list:
            layer = seeded(torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0,
                                                            batch_first=True))
            x = gen(7)(batch, 28, 32).requires_grad_(True)
            y = layer(x)
            y.backward(gen(8)(*y.shape))
            return [y.detach(), x.grad] + [p.grad for p in layer.parameters()]
        return run

    def exact_sqrt(dtype) -> Callable:
        def run() -> list:
            return [sqrt_(gen(10)(100_000).abs().to(dtype))]
        return run

    def vml(op: str, dtype) -> Callable:
        return lambda: [getattr(torch, op)(gen(11)(100_000).abs().to(dtype) + 0.01)]

    out = [
        # the op-digest tool's cases, by the same names: the Intel references compare as they are
        ("linear 544x64 @ 64x192 (qkv)", fwd_bwd(lin, (544, 64), (192, 64), (192,))),
        ("linear 544x64 @ 64x128 (mlp fc1)", fwd_bwd(lin, (544, 64), (128, 64), (128,))),
        ("linear 544x128 @ 128x64 (mlp fc2)", fwd_bwd(lin, (544, 128), (64, 128), (64,))),
        ("linear 3d (32,17,64) -> 192", fwd_bwd(lin, (32, 17, 64), (192, 64), (192,))),
        ("linear 32x64 @ 64x10 (head)", fwd_bwd(lin, (32, 64), (10, 64), (10,))),
        ("linear 64x400 @ 400x120 (lenet fc1)", fwd_bwd(lin, (64, 400), (120, 400), (120,))),
        ("matmul q@k^T (32,4,17,16)",
         fwd_bwd(lambda q, k: q @ k.transpose(-2, -1), (32, 4, 17, 16), (32, 4, 17, 16))),
        ("matmul attn@v (32,4,17,17)x(32,4,17,16)",
         fwd_bwd(lambda a, v: a @ v, (32, 4, 17, 17), (32, 4, 17, 16))),
        ("bmm (128,17,16)x(128,16,17)", fwd_bwd(torch.bmm, (128, 17, 16), (128, 16, 17))),
        ("mm 256x256", fwd_bwd(torch.mm, (256, 256), (256, 256))),
        ("sdpa (32,4,17,16)", fwd_bwd(F.scaled_dot_product_attention, (32, 4, 17, 16),
                                      (32, 4, 17, 16), (32, 4, 17, 16))),
        ("softmax (32,4,17,17)", fwd_bwd(lambda x: x.softmax(-1), (32, 4, 17, 17))),
        ("layer_norm (32,17,64)", fwd_bwd(lambda x, w, b: F.layer_norm(x, (64,), w, b),
                                          (32, 17, 64), (64,), (64,))),
        ("gelu (544,128)", fwd_bwd(F.gelu, (544, 128))),
        ("relu (64,6,28,28)", fwd_bwd(F.relu, (64, 6, 28, 28))),
        ("cross_entropy (64,10)",
         fwd_bwd(lambda x: F.cross_entropy(x, torch.arange(64) % 10), (64, 10))),
        ("sum 1e6", lambda: [gen(1)(1_000_000).sum()]),
        ("norm rows (192,64)", lambda: [gen(2)(192, 64).norm(dim=1)]),
        ("conv2d 1->6 5x5 pad2 (64,1,28,28)",
         fwd_bwd(lambda x, w, b: F.conv2d(x, w, b, padding=2), (64, 1, 28, 28), (6, 1, 5, 5),
                 (6,))),
        ("conv2d 6->16 5x5 (64,6,14,14)",
         fwd_bwd(lambda x, w, b: F.conv2d(x, w, b), (64, 6, 14, 14), (16, 6, 5, 5), (16,))),
        ("conv2d patch 7/7 1->64 (32,1,28,28)",
         fwd_bwd(lambda x, w, b: F.conv2d(x, w, b, stride=7), (32, 1, 28, 28), (64, 1, 7, 7),
                 (64,))),
        ("max_pool2d 2 (64,6,28,28)", fwd_bwd(lambda x: F.max_pool2d(x, 2), (64, 6, 28, 28))),
        ("batch_norm train (64,16,8,8)",
         fwd_bwd(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                 (64, 16, 8, 8), (16,), (16,))),
        ("vit_tiny forward+backward", step("vit_tiny", 32, 3)),
        ("lenet5 forward+backward", step("lenet5", 64, 4)),
        ("SLBI 5 steps on vit_tiny (default impl)", slbi_default),
        # the kernels of the README's transformer snippet (nn.TransformerEncoderLayer, 28 row
        # tokens of 32, 4 heads of 8, batch 64 and its last batch of 29)
        ("linear (64,28,28) -> 32 (row embedding)", fwd_bwd(lin, (64, 28, 28), (32, 28), (32,))),
        ("sdpa (64,4,28,8)", fwd_bwd(F.scaled_dot_product_attention, (64, 4, 28, 8),
                                     (64, 4, 28, 8), (64, 4, 28, 8))),
        ("TransformerEncoderLayer(32, 4, 64) forward+backward, batch 64", encoder_layer(64)),
        ("TransformerEncoderLayer(32, 4, 64) forward+backward, batch 29", encoder_layer(29)),
        # evaluation: batches of 512 (pathviz.evaluate), the dense and a compact subnetwork
        ("vit_tiny eval, batch 512", evaluation("vit_tiny", 512)),
        ("vit_tiny compact (heads 3,2,1,3; neurons 102,63,48,28) eval, batch 512",
         evaluation("vit_tiny", 512, widths=[3, 2, 1, 3, 102, 63, 48, 28])),
        ("lenet5 eval, batch 512", evaluation("lenet5", 512)),
        ("lenet5 compact (5, 11, 37, 40) eval, batch 512",
         evaluation("lenet5", 512, widths=[5, 11, 37, 40])),
        # the optimizer as the worker builds it, long enough for groups to enter (their norms,
        # square roots and soft-thresholds then decide the numbers), and the recorder's stats
        ("SLBI 12 steps, vit_demo's optimizer (heads span q/k/v and proj), support formed",
         slbi("vit_demo", "vit_tiny", 12, 32, lam=0.002, mlp_lam=0.002)),
        ("SLBI 12 steps, demo's optimizer on lenet5, support formed",
         slbi("demo", "lenet5", 12, 64, lam=0.002)),
        ("numerics.sqrt_ float32 (1e5 values)", exact_sqrt(torch.float32)),
        ("numerics.sqrt_ float64 (1e5 values)", exact_sqrt(torch.float64)),
    ]
    vendor = [(f"torch.{op} {str(dt).split('.')[-1]} (MKL VML, avoided)", vml(op, dt))
              for op in ("sqrt", "exp", "log", "tanh", "erf")
              for dt in (torch.float32, torch.float64)]
    return out, vendor


def compute(level: str = "avx2", threads: int = 1) -> dict[str, Any]:
    """Pin this process to ``level`` and ``threads``, run every case and return the document
    ``{"machine": {...}, "digests": {name: hex}, "vendor_kernels": {name: hex}}``. A case that
    cannot run here is reported as ``"error: ..."`` (and then differs from any reference)."""
    env = numerics.pin(level, threads=threads)

    cases, vendor = _cases(torch)
    res: dict[str, dict[str, str]] = {"digests": {}, "vendor_kernels": {}}
    for key, group in (("digests", cases), ("vendor_kernels", vendor)):
        for name, fn in group:
            try:
                res[key][name] = _digest(*fn())
            except Exception as e:  # noqa: BLE001 - reported per case, as a differing digest
                res[key][name] = f"error: {type(e).__name__}: {e}"[:120]
    machine = {"cpu": env.get("cpu"), "platform": platform.platform(),
               "torch": torch.__version__, "cpu_isa": level, "threads": threads,
               "cpu_capability": env.get("cpu_capability")}
    return {"machine": machine, **res}


def reference_files(level: str | None = None) -> list[Path]:
    """The reference files kept in the project, for ``level`` (all levels if None)."""
    pattern = f"*.{level}.json" if level else "*.json"
    return sorted(REFERENCES.glob(pattern))


def compare(doc: dict[str, Any], other: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """(project ops that differ, avoided vendor kernels that differ, ops compared) between two
    digest documents, on the names both hold."""
    def diff(key: str) -> tuple[list[str], int]:
        mine, theirs = doc.get(key, {}), other.get(key, {})
        common = [k for k in mine if k in theirs]
        return [k for k in common if mine[k] != theirs[k]], len(common)

    ops, n = diff("digests")
    vendor, _ = diff("vendor_kernels")
    return ops, vendor, n


def vendor_ops_run(fn: Callable[[], Any]) -> dict[str, int]:
    """Run ``fn`` and count the ops of :data:`pathviz.numerics.VML_OPS` it ran on CPU float32 or
    float64 tensors (``pow`` with exponent 0.5 counts as sqrt): ``{op: calls}``, empty when
    ``fn`` runs none. Every op through torch's dispatcher is seen, also those that composite
    ops (``sdpa``'s math path, ``F.gelu``'s tanh form, ...) call inside."""
    seen: dict[str, int] = {}

    def cpu_float(args: Iterable[Any]) -> bool:
        return any(isinstance(a, torch.Tensor) and a.device.type == "cpu"
                   and a.dtype in (torch.float32, torch.float64) for a in args)

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__.rstrip("_")
            if name == "pow" and len(args) > 1 and args[1] == 0.5:
                name = "sqrt"
            out = func(*args, **(kwargs or {}))
            # integer inputs count too: they are promoted to float and reach the same kernel
            if name in VML_OPS and cpu_float([*args, out]):
                seen[name] = seen.get(name, 0) + 1
            return out

    with Watch():
        fn()
    return seen


def main(argv: list[str] | None = None) -> int:
    """``python -m pathviz.digests``: print this machine's digests, compare them."""
    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            print(f"error: {message} (see --help)", file=sys.stderr)
            raise SystemExit(2)

    ap = Parser(
        prog="python -m pathviz.digests", allow_abbrev=False,
        description="Digest every kernel pathviz runs, under the numerics pin, and compare the "
                    "digests with other CPUs' (exit 1 naming each op that differs).")
    ap.add_argument("--cpu-isa", default="avx2", choices=["avx2", "avx512", "baseline"],
                    help="the pinned level (default avx2, the runs' default)")
    ap.add_argument("--threads", type=int, default=1, help="torch's threads (default 1)")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--compare", nargs="+", default=[], metavar="FILE",
                    help="reference files to compare with")
    ap.add_argument("--references", action="store_true",
                    help="compare with every reference kept in the project for this level")
    a = ap.parse_args(argv)
    files = [Path(p) for p in a.compare]
    if a.references:
        files += reference_files(a.cpu_isa)
    others = []
    for path in files:
        try:
            others.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as e:
            print(f"error: cannot read the reference {path} ({e}); give a JSON file that "
                  f"`python -m pathviz.digests --out FILE` wrote", file=sys.stderr)
            return 2

    try:
        doc = compute(a.cpu_isa, a.threads)
    except NumericsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(doc, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    rc = 0
    for path, other in others:
        ops, vendor, n = compare(doc, other)
        cpu = other.get("machine", {}).get("cpu")
        print(f"against {path.name} ({cpu}, {other.get('machine', {}).get('cpu_isa')}): "
              f"{len(ops)} of {n} ops differ" + (": " + "; ".join(ops) if ops else ""),
              file=sys.stderr)
        if vendor:
            print(f"  (for information: MKL's vector math, which pathviz does not use, rounds "
                  f"differently here in {len(vendor)} cases)", file=sys.stderr)
        rc |= bool(ops)
    return rc
