"""Render mlkit's notebooks into a static documentation site (offline, no quarto), and README.md from nbs/index.ipynb.

    python tools/build_docs.py                 # _docs/index.html and one page per notebook
    python tools/build_docs.py --readme        # write README.md from nbs/index.ipynb
    python tools/build_docs.py --check-readme  # exit 1 when README.md is not what nbs/index.ipynb renders to

Each notebook is executed (cells flagged `#| slow` are left out, as in `nbdev-test`), `#| hide` cells run but are not
shown, directive comments are stripped, and every public function or class of an `#| export` cell gets its `show_doc`
rendered right below it, as nbdev's quarto pages do.
"""
import argparse, ast, copy, html, re, sys, tempfile, time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
NBS, OUT = ROOT / "nbs", ROOT / "_docs"
DIRECTIVE = re.compile(r"^\s*#\|\s*(\S+)")


def _directives(src: str) -> list[str]:
    return [m.group(1) for line in src.splitlines() if (m := DIRECTIVE.match(line))]


def _public_names(src: str) -> list[str]:
    try: tree = ast.parse(src)
    except SyntaxError: return []
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


def prepare(nb, with_show_doc: bool = True):
    "A copy of `nb` ready to render: hidden and slow cells out, directives stripped, show_doc after exports."
    nb = copy.deepcopy(nb)
    # progress bars are noise on a page, and tqdm.auto without ipywidgets printed a red TqdmWarning block on 8 pages
    cells = [nbformat.v4.new_code_cell("import os, warnings; os.environ['TQDM_DISABLE'] = '1'; "
                                       "warnings.filterwarnings('ignore', message='IProgress not found')",
                                       metadata={"tags": ["remove_cell"]})]
    if with_show_doc:
        cells.append(nbformat.v4.new_code_cell("from nbdev.showdoc import show_doc",
                                               metadata={"tags": ["remove_cell"]}))
    for c in nb.cells:
        if c.cell_type != "code": cells.append(c); continue
        d = _directives(c.source)
        if "slow" in d or any(x.startswith("default_exp") for x in d): continue
        c.source = "\n".join(line for line in c.source.splitlines() if not DIRECTIVE.match(line)).strip("\n")
        if "hide" in d: _tag(c, "remove_cell")   # runs (later cells may need it), not shown
        if "echo:" in " ".join(d) or "hide_input" in d: _tag(c, "remove_input")
        if "eval:" in " ".join(d) and "false" in " ".join(d) or '__name__ == "__main__"' in c.source:
            _tag(c, "skip-execution")   # entry-point guards are true in a kernel: shown, never run
        cells.append(c)
        if "export" in d and with_show_doc:
            for name in _public_names(c.source):
                cells.append(nbformat.v4.new_code_cell(f"show_doc({name})", metadata={"tags": ["remove_input"]}))
    nb.cells = cells
    return nb


def execute(nb, cwd: Path):
    "Run `nb` in a fresh kernel over IPC sockets in a private folder (TCP made every kernel warn it is unencrypted)."
    with tempfile.TemporaryDirectory(prefix="mlkit-kernel-") as d:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(d) / "kernel"))
        try: NotebookClient(nb, km=km, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
        finally:
            if km.has_kernel: km.shutdown_kernel(now=True)   # a km passed in is not shut down by the client
    return nb


def _tag(cell, tag: str):
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags: tags.append(tag)


def _title(nb, fallback: str) -> tuple[str, str]:
    for c in nb.cells:
        if c.cell_type == "markdown" and (m := re.search(r"^#\s+(.+)$", c.source, re.M)):
            s = re.search(r"^>\s*(.+)$", c.source, re.M)
            return m.group(1).strip(), (s.group(1).strip() if s else "")
    return fallback, ""


def _exporter(cls, **kw):
    cfg = Config()
    cfg.TagRemovePreprocessor.remove_cell_tags = ("remove_cell",)
    cfg.TagRemovePreprocessor.remove_input_tags = ("remove_input",)
    cfg.TagRemovePreprocessor.enabled = True
    ex = cls(config=cfg, **kw)
    ex.register_preprocessor(TagRemovePreprocessor(config=cfg), enabled=True)
    return ex


def render_readme() -> str:
    nb = execute(prepare(nbformat.read(NBS / "index.ipynb", as_version=4), with_show_doc=False), NBS)
    for c in nb.cells:
        if c.cell_type == "code": _tag(c, "remove_input")
    body, _ = _exporter(MarkdownExporter).from_notebook_node(nb)
    return ("<!-- generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n"
            + body.strip() + "\n")


def pages() -> list[Path]:
    out = [p for p in sorted(NBS.glob("*.ipynb")) if p.name != "index.ipynb"]
    return out + sorted((NBS / "tutorials").glob("*.ipynb"))


def build_site(only: list[str] | None = None):
    OUT.mkdir(exist_ok=True)
    ex = _exporter(HTMLExporter, template_name="lab")
    links = []
    for p in pages():
        nb = nbformat.read(p, as_version=4)
        title, summary = _title(nb, p.stem)
        name = p.relative_to(NBS).with_suffix(".html").as_posix().replace("/", "_")
        links.append((name, title, summary, p.relative_to(NBS).as_posix()))
        if only and p.stem not in only: continue
        t = time.perf_counter()
        nb = execute(prepare(nb), p.parent)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell("[← mlkit documentation](index.html)"))
        body, _ = ex.from_notebook_node(nb, resources={"metadata": {"name": f"mlkit: {title}"}})
        (OUT / name).write_text(body, encoding="utf-8")
        print(f"{name:40s} {time.perf_counter() - t:6.1f} s")
    index = execute(prepare(nbformat.read(NBS / "index.ipynb", as_version=4), with_show_doc=False), NBS)
    for c in index.cells:
        if c.cell_type == "code": _tag(c, "remove_input")
    items = "\n".join(f"- [{html.escape(t)}]({n}): {html.escape(s)} (`nbs/{src}`)" for n, t, s, src in links)
    index.cells.insert(1, nbformat.v4.new_markdown_cell("## Modules\n\n" + items))
    body, _ = ex.from_notebook_node(index, resources={"metadata": {"name": "mlkit"}})
    (OUT / "index.html").write_text(body, encoding="utf-8")
    print(f"{'index.html':40s} links {len(links)} pages -> {OUT}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true"); ap.add_argument("--check-readme", action="store_true")
    ap.add_argument("--only", nargs="*", help="notebook stems to render (default: all)")
    a = ap.parse_args()
    if a.readme: (ROOT / "README.md").write_text(render_readme(), encoding="utf-8")
    elif a.check_readme:
        if (ROOT / "README.md").read_text(encoding="utf-8") != render_readme():
            sys.exit("README.md is out of date: run `make readme` (it is generated from nbs/index.ipynb)")
    else: build_site(a.only)
