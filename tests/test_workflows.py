"""The GitHub workflows do what CONTRIBUTING.md and docs/publishing.md say: CI runs `.ci/run` and lints the workflows
with actionlint; the manual release runs `ssld-zoo release` with the HF_TOKEN secret and proposes every file that
`ssld-zoo release --apply` rewrites as a pull request. (actionlint itself runs in ci.yml: its Python package fetches
the binary from GitHub when installed, so it is not in the `dev` extra.)"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from conftest import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[Any, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def steps(flow: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    return flow["jobs"][job]["steps"]


def test_ci_runs_the_ci_script_and_lints_the_workflows():
    flow = workflow("ci.yml")
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    runs = [s.get("run", "") for s in steps(flow, "test")]
    assert "bash main/.ci/run" in runs and (REPO_ROOT / ".ci" / "run").is_file()
    checkout = next(s for s in steps(flow, "test") if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["path"] == "main"  # .ci/run finds the data folder beside the checkout: ../shared/data
    assert flow["jobs"]["test"]["env"]["SSLD_ZOO_DATA"].endswith("/shared/data")
    assert any(s.get("run", "").startswith("actionlint") for s in steps(flow, "workflows"))


def test_release_is_manual_uses_the_hub_token_and_proposes_what_apply_rewrites():
    flow = workflow("release.yml")
    assert set(flow[True]) == {"workflow_dispatch"}
    release, apply = (next(s for s in steps(flow, "release") if s.get("run", "").startswith(f"ssld-zoo release {a}"))
                      for a in ("--org", "--apply"))
    assert release["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert "${{" not in release["run"]  # inputs reach the shell through the environment, never pasted into it
    pull_request = next(s for s in steps(flow, "release")
                        if s.get("uses", "").startswith("peter-evans/create-pull-request@"))
    proposed = pull_request["with"]["add-paths"].split()
    from ssld_zoo.catalogue.registry import BUILTIN_CATALOGUE
    rewritten = {BUILTIN_CATALOGUE.relative_to(REPO_ROOT).as_posix(), "weights/**", "README.md", "docs/recipes.md"}
    assert set(proposed) == rewritten  # the catalogue, and what `python -m ssld_zoo.weights.cards` regenerates
    assert all((REPO_ROOT / Path(p.removesuffix("/**"))).exists() for p in proposed)
    assert "catalogue-update.json" in apply["run"]
    assert flow["permissions"] == {"contents": "write", "pull-requests": "write"}
