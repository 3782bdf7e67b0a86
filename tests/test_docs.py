"""The documentation site (mkdocs.yml, docs/): every page is in the nav, every code block of the
pages runs, the methods page shows the registry's table, every module of `cams` has its API
reference and every docstring renders. `mkdocs build --strict` itself runs in .ci/run (about 10 s
of CPU with TensorFlow's import for the methods table: over this module's budget); what it refuses
in docstrings is checked here with griffe, the parser mkdocstrings uses, in about a second.

Code blocks: the ```python blocks of a page run in order in one namespace (a page is one script),
in a fresh folder per page; the ```bash blocks run each `cams` / `bengali-xai` / `deepfake-xai`
line through the program's own `main(argv)` in the same process (exit status 0 required). A block
under a `<!-- no-run: reason -->` line is not run (installs, cloud runners, minutes-long studies):
its command lines are still parsed by the program's argparse parser, so a renamed subcommand, option
or choice fails, and `python scripts/X.py` must name an existing script. The pages run in two
subprocesses side by side (`python tests/test_docs.py PAGES.json RESULTS.json`, pages split by block count).
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: the programs a bash block may call, by command name -> the module whose build_parser / main they are
PROGRAMS = {"cams": "cams.cli", "bengali-xai": "bengali_xai.cli", "deepfake-xai": "deepfake_xai.cli"}
#: other commands a no-run block may show (not run, not parsed)
SHOWN_ONLY = ("pip", "mkdocs", "pytest", "export", "cd")
LANGUAGES = ("python", "bash")
#: at most this many blocks may be exempt from running (keep them few)
MAX_NO_RUN = 8
#: subprocesses that run the pages side by side (TensorFlow's import is paid in each; tiny models use one core)
WORKERS = 2
FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>```+)(?P<info>.*)$")
NO_RUN = re.compile(r"^\s*<!--\s*no-run:\s*(?P<reason>\S.*?)\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    no_run: Optional[str]  # the reason, for a block under a no-run marker

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def pages() -> List[str]:
    """Every Markdown page under docs/, relative to it ("api/core.md")."""
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def code_blocks(page: str) -> List[Block]:
    """The fenced code blocks of a page, with the no-run reason of the line just above each."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks = len(m["indent"]), m["ticks"]
        above = NO_RUN.match(lines[i - 1]) if i else None
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks), None)
        if end is None:
            raise AssertionError(f"docs/{page}:{i + 1}: code block never closed")
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        blocks.append(Block(page, i + 1, m["info"].strip().split(" ")[0], code, above["reason"] if above else None))
        i = end + 1
    return blocks


def commands(code: str) -> List[List[str]]:
    """The command lines of a bash block as argv lists (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", code)
    return [argv for argv in (shlex.split(line, comments=True) for line in joined.splitlines()) if argv]


# ------------------------------------------------------------------ the runner (in a subprocess)
def _program(argv: List[str]):
    if argv[0] in PROGRAMS:
        return importlib.import_module(PROGRAMS[argv[0]])
    return None


def _parse_only(block: Block) -> None:
    """Parse each command line of a no-run bash block with its program's parser (nothing runs)."""
    for argv in commands(block.code):
        module = _program(argv)
        if module is not None:
            try:
                module.build_parser().parse_args([a for a in argv[1:] if a != "--debug"])
            except SystemExit as exit_:
                raise AssertionError(f"{' '.join(argv)!r} does not parse (exit {exit_.code}); see stderr") from None
        elif argv[:1] == ["python"] and len(argv) > 1 and argv[1].endswith(".py"):
            assert (ROOT / argv[1]).is_file(), f"{argv[1]} does not exist"
        elif argv[0] not in SHOWN_ONLY and argv[:2] != ["python", "-m"]:
            raise AssertionError(f"{argv[0]!r} is neither one of {sorted(PROGRAMS)} nor shown-only {SHOWN_ONLY}")


def _run_bash(block: Block) -> None:
    for argv in commands(block.code):
        module = _program(argv)
        if module is None:
            raise AssertionError(f"cannot run {argv[0]!r} in a test: mark the block `<!-- no-run: reason -->`")
        rc = module.main(argv[1:])
        assert rc == 0, f"{' '.join(argv)!r} exited with {rc}"


def run_page(page: str, blocks: List[Block], folder: Path) -> Dict:
    """Run a page's blocks in `folder`; {"page", "error", "seconds", "cpu_seconds", "ran"}."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    namespace: Dict = {"__name__": "__main__"}
    start, cpu, error, ran = time.perf_counter(), time.process_time(), None, 0
    try:
        for block in blocks:
            if block.no_run is not None:
                if block.lang == "bash":
                    _parse_only(block)
                continue
            if block.lang == "python":
                exec(compile(block.code, block.where, "exec"), namespace)
            else:
                _run_bash(block)
            ran += 1
    except BaseException as err:  # noqa: BLE001  (reported to the test with the block's place)
        error = f"{block.where} ({block.lang} block):\n" + "".join(traceback.format_exception(err))[-4000:]
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()
    return {"page": page, "error": error, "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2), "ran": ran}


def main(pages_json: str, results_json: str) -> int:
    from cams.core.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    todo = json.loads(Path(pages_json).read_text())
    results = [run_page(page, [Block(**b) for b in blocks], Path(todo["folder"]) / page.replace("/", "_"))
               for page, blocks in todo["pages"].items()]
    Path(results_json).write_text(json.dumps(results))
    return 0


# ------------------------------------------------------------------ the tests
def _all_blocks() -> Dict[str, List[Block]]:
    return {page: code_blocks(page) for page in pages()}


def _nav_files(entry) -> List[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [f for item in entry for f in _nav_files(item)]
    if isinstance(entry, dict):
        return [f for value in entry.values() for f in _nav_files(value)]
    return []


def _mkdocs_config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import pytest  # noqa: E402


def _split(blocks: Dict[str, List[Block]], workers: int) -> List[Dict[str, List[Block]]]:
    """Pages in `workers` groups of about as many runnable blocks (largest first, each to the lightest)."""
    def runnable(page: str) -> int:
        return sum(b.no_run is None for b in blocks[page])

    groups: List[Dict[str, List[Block]]] = [{} for _ in range(workers)]
    size = [0] * workers
    for page in sorted(blocks, key=lambda p: (-runnable(p), p)):
        k = size.index(min(size))
        groups[k][page] = blocks[page]
        size[k] += runnable(page)
    return [g for g in groups if g]


@pytest.fixture(scope="module")
def page_results(tmp_path_factory):
    """Run the code blocks of every page once, in WORKERS subprocesses side by side; {page: result}."""
    folder = tmp_path_factory.mktemp("docs_pages")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    runs = []
    for k, group in enumerate(_split({p: bs for p, bs in _all_blocks().items() if bs}, WORKERS)):
        todo = {"folder": str(folder), "pages": {p: [asdict(b) for b in bs] for p, bs in group.items()}}
        (folder / f"pages{k}.json").write_text(json.dumps(todo))
        log = open(folder / f"log{k}.txt", "w+")
        runs.append((subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(folder / f"pages{k}.json"),
                                       str(folder / f"results{k}.json")], cwd=folder, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, text=True), log, k))
    results = {}
    for proc, log, k in runs:
        rc = proc.wait(timeout=600)
        log.seek(0)
        output = log.read()
        log.close()
        assert rc == 0, output[-4000:]
        results.update({r["page"]: dict(r, output=output[-4000:])
                        for r in json.loads((folder / f"results{k}.json").read_text())})
    return results


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_files(_mkdocs_config()["nav"])
    assert sorted(nav) == pages(), "mkdocs.yml's nav and the pages under docs/ differ"


def test_code_blocks_are_python_or_bash_and_few_are_exempt():
    blocks = [b for bs in _all_blocks().values() for b in bs]
    assert blocks, "no code blocks found: is the fence parser broken?"
    others = [b.where for b in blocks if b.lang not in LANGUAGES and b.no_run is None]
    assert not others, f"code blocks in a language the test cannot run (python, bash): {others}"
    exempt = [f"{b.where}: {b.no_run}" for b in blocks if b.no_run is not None]
    assert len(exempt) <= MAX_NO_RUN, "too many blocks exempt from running:\n" + "\n".join(exempt)


@pytest.mark.parametrize("page", [p for p, bs in _all_blocks().items() if any(b.no_run is None for b in bs)])
def test_code_blocks_of_the_page_run(page, page_results):
    result = page_results[page]
    assert result["error"] is None, result["error"] + "\n--- output ---\n" + result["output"]
    assert result["ran"] == sum(b.no_run is None for b in code_blocks(page))


def test_no_run_blocks_still_parse():
    """Commands shown but not run (installs, Dataflow, minutes-long studies) still name real options."""
    for block in (b for bs in _all_blocks().values() for b in bs if b.no_run is not None and b.lang == "bash"):
        _parse_only(block)


def test_the_methods_page_shows_the_registry_table():
    from cams.methods.registry import markdown_table

    hooks = _hooks()
    assert "docs/hooks.py" in _mkdocs_config()["hooks"]
    source = (DOCS / "methods.md").read_text(encoding="utf-8")
    assert source.count(hooks.MARKER) == 1, "docs/methods.md needs exactly one <!-- methods-table --> line"
    assert markdown_table().rstrip("\n") in hooks.fill_tables(source, "methods.md")
    with pytest.raises(ValueError, match="methods-table"):
        hooks.fill_tables(source.replace(hooks.MARKER, ""), "methods.md")


@functools.lru_cache(maxsize=1)
def _griffe_package():
    """`cams` as mkdocstrings reads it (static analysis: nothing is imported), with mkdocs.yml's options."""
    griffe = pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    options = _mkdocs_config()["plugins"][1]["mkdocstrings"]["handlers"]["python"]["options"]
    assert options["docstring_style"] == "google"
    return griffe.load("cams", search_paths=[str(ROOT)], docstring_parser="google",
                       docstring_options=options.get("docstring_options", {}))


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def test_docstrings_render_without_warnings(caplog):
    """What `mkdocs build --strict` refuses in a docstring (an Args entry naming no parameter, such as
    "a, b: ..." for two), checked here in a second without building the site."""
    import logging

    caplog.set_level(logging.WARNING, logger="griffe")
    for obj in _walk(_griffe_package()):
        if obj.docstring is not None:
            obj.docstring.parsed  # noqa: B018  (parsing logs the warnings)
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("griffe")]
    assert not warnings, "docstrings the reference cannot render (one parameter per Args line):\n" + "\n".join(warnings)


#: modules of `cams` that have no API page, and why
NOT_IN_REFERENCE = {"cams.cli": "the command lines: documented by --help and the pages",
                    "cams.__main__": "`python -m cams`"}


def test_every_public_module_is_in_the_api_reference():
    """A new module of `cams` gets its `::: module` line in docs/api/*.md (or a reason above)."""
    referenced = {line[4:].strip() for page in (DOCS / "api").glob("*.md")
                  for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("::: ")}
    missing = []
    for obj in _walk(_griffe_package()):
        if not obj.is_module or any(obj.path == k or obj.path.startswith(k + ".") for k in NOT_IN_REFERENCE):
            continue
        private = any(part.startswith("_") for part in obj.path.split("."))
        own_code = any(not m.is_alias and (m.is_class or m.is_function) and not m.name.startswith("_")
                       for m in obj.members.values())
        if not private and (Path(obj.filepath).name != "__init__.py" or own_code) and obj.path not in referenced:
            missing.append(obj.path)
    assert not missing, "modules missing from the API reference (add `::: name` to a page of docs/api/):\n" + \
        "\n".join(missing)
    unknown = [name for name in referenced if not (ROOT / (name.replace(".", "/") + ".py")).is_file()
               and not (ROOT / name.replace(".", "/") / "__init__.py").is_file()]
    assert not unknown, f"`:::` lines naming no module: {unknown}"


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
