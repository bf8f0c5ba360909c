"""Run notebooks and keep the outputs a reader should see on a forge (issue 16), then nbdev-clean.

Cells are skipped as nbdev-test skips them: `#| eval: false` (their outputs are dropped), `if __name__ == "__main__"`
and `nbdev_export()` cells, and `#| slow` cells unless `--slow` is given (a skipped slow cell keeps the outputs it has).
Log lines on stderr and the outputs of `#| hide` and `#| export` cells are dropped; streams are coalesced so that
the saved bytes do not depend on how a print was split. Run it twice: `git diff` must show nothing the second time.

    python tools/save_outputs.py [--slow] nbs/94_serve_text.ipynb [...]
"""
import argparse, re, subprocess, sys, tempfile
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

BIN = Path(sys.executable).parent
NEVER = re.compile(r"^#\|\s*eval:\s*false\s*$", re.M)
SLOW = re.compile(r"^#\|\s*slow\s*$", re.M)
HIDE = re.compile(r"^#\|\s*(hide|export|exporti)\s*$", re.M)  # their outputs are not documentation


def _skip(src: str, slow: bool) -> bool:
    "Whether nbdev-test would skip the cell (and so do we)."
    return bool(NEVER.search(src) or (SLOW.search(src) and not slow) or '__name__ == "__main__"' in src
                or "nbdev_export()" in src)


def save(p: Path, slow: bool = False) -> int:
    "Execute notebook `p` in place and strip it; returns the number of outputs kept."
    nb = nbformat.read(p, as_version=4)
    skipped = []
    for c in nb.cells:
        if c.cell_type != "code": continue
        if _skip(c.source, slow):
            c.metadata.setdefault("tags", []).append("skip-execution"); skipped.append(c)
            if NEVER.search(c.source): c.outputs = []
        else: c.outputs, c.execution_count = [], None
    with tempfile.TemporaryDirectory(prefix="save-outputs-") as d:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(d) / "kernel"))
        try:
            NotebookClient(nb, km=km, timeout=1800, coalesce_streams=True, kernel_name="python3",
                           resources={"metadata": {"path": str(p.parent.resolve())}}).execute()
        finally:
            if km.has_kernel: km.shutdown_kernel(now=True)
    n = 0
    for c in nb.cells:
        if c.cell_type != "code": continue
        if c in skipped:
            c.metadata["tags"].remove("skip-execution")
            if not c.metadata["tags"]: del c.metadata["tags"]
        if HIDE.search(c.source): c.outputs = []
        c.outputs = [o for o in c.outputs if not (o.output_type == "stream" and o.get("name") == "stderr")]
        n += len(c.outputs)
    nbformat.write(nb, p)
    subprocess.run([str(BIN / "nbdev-clean"), "--fname", str(p)], check=True)
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--slow", action="store_true", help="run #| slow cells too")
    a = ap.parse_args()
    for nb in a.notebooks: print(f"{nb}: {save(nb, a.slow)} outputs kept")
