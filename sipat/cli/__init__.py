"""`sipat train | evaluate | attack | experiment`: the method for researchers without the web service.

Modules: `main` (the parser and `main`, the `sipat` script), `options` (argument types and per-dataset defaults),
`commands` (train, evaluate, attack) and `experiment` (`sipat experiment`, over `sipat.experiment`).
"""

from sipat.cli.commands import _evaluate_with_bar, _tqdm, cmd_attack, cmd_evaluate, cmd_train, load_dataset
from sipat.cli.experiment import add_arguments, cmd_experiment, config_from_args, main_from_args
from sipat.cli.main import build_parser, main
from sipat.cli.options import DATASET_DEFAULTS, EPILOG, MNIST, PAPER, Defaults, _defaults, _threshold, parse_eps

__all__ = [
    "DATASET_DEFAULTS",
    "EPILOG",
    "MNIST",
    "PAPER",
    "Defaults",
    "_defaults",
    "_evaluate_with_bar",
    "_threshold",
    "_tqdm",
    "add_arguments",
    "build_parser",
    "cmd_attack",
    "cmd_evaluate",
    "cmd_experiment",
    "cmd_train",
    "config_from_args",
    "load_dataset",
    "main",
    "main_from_args",
    "parse_eps",
]
