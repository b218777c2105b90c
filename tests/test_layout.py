"""The package's layout keeps the pipeline visible: stages import one way, settings are
parsed once at the edge, and no module grows past ~300 lines without saying why."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlm_mia"
# each stage may import itself and the stages before it
STAGES = ["common", "settings", "data", "engine", "training", "attacks", "stats", "report", "study", "cli"]
# the one import against the flow: RMIA tunes its a by AUC, and stats.metrics imports nothing of the package
ALLOWED = {("attacks", "mlm_mia.stats.metrics")}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts), parts[-1] == "__init__"


def _imports(path: Path, name: str, is_package: bool) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it (lazy imports too)."""
    found = set()
    base = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                module = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if (PACKAGE.parent / f"{module}.{alias.name}".replace(".", "/")).exists()
                          or (PACKAGE.parent / (f"{module}.{alias.name}".replace(".", "/") + ".py")).exists() else module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m == "mlm_mia" or m.startswith("mlm_mia.")}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_every_module_belongs_to_a_stage_that_imports_only_the_stages_before_it():
    wrong = []
    for path, name, is_package in _modules():
        stage = _stage(name)
        if name == "mlm_mia":
            continue
        assert stage, f"{name}: not in a stage sub-package {STAGES}"
        for imported in _imports(path, name, is_package):
            other = _stage(imported)
            if other is None:  # mlm_mia itself: its version
                assert imported == "mlm_mia", (name, imported)
                continue
            if STAGES.index(other) > STAGES.index(stage) and (stage, imported) not in ALLOWED:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []
    # the exception's premise: stats.metrics imports nothing of the package
    assert _imports(PACKAGE / "stats" / "metrics.py", "mlm_mia.stats.metrics", False) == set()


def test_below_the_command_line_no_function_takes_the_parsed_flags():
    for path, name, _ in _modules():
        if _stage(name) != "cli":
            assert "Namespace" not in path.read_text(), name


def test_every_stage_says_what_it_holds_and_may_import():
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())) or ""
        assert "May import" in doc and len(doc) > 100, stage


def test_a_module_over_300_lines_says_why():
    for path, name, _ in _modules():
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert lines <= 320 or "Longer than most modules" in doc, (name, lines)


def test_the_scripts_are_thin_and_their_help_loads_no_model_library():
    for script in ("score_MIA.py", "prepare_data_MIA.py", "metrics.py"):
        assert len((ROOT / script).read_text().splitlines()) <= 20, script
    code = ("import sys, runpy; sys.argv = ['score_MIA.py', '--help']\n"
            "try:\n    runpy.run_path('score_MIA.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'matplotlib') if m in sys.modules), "
            "file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
    assert "--shadow-models" in result.stdout and "Min-K%++" in result.stdout
