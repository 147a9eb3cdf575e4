"""Run mutmut over one module of the method core with only the tests that exercise it.

mutmut reads its scope from `[tool.mutmut]` of the pyproject.toml in the working directory and has no
command-line switch for it; the whole scope against the whole method suite takes hours on two cores. This
builds `var/mutate/<scope>/` with `sipat` and `tests` linked in and a pyproject.toml whose `[tool.mutmut]`
names one module and its tests, and runs mutmut there, so each number in docs/testing.md comes from one
command: `make mutate SCOPE=<scope>` (or `python scripts/mutate_scope.py <scope>`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: scope -> (modules mutated, tests run against them)
SCOPES: dict[str, tuple[list[str], list[str]]] = {
    "apgd": (
        ["sipat/attacks/apgd.py"],
        ["tests/sipat/test_attacks_apgd_reference.py", "tests/sipat/test_attacks.py"],
    ),
    "autoattack": (
        ["sipat/attacks/autoattack.py"],
        [
            f"tests/sipat/test_attacks_autoattack.py::test_ensemble_{t}"
            for t in (
                "attacks_only_the_survivors_and_keeps_the_first_adversarial_point",
                "every_sample_gives_each_attack_its_own_result_and_the_and_as_worst_case",
                "puts_the_model_in_eval_mode_and_restores_it",
            )
        ],
    ),
    "apgd_t": (
        ["sipat/attacks/apgd_t.py"],
        [
            f"tests/sipat/test_attacks_autoattack.py::test_{t}"
            for t in (
                "targeted_dlr_loss_by_hand",
                "apgd_t_tries_the_next_highest_classes_in_turn",
                "apgd_t_later_targets_only_add_to_what_the_first_broke",
                "apgd_t_defaults_to_nine_targets",
                "apgd_t_defaults_to_autoattacks_100_steps",
                "apgd_t_needs_four_classes",
            )
        ],
    ),
    "square": (
        ["sipat/attacks/square.py"],
        [
            f"tests/sipat/test_attacks_autoattack.py::test_square_{t}"
            for t in (
                "fraction_is_the_reference_schedule",
                "spends_exactly_its_query_budget_on_each_unbroken_sample",
                "starts_from_vertical_stripes_at_the_radius",
                "margin_and_argument_checks",
                "proposes_one_square_window_of_the_scheduled_side_at_a_time",
                "windows_stay_below_the_image_height",
                "draws_only_from_its_generator",
                "attacks_the_samples_right_on_x_whatever_their_class",
                "stops_at_a_margin_of_zero_and_works_on_one_row_images",
            )
        ],
    ),
    "checks": (["sipat/attacks/checks.py"], ["tests/sipat/test_attacks_checks.py"]),
    "registry": (["sipat/attacks/registry.py"], ["tests/sipat/test_attacks_autoattack.py"]),
    "evaluation": (["sipat/evaluation.py"], ["tests/sipat/test_evaluation_exact.py"]),
    "fab": (
        ["sipat/attacks/fab.py"],
        [
            "tests/sipat/test_attacks_fab.py",
            "tests/sipat/test_attacks_autoattack.py::test_fab_projection_is_the_least_linf_step_an_lp_finds",
            "tests/sipat/test_attacks_autoattack.py::test_registered_attacks_draw_only_from_the_given_generator",
            "tests/sipat/test_attacks_autoattack.py::test_autoattack_runs_the_standard_stages_under_the_given_budget",
        ],
    ),
}


def mutmut_table(only: list[str], tests: list[str]) -> str:
    def arr(xs: list[str]) -> str:
        return "[\n" + "".join(f'    "{x}",\n' for x in xs) + "]"

    return (
        '[tool.mutmut]\nsource_paths = ["sipat"]\n'
        f"only_mutate = {arr(only)}\n"
        f"pytest_add_cli_args_test_selection = {arr(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:cov"]\n'
    )


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in SCOPES:
        print(f"usage: mutate_scope.py SCOPE [mutmut run args]; SCOPE is one of {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    scope, extra = argv[0], argv[1:]
    only, tests = SCOPES[scope]
    work = ROOT / "var" / "mutate" / scope
    work.mkdir(parents=True, exist_ok=True)
    for name in ("sipat", "tests"):
        link = work / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"\[tool\.mutmut\]\n(?:(?!\n\[).)*\n", mutmut_table(only, tests), text, count=1, flags=re.S)
    (work / "pyproject.toml").write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `python -m mutmut`, not the venv's `mutmut` script: the script's shebang names the interpreter path
    # of whichever checkout installed it, which a shared or moved virtualenv no longer has
    mutmut = [sys.executable, "-m", "mutmut"]
    if not extra:  # a fresh full run; with survivor names as arguments, re-run only those
        subprocess.run(["rm", "-rf", "mutants"], cwd=work, check=True)
    run = subprocess.run([*mutmut, "run", "--max-children", "1", *extra], cwd=work, env=env)
    subprocess.run([*mutmut, "results"], cwd=work, env=env)
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
