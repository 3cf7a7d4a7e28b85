"""Retraining, tickets and pruning baselines: one package, a file per concern.

    schema.py         the tickets' files: names, constants, reading and writing   (torch-free)
    summary.py        mean, SE and verdicts; the references; curves; CSV          (torch-free)
    launch.py         the app's background retrain: start, follow, stop           (torch-free)
    variants.py       the support at N and every network a retrain starts from    (torch)
    training.py       retraining one seed with momentum SGD, resumable            (torch)
    retrain_cli.py    ``python -m pathviz.retrain`` (entry point pathviz/retrain.py)
    baselines.py      the pruning baselines' methods and ``baselines.json``      (torch-free)
    supports.py       baseline supports from torch-pruning's importances          (torch)
    reference.py      the dense reference (the SGD sibling) and Taylor's batches  (torch)
    baselines_cli.py  ``python -m pathviz.baselines`` (entry point pathviz/baselines.py)
    points.py         every point of the accuracy-against-size chart             (torch-free)

Importing ``pathviz.tickets`` loads the torch-free files only (schema, summary, launch), so the
app and ``pathviz.inspect --json`` (key ``tickets``) read tickets without torch.

A *ticket* is one retraining variant of the support at one iteration (``python -m
pathviz.retrain``): the compact subnetwork with one initialisation, trained with plain momentum
SGD for one budget, over one or more seeds. Its controls are the same retraining with another
initialisation or another structure of the same size; a pruning baseline is the same size chosen
by a standard pruning method (:mod:`pathviz.tickets.baselines`).

Layout (schema ``TICKET_SCHEMA = "1.0"``; every name is a constant in ``schema.py``)::

    <run>/tickets/
        launch.json                the last background launch: {pid, pid_start, cmd, log, started}
        launch.log                 its output
        <name>/                    one variant, e.g. it510-rewind-epochs70
            ticket.json            what the variant is (keys below); seeds grow when added
            seed_<s>.h5            one per seed, rewritten atomically after every epoch
            seed_<s>.resume.pt     model and optimizer after the last finished epoch (torch)
            status.json, worker.lock   state, progress, heartbeat and the lock of the retrain
                                   process, as in a run folder (pathviz.runs names)

``ticket.json``::

    schema_version "1.0"; name; run (folder name); iteration N (the support); init (the MODE:
    rewind, rewind:K, finetune, reinit, random-support, uniform, or a pruning baseline:
    magnitude, slimming, taylor, global-magnitude, global-magnitude-reinit); kind ("ticket" for
    rewind, rewind:K and finetune, "baseline" for the pruning baselines, "control" for the
    others); reference (baselines: the SGD run's folder name or "self"; null otherwise);
    source_iteration (the saved iteration the initial weights come from: 0, K or N, for a
    baseline the reference's; null for a fresh initialisation); epochs (asked);
    budget ("epochs" or "flops"); epochs_run (trained: epochs, or for ``flops`` epochs scaled by
    flops_full / flops so each variant spends the full model's training FLOPs); lr, lr_schedule,
    batch_size, momentum, weight_decay, nesterov; model, dataset; widths and widths_full;
    params, flops (the trained network: parameters and multiply-accumulates of one forward pass);
    params_full, flops_full (the full model); kept {layer: groups kept}; groups {layer: groups};
    seeds (every seed asked so far); created (unix time).

``seed_<s>.h5`` (HDF5, plain, never under SWMR: the file is small and replaced whole, so a reader
never sees half a file and a killed retrain leaves the last finished epoch)::

    attrs   schema_version "1.0"; ticket (name); seed; complete (1 once every epoch is done);
            diverged (1 if the loss became non-finite and training stopped); support (JSON
            {layer: [kept group indices]}: for random-support the support that seed drew)
    epoch            [E+1] int64    0 is the network before retraining
    iteration        [E+1] int64    SGD steps taken
    time             [E+1] float64  seconds of retraining
    metrics/<name>   [E+1] float64  train_loss, train_acc (NaN at epoch 0), lr, val_loss,
                                    val_acc, test_loss, test_acc (of the retrained network)

The summary reports each variant's *final* test accuracy (last epoch, never the best one: that
would pick on the test set), as mean, sample std and standard error (std / sqrt(seeds)) over
seeds, and compares each ticket with the controls at the same iteration and budget: it *beats* a
control when the mean difference exceeds two standard errors of the difference.
"""

from pathviz.tickets.launch import launch_state, retrain_command, start_retrain, stop_retrain
from pathviz.tickets.schema import (
    BASELINE_MODES,
    BUDGETS,
    CONTROL_MODES,
    LAUNCH_FILE,
    LAUNCH_LOG,
    MODES,
    RESUME_FILE,
    SEED_FILE,
    SEED_METRICS,
    SETTINGS,
    TICKET_FILE,
    TICKET_MODES,
    TICKET_SCHEMA,
    Z_BEATS,
    TicketError,
    default_name,
    list_tickets,
    mode_kind,
    parse_mode,
    read_seed,
    read_ticket,
    resume_path,
    seed_path,
    seeds_on_disk,
    ticket_dir,
    ticket_state,
    write_seed,
)
from pathviz.tickets.summary import curves, references, rows_to_csv, sgd_baselines, summary

__all__ = ["TICKET_SCHEMA", "TICKET_FILE", "SEED_FILE", "RESUME_FILE", "LAUNCH_FILE",
           "LAUNCH_LOG", "SEED_METRICS", "MODES", "TICKET_MODES", "CONTROL_MODES",
           "BASELINE_MODES", "BUDGETS", "SETTINGS", "Z_BEATS", "TicketError", "parse_mode",
           "mode_kind", "default_name", "ticket_dir", "seed_path", "resume_path", "read_ticket",
           "list_tickets", "seeds_on_disk", "read_seed", "write_seed", "ticket_state", "summary",
           "references", "curves", "sgd_baselines", "rows_to_csv", "retrain_command",
           "start_retrain", "launch_state", "stop_retrain"]
