"""The house's rules, checked on the imports themselves (module level and inside functions).

- train/, serve/, ui/, evals/ are imported as persona.train, persona.serve, ... never by their
  bare names (XTuner's tools/train.py shadows a bare `train`, and generic top-level names
  do not belong in site-packages).
- The UI knows only the API: it imports no training, serving or eval code.
- Serving and the evals know a run only through its folder (persona.run_folder): neither
  imports training code; training never imports the evals, nor the evals training.
- The card and the identity core are the bottom of the house: the card imports nothing of
  persona but its errors, the identity core nothing but the card (and itself).
- The shared core (persona/*.py, less the CLI that wires everything) imports no component.
"""

from __future__ import annotations

import ast

import pytest

from persona.paths import REPO_ROOT

COMPONENTS = ("train", "serve", "ui", "evals")
CLI = {"persona/cli.py", "persona/commands.py", "persona/commands_live.py", "persona/commands_feedback.py",
       "persona/commands_export.py", "persona/cli_args.py"}

# part -> (modules it may not import, a why the failure message gives)
FORBIDDEN = {
    "ui": (("persona.train", "persona.serve", "persona.evals", "persona.run_folder",
            "persona.commands"), "the UI knows only the API"),
    "serve": (("persona.train", "persona.evals", "persona.ui", "persona.commands"),
              "serving knows a run only through persona.run_folder"),
    "train": (("persona.evals", "persona.serve", "persona.ui", "persona.commands"),
              "training never imports the evals (shared knowledge lives in persona.identity)"),
    "evals": (("persona.train", "persona.serve", "persona.ui", "persona.commands"),
              "the evals know a run only through persona.run_folder, never training code"),
    "core": (tuple(f"persona.{name}" for name in COMPONENTS) + ("persona.commands", "persona.cli"),
             "the shared core imports no component; only the CLI wires them"),
}
# The bottom of the house: the persona modules each may import, and nothing else of persona.
ONLY_PERSONA = {
    "card": ("persona.errors",),
    "identity": ("persona.card", "persona.errors", "persona.identity"),
}


def part_of(path: str) -> str | None:
    """Which part of the house a source file (repo-relative, posix) belongs to."""
    top = path.split("/")[0]
    if top in COMPONENTS:
        return top
    if path == "persona/card.py":
        return "card"
    if path.startswith("persona/identity/"):
        return "identity"
    if top == "persona" and path not in CLI:
        return "core"
    return None  # the CLI, tests, benchmarks: they may import anything


def package_of(path: str) -> str:
    """The dotted package a file's relative imports start from."""
    parts = path[:-3].split("/")
    dotted = ["persona", *parts] if parts[0] in COMPONENTS else parts
    return ".".join(dotted[:-1])


def imported(path: str, source: str) -> list[tuple[int, str]]:
    """(line, module) for every import in the source, relative ones made absolute."""
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = package_of(path).split(".")
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.append((node.lineno, module))
            # `from persona import train` imports a component as much as `import persona.train`
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(sources: dict[str, str]) -> list[str]:
    """Every import that breaks a rule, as `path:line: module (why)`."""
    broken = []
    for path, source in sorted(sources.items()):
        part = part_of(path)
        for line, module in imported(path, source):
            if broken and broken[-1].startswith(f"{path}:{line}:"):
                continue  # one finding per import statement
            if module.split(".")[0] in COMPONENTS:
                broken.append(f"{path}:{line}: {module} (import it as persona.{module})")
            elif part in FORBIDDEN:
                banned, why = FORBIDDEN[part]
                if any(_within(module, prefix) for prefix in banned):
                    broken.append(f"{path}:{line}: {module} ({why})")
            elif part in ONLY_PERSONA and _within(module, "persona"):
                allowed = ONLY_PERSONA[part]
                if module != "persona" and not any(_within(module, ok) for ok in allowed):
                    broken.append(f"{path}:{line}: {module} ({part} imports only "
                                  f"{', '.join(allowed)})")
    return broken


def project_sources() -> dict[str, str]:
    """Every Python file of the project, by its real path (the links in persona/ skipped)."""
    sources = {}
    for top in ("persona", *COMPONENTS, "tests", "benchmarks"):
        for file in sorted((REPO_ROOT / top).rglob("*.py")):
            relative = file.relative_to(REPO_ROOT)
            if relative.parts[:2] in {("persona", name) for name in COMPONENTS}:
                continue  # persona/train -> ../train: the same files under train/
            sources[relative.as_posix()] = file.read_text(encoding="utf-8")
    return sources


def test_the_project_keeps_the_rules():
    sources = project_sources()
    assert len(sources) > 100 and "train/pipeline.py" in sources and "ui/app.py" in sources
    assert violations(sources) == []


WRONG_IMPORTS = [
    ("ui/app.py", "from persona.train.dataset import build_conversations", "the UI knows only"),
    ("ui/llm.py", "import persona.evals.cases", "the UI knows only"),
    ("serve/server.py", "from persona.train import xtuner_config", "serving knows"),
    ("serve/adapters.py", "    from persona.evals.report import write_report", "serving knows"),
    ("train/replay.py", "from persona.evals.general_skills import GENERAL_SKILLS", "never imports the evals"),
    ("train/dataset.py", "from ..evals import cases", "never imports the evals"),
    ("evals/cases.py", "from persona.train.phrasings import QUESTIONS", "never training code"),
    ("evals/conftest.py", "from persona import train", "never training code"),
    ("persona/card.py", "from persona.identity.names import OTHER_ASSISTANTS", "card imports only"),
    ("persona/card.py", "from persona.train.xtuner_config import METHODS", "card imports only"),
    ("persona/identity/judges.py", "from persona.stats import wilson", "identity imports only"),
    ("persona/envs.py", "from persona.train.install_fixes import fix_env", "the shared core imports no"),
    ("persona/paths.py", "from persona.commands import DEFAULT_CARD", "the shared core imports no"),
    ("persona/commands.py", "from train.pipeline import main", "import it as persona.train"),
    ("tests/test_cli.py", "import evals.report", "import it as persona.evals"),
]


@pytest.mark.parametrize("path,line,why", WRONG_IMPORTS, ids=[f"{p}:{l}" for p, l, _ in WRONG_IMPORTS])
def test_a_wrong_import_is_caught(path, line, why):
    sources = project_sources()
    assert path in sources
    sources[path] += f"\n\ndef _added():\n{line}\n" if line.startswith(" ") else f"\n{line}\n"
    found = violations(sources)
    assert len(found) == 1 and found[0].startswith(f"{path}:") and why in found[0], found


def test_allowed_imports_pass():
    """The CLI wires components; components use the core; relative imports stay inside."""
    sources = {
        "persona/commands.py": "from persona.train import pipeline\nfrom persona.evals import report\n",
        "ui/app.py": "from persona.card import load_card\nfrom persona.services import spawn\n",
        "evals/cases.py": "from persona.identity.judges import problems\nfrom . import thresholds\n",
        "serve/adapters.py": "from persona.run_folder import RunFolder\n",
        "persona/card.py": "from persona.errors import PersonaError\nimport yaml\n",
        "persona/identity/judges.py": "from persona.card import PersonaCard\nfrom .names import x\n",
    }
    assert violations(sources) == []


MAX_FUNCTION_LINES = 60  # one job a function: a longer one is several steps waiting for names


def long_functions(sources: dict[str, str]) -> list[str]:
    """Functions over MAX_FUNCTION_LINES in train/, serve/ and persona/."""
    found = []
    for path, source in sorted(sources.items()):
        if path.split("/")[0] not in ("train", "serve", "persona"):
            continue
        for node in ast.walk(ast.parse(source, filename=path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path}:{node.lineno}: {node.name} has {length} lines")
    return found


def test_functions_stay_short():
    sources = project_sources()
    assert long_functions(sources) == []
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sources["serve/server.py"] += f"\n\ndef _grown():\n{body}\n"
    found = long_functions(sources)
    assert len(found) == 1 and found[0].startswith("serve/server.py:"), found
    assert found[0].endswith(f"_grown has {MAX_FUNCTION_LINES + 1} lines")
