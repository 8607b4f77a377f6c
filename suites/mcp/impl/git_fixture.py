"""Build the mcp_git suite's repository in the current directory, the same every time.

A git repository cannot be committed inside evalkit's own, so the suite's `setup` runs this in
each sample's fresh working root before mcp-server-git starts. Authors, committers, dates and
contents are fixed, and the user's git configuration is ignored, so the commit ids are the same
on every machine (the suite's cases may quote them):

    main: Add README (Ada, 2024-03-01) -> Add add() and sub() (Ada, 2024-03-02)
          -> Fix sign bug in sub() (Grace, 2024-03-05) -> Add CHANGELOG for 0.1.0 (Ada, 2024-03-08), tag v0.1.0
    working tree: calc.py has an unstaged new function mul(); TODO.md is staged (new);
                  notes.txt is untracked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ADA = ("Ada Lovelace", "ada@example.com")
GRACE = ("Grace Hopper", "grace@example.com")

CALC_V1 = '''def add(a, b):
    return a + b


def sub(a, b):
    return b - a
'''
CALC_V2 = CALC_V1.replace("return b - a", "return a - b")
CALC_WORKING = CALC_V2 + '''

def mul(a, b):
    return a * b
'''

COMMITS = [
    (ADA, "2024-03-01T09:00:00+00:00", "Add README", {"README.md": "# Tiny Calc\n\nA calculator with two functions.\n"}),
    (ADA, "2024-03-02T10:30:00+00:00", "Add add() and sub()", {"calc.py": CALC_V1}),
    (GRACE, "2024-03-05T14:15:00+00:00", "Fix sign bug in sub()", {"calc.py": CALC_V2}),
    (ADA, "2024-03-08T16:45:00+00:00", "Add CHANGELOG for 0.1.0", {"CHANGELOG.md": "## 0.1.0\n\n- add() and sub()\n"}),
]


def git(*args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def build(root: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # Nobody's ~/.gitconfig or /etc/gitconfig (signing, hooks, default branch) changes the result.
    base.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", TZ="UTC", LC_ALL="C")
    git("init", "-q", "-b", "main", str(root), env=base)
    git("-C", str(root), "config", "user.name", ADA[0], env=base)
    git("-C", str(root), "config", "user.email", ADA[1], env=base)
    for (name, email), date, message, files in COMMITS:
        for path, text in files.items():
            (root / path).write_text(text, encoding="utf-8")
            git("-C", str(root), "add", path, env=base)
        env = dict(base, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE=date,
                   GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email, GIT_COMMITTER_DATE=date)  # fmt: skip
        git("-C", str(root), "commit", "-q", "--no-verify", "-m", message, env=env)
    git("-C", str(root), "tag", "v0.1.0", env=base)
    (root / "calc.py").write_text(CALC_WORKING, encoding="utf-8")
    (root / "TODO.md").write_text("- mul() and div()\n", encoding="utf-8")
    git("-C", str(root), "add", "TODO.md", env=base)
    (root / "notes.txt").write_text("remember to release 0.2\n", encoding="utf-8")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
