"""Record and cut the regularization path of a Hugging Face ``transformers`` model.

    from pathviz.integrations.hf import PathCallback, slbi_optimizer

    opt = slbi_optimizer(model, lr=0.05, nu=20.0, lam=0.5)   # heads + MLP neurons get a Gamma
    trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...,
                      optimizers=(opt, None), callbacks=[PathCallback("checkpoints/mine")])
    trainer.train()                                         # the app shows the run live
    export_pretrained("checkpoints/mine", "stop", "small-model")   # a smaller transformers model

The groups (:mod:`pathviz.integrations.layouts`) are the heads and MLP neurons of BERT/RoBERTa,
ViT, GPT-2 and the Llama family (one group per key/value head under grouped-query attention).
The callback writes a snapshot every ``every`` optimizer steps (``TrainerState.global_step``,
so gradient accumulation counts one step per optimizer step) and at every evaluation: the
Trainer's ``eval_loss`` (and ``eval_accuracy`` when ``compute_metrics`` gives one) become the
path's validation curve, and the callback measures the accuracy of W and of W* (the
subnetwork) on the same evaluation batches, which the app's stop rule needs. Only the main
process writes (``state.is_world_process_zero``).

:func:`compact_transformer` (:mod:`pathviz.integrations.compact`) removes the heads and
neurons outside the support; :func:`export_pretrained` saves the result with
``save_pretrained`` from a run folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pathviz import runs
from pathviz.groups import LayerSpec
from pathviz.integrations import require
from pathviz.integrations._record import RunSession, check_optimizer, w_star_swapped
from pathviz.integrations.compact import compact_transformer, example_inputs, model_logits
from pathviz.integrations.layouts import transformer_layers, transformer_param_groups
from pathviz.optim import SLBI
from pathviz.recorder import layers_of
from pathviz.run_model import ExportError as ZooExportError
from pathviz.run_model import resolve_iteration
from pathviz.store import PathFileError, PathReader

transformers = require("transformers", "hf", "pathviz.integrations.hf")

log = logging.getLogger("pathviz.integrations.hf")

__all__ = ["PathCallback", "slbi_optimizer", "slbi_optimizer_cls_and_kwargs", "model_info",
           "compact_transformer", "export_pretrained", "load_run_model", "ExportError"]

REPORT_FILE = "pathviz-export.json"  # written next to the exported model's own files


class ExportError(Exception):
    """An export that cannot be made; the message says why and what to do."""


def slbi_optimizer(model: nn.Module, lr: float = 0.05, kappa: float = 1.0, nu: float = 20.0,
                   lam: float = 0.5, momentum: float = 0.9, weight_decay: float = 0.0, *,
                   heads: bool | dict[str, Any] = True, mlp: bool | dict[str, Any] = True,
                   group_scale: str | None = None, impl: str = "foreach") -> SLBI:
    """SLBI over the model's head and MLP-neuron groups (every other parameter takes plain
    momentum SGD with step ``lr*kappa``), for ``Trainer(optimizers=(opt, None))``.

    ``heads``/``mlp``: False leaves those groups out; a dict sets options on them only (e.g.
    ``mlp={"lam": 1.0}``). ``impl`` is SLBI's: ``"foreach"`` by default, since on the spanned
    groups of a small transformer the fused numba path measured ~25x slower (a tiny Llama, 50
    steps: 20.9 s with ``"auto"``, 0.75 s with ``"foreach"``; same numbers up to rounding).
    Raises :class:`pathviz.integrations.layouts.LayoutError` for a model whose heads it
    cannot find."""
    groups = transformer_param_groups(model, heads=heads, mlp=mlp, group_scale=group_scale)
    return SLBI(groups, lr=lr, kappa=kappa, nu=nu, lam=lam, momentum=momentum,
                weight_decay=weight_decay, impl=impl)


def slbi_optimizer_cls_and_kwargs(model: nn.Module, *, heads: bool | dict[str, Any] = True,
                                  mlp: bool | dict[str, Any] = True, **hyper: Any
                                  ) -> tuple[type[SLBI], dict[str, Any]]:
    """``(SLBI, kwargs)`` for ``Trainer(optimizer_cls_and_kwargs=...)``: the kwargs carry the
    head and neuron groups as ``params``, which the Trainer uses in place of its own groups
    (its weight-decay groups have no spans, so they could not record a path)."""
    hyper.setdefault("impl", "foreach")  # as slbi_optimizer, for the same reason
    return SLBI, {"params": transformer_param_groups(model, heads=heads, mlp=mlp), **hyper}


def model_info(model: nn.Module) -> dict[str, Any]:
    """The path file's ``model`` attribute for a ``transformers`` model: its class and full
    config (JSON), which :func:`load_run_model` rebuilds it from. ``custom`` keeps
    ``pathviz.export`` (zoo models only) from trying."""
    config = getattr(model, "config", None)
    info: dict[str, Any] = {"name": type(model).__name__, "custom": True,
                            "params_total": int(sum(p.numel() for p in model.parameters()))}
    if config is not None:
        info["num_classes"] = int(getattr(config, "num_labels", 0) or 0) or None
        info["transformers"] = {"class": type(model).__name__,
                                "version": transformers.__version__,
                                "config": json.loads(config.to_json_string())}
    return info


@torch.no_grad()
def _accuracy(model: nn.Module, loader: Any) -> float:
    """Accuracy of ``model`` on the labelled batches of ``loader`` (NaN without labels):
    per example for sequence/image classification, per labelled token (labels != -100,
    shifted by one for a causal LM) otherwise."""
    was = model.training
    model.eval()
    right = total = 0
    device = next(model.parameters()).device
    causal = type(model).__name__.endswith("ForCausalLM")
    try:
        for batch in loader:
            if not isinstance(batch, Mapping) or "labels" not in batch:
                return float("nan")
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in batch.items()}
            logits = model(**batch).logits
            labels = batch["labels"]
            if causal:
                logits, labels = logits[:, :-1], labels[:, 1:]
            pred = logits.argmax(dim=-1)
            keep = labels != -100
            right += int(((pred == labels) & keep).sum())
            total += int(keep.sum())
    finally:
        model.train(was)
    return right / total if total else float("nan")


class PathCallback(transformers.TrainerCallback):
    """A ``transformers.Trainer`` callback that records the SLBI path to a run folder.

    Args:
        out: the run folder (e.g. ``checkpoints/mine``: the app lists the runs in its
            checkpoints folder and follows this one live).
        every: snapshot every this many optimizer steps; evaluations add their own.
        weights_every: also save full weights every this many steps (0: at each evaluation and
            at the end, which is what the stop rule and export need).
        sparse_eval: measure the accuracy of W and W* on the evaluation batches at each
            evaluation (``val_acc``/``val_acc_sparse``; the stop rule needs the latter).
        overwrite: replace a run already in ``out``.
        tensorboard: a folder for TensorBoard event files of the path's scalars.
        eval_examples: the size of the evaluation set, which the stop rule's standard error
            needs (:meth:`attach` reads it from the Trainer; the Trainer builds its evaluation
            loader only when it first evaluates, too late for the path file's header).

    An optimizer that cannot record a path (not SLBI, or SLBI without a Gamma) is refused in
    ``on_train_begin``, before the first step.
    """

    def __init__(self, out: str | os.PathLike, *, every: int = 10, weights_every: int = 0,
                 sparse_eval: bool = True, overwrite: bool = False,
                 tensorboard: str | os.PathLike | None = None,
                 eval_examples: int | None = None) -> None:
        self.session = RunSession(out, every=every, weights_every=weights_every,
                                  overwrite=overwrite, tensorboard=tensorboard)
        self.sparse_eval = sparse_eval
        self.eval_examples = eval_examples
        self.optimizer: SLBI | None = None

    @classmethod
    def attach(cls, trainer: Any, out: str | os.PathLike, **kwargs: Any) -> PathCallback:
        """A callback for ``trainer`` (its evaluation set's size read from it), added to it."""
        data = getattr(trainer, "eval_dataset", None)
        if isinstance(data, Mapping):  # several evaluation sets: the first is the validation
            data = next(iter(data.values()), None)
        kwargs.setdefault("eval_examples", len(data) if hasattr(data, "__len__") else None)
        callback = cls(out, **kwargs)
        trainer.add_callback(callback)
        return callback

    def on_train_begin(self, args, state, control, model=None, optimizer=None,
                       train_dataloader=None, eval_dataloader=None, **kwargs):
        opt = check_optimizer(optimizer, "PathCallback")
        if not state.is_world_process_zero:
            return
        self.optimizer = opt
        per_epoch = None
        if train_dataloader is not None and hasattr(train_dataloader, "__len__"):
            per_epoch = max(len(train_dataloader) // max(args.gradient_accumulation_steps, 1), 1)
        n_val = self.eval_examples
        if n_val is None and eval_dataloader is not None and hasattr(eval_dataloader,
                                                                      "dataset"):
            n_val = len(eval_dataloader.dataset)
        trainer_cfg = {"integration": "transformers.Trainer", "model": type(model).__name__,
                       "max_steps": state.max_steps, "seed": args.seed,
                       "batch_size": args.per_device_train_batch_size,
                       "gradient_accumulation_steps": args.gradient_accumulation_steps}
        self.session.start(model, opt, config=trainer_cfg, model_info=model_info(model),
                           data_info={"n_val": n_val} if n_val else {},
                           iterations_per_epoch=per_epoch)
        self.session.add(state.global_step)  # the start: Gamma's support is empty

    def on_step_begin(self, args, state, control, **kwargs):
        if self.session.active:
            self.session.write_pending()

    def on_step_end(self, args, state, control, **kwargs):
        if self.session.active:
            self.session.step_done(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.session.active or not logs:
            return
        if "loss" in logs:
            self.session.last_metrics["train_loss"] = float(logs["loss"])
            self.session.add(state.global_step, train_loss=float(logs["loss"]))

    def on_evaluate(self, args, state, control, metrics=None, model=None,
                    eval_dataloader=None, **kwargs):
        if not self.session.active:
            return
        metrics = dict(metrics or {})
        found = {"val_loss": metrics.get("eval_loss"), "val_acc": metrics.get("eval_accuracy")}
        if self.sparse_eval and eval_dataloader is not None and model is not None:
            if found["val_acc"] is None:
                found["val_acc"] = _accuracy(model, eval_dataloader)
            with w_star_swapped(self.optimizer):
                found["val_acc_sparse"] = _accuracy(model, eval_dataloader)
        self.session.add(state.global_step, weights=True,
                         **{k: v for k, v in found.items() if v is not None})

    def on_train_end(self, args, state, control, **kwargs):
        self.session.finish(state.global_step)


def _model_class(name: str) -> type:
    """The ``transformers`` model class a run names: looked up among the library's own
    ``PreTrainedModel`` classes only (a run folder is data, never code)."""
    cls = getattr(transformers, name, None) if name.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise ExportError(f"the run names the model class {name[:60]!r}, which is not a "
                          f"transformers model class; export it from your own code with "
                          f"compact_transformer")
    return cls


def load_run_model(run_dir: str | os.PathLike, iteration: int | str
                   ) -> tuple[nn.Module, list[LayerSpec], dict[str, Any], int]:
    """(model with the weights of ``iteration``, its head/neuron layers, the Gamma tensors,
    the iteration) from a run the callback recorded; ``iteration`` may be ``"stop"``."""
    paths = runs.paths_for_dir(run_dir)
    if not paths.path.exists():
        raise ExportError(f"{paths.dir} has no path file; is it a run folder?")
    try:
        it = resolve_iteration(run_dir, iteration)
        with PathReader(paths.path) as r:
            info = r.model_info.get("transformers")
            if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
                raise ExportError(f"{paths.dir} was not recorded from a transformers model "
                                  f"(its path file holds no transformers config); export it "
                                  f"with python -m pathviz.export")
            weights, gammas = r.weights_at(it), r.gamma_at(it)
            layers = [LayerSpec.from_json(d) for d in r.layers]
    except ZooExportError as e:
        raise ExportError(str(e)) from None
    except KeyError as e:
        raise ExportError(str(e).strip("'\"")) from None
    except PathFileError as e:
        raise ExportError(str(e)) from None
    cls = _model_class(str(info.get("class", "")))
    cfg = dict(info["config"])
    model_type = cfg.pop("model_type", None)
    try:
        config = transformers.AutoConfig.for_model(model_type, **cfg)
        model = cls(config)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    except (ValueError, TypeError, RuntimeError, KeyError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"the run's {cls.__name__} cannot be rebuilt from its stored "
                          f"config and weights ({first})") from None
    return model.eval(), layers, {k: torch.from_numpy(v.copy()) for k, v in gammas.items()}, it


def export_pretrained(run_dir: str | os.PathLike, iteration: int | str,
                      out: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Cut the run's model at ``iteration`` (a number or ``"stop"``) and ``save_pretrained``
    it to the folder ``out``, with :data:`REPORT_FILE` beside it. The folder is reloaded with
    ``from_pretrained`` and its outputs compared with the masked model's: the report's
    ``max_abs_diff`` (compact vs masked) and ``reload_max_abs_diff`` (reloaded vs masked)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ExportError(f"{out} exists and is not an empty folder; pass overwrite=True or "
                          f"choose another folder")
    if not out.parent.is_dir():
        raise ExportError(f"the folder {out.parent} does not exist; create it or choose "
                          f"another --out")
    model, layers, gammas, it = load_run_model(run_dir, iteration)
    masked, small, report = compact_transformer(model, layers, gammas)
    small.save_pretrained(out)
    reloaded = type(small).from_pretrained(out).eval()
    x = example_inputs(masked)
    report["reload_max_abs_diff"] = float(
        (model_logits(reloaded, x) - model_logits(masked, x)).abs().max())
    report.update(iteration=it, run=str(run_dir), written=time.time(),
                  model_class=type(small).__name__)
    with open(out / REPORT_FILE, "w") as f:
        json.dump(report, f, indent=1)
    if not math.isfinite(report["reload_max_abs_diff"]):
        raise ExportError("the exported model's outputs are not finite; report this")
    return report


def compact_from_optimizer(model: nn.Module, optimizer: SLBI
                           ) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """:func:`compact_transformer` for a model in memory and its SLBI optimizer."""
    layers = [s for s in layers_of(model, optimizer) if s.members]
    gammas = {m.param: optimizer.gamma(dict(model.named_parameters())[m.param]).detach()
              for s in layers for m in s.members}
    return compact_transformer(model, layers, gammas)


def main(argv: list[str] | None = None) -> int:
    """``python -m pathviz.integrations.hf RUN --iteration N|stop --out DIR``: export_pretrained
    from the command line; bad input is one sentence on stderr and exit 2."""
    parser = argparse.ArgumentParser(
        prog="python -m pathviz.integrations.hf",
        description="Cut a transformers run recorded by PathCallback into a smaller model "
                    "that from_pretrained loads.")
    parser.add_argument("run", help="the run folder (e.g. checkpoints/hf-llama)")
    parser.add_argument("--iteration", default="stop",
                        help="an iteration with saved weights, or stop (the default)")
    parser.add_argument("--out", required=True, help="a new or empty folder for the model")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder that is not empty")
    args = parser.parse_args(argv)
    try:
        report = export_pretrained(args.run, args.iteration, args.out, overwrite=args.overwrite)
    except (ExportError, runs.RunError) as e:
        # the library's sentence names the keyword; here the flag does the same
        print(f"{parser.prog}: error: {str(e).replace('overwrite=True', '--overwrite')}",
              file=sys.stderr)
        return 2
    print(f"iteration {report['iteration']}: params {report['params_before']:,} -> "
          f"{report['params_after']:,}; config {report['config_changes']}; "
          f"max |compact - masked| {report['max_abs_diff']:.3g}, after reloading "
          f"{report['reload_max_abs_diff']:.3g}")
    for w in report["warnings"]:
        print(f"note: {w}")
    return 0


__all__ += ["compact_from_optimizer", "example_inputs", "transformer_layers", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
