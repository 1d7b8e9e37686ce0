#!/usr/bin/env python3
"""Lints Lockgate's CI templates with the ecosystems' own rules, offline:

- action.yml, the GitHub workflows and the GitLab template against the JSON Schemas
  check-jsonschema ships (SchemaStore's github-action, github-workflow, gitlab-ci);
- every shell step in them (`run:`, `script:`, `before_script:`), and ci/lockgate-ci.sh,
  through shellcheck — GitHub expressions `${{ … }}` stand in as a plain word, as
  actionlint treats them.

Usage: ci/lint-templates.py [REPO_ROOT]   (needs check-jsonschema and shellcheck)
Exit status 0 when everything passes; problems are printed with the file and step.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
SCHEMAS = {
    "vendor.github-actions": ["action.yml"],
    "vendor.github-workflows": [
        "ci/templates/github/lockgate.yml",
        "ci/templates/github/agent-pr.yml",
    ],
    "vendor.gitlab-ci": ["ci/templates/gitlab/lockgate.gitlab-ci.yml"],
}
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def shell_steps(path, doc):
    """(where, script) for every shell step of a workflow, action or GitLab file."""
    if "runs" in doc:  # an action
        for i, step in enumerate(doc["runs"].get("steps", [])):
            if "run" in step:
                yield f"{path}: runs.steps[{i}]", step["run"]
    for name, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps", [])):
            if "run" in step:
                yield f"{path}: jobs.{name}.steps[{i}]", step["run"]
    for name, job in doc.items():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                lines = job.get(key)
                if lines:
                    yield f"{path}: {name}.{key}", "\n".join(lines)


def shellcheck(where, script, failures):
    text = EXPRESSION.sub("GITHUB_EXPRESSION", script)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write("#!/bin/bash\nset -e\n" + text + "\n")
    run = subprocess.run(["shellcheck", "-S", "info", f.name], capture_output=True, text=True)
    Path(f.name).unlink()
    if run.returncode != 0:
        failures.append(f"{where}:\n{run.stdout}{run.stderr}")


def main():
    failures = []
    for schema, files in SCHEMAS.items():
        paths = [str(ROOT / f) for f in files]
        run = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *paths],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            failures.append(f"{schema}: {run.stdout}{run.stderr}")
        yaml = YAML(typ="safe")
        for f in files:
            doc = yaml.load((ROOT / f).read_text())
            for where, script in shell_steps(f, doc):
                shellcheck(where, script, failures)
    run = subprocess.run(["shellcheck", str(ROOT / "ci/lockgate-ci.sh")], capture_output=True, text=True)
    if run.returncode != 0:
        failures.append(f"ci/lockgate-ci.sh:\n{run.stdout}")
    if failures:
        print("\n".join(failures))
        return 1
    print("templates: schemas and shell steps pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
