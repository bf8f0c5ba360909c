"""Run notebooks and keep the outputs a reader should see on a forge (issue 16): execute each notebook in place with
nbconvert, drop what changes on every run or was never meant to run (log lines on stderr, the outputs of
`#| eval: false` and `#| hide` cells), then nbdev-clean. Run it twice: `git diff` must show nothing the second time.

    python tools/save_outputs.py nbs/94_serve_text.ipynb [...]
"""
import argparse, json, re, subprocess, sys
from pathlib import Path

BIN = Path(sys.executable).parent
SKIP = re.compile(r"^#\|\s*(eval:\s*false|hide)\s*$", re.M)


def keep(cell: dict) -> list:
    "The outputs of `cell` worth saving."
    if SKIP.search("".join(cell["source"])): return []
    return [o for o in cell["outputs"] if not (o["output_type"] == "stream" and o.get("name") == "stderr")]


def save(nb: Path) -> int:
    "Execute `nb` in place and strip it; returns the number of outputs kept."
    subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--inplace", str(nb)],
                   check=True)
    d = json.loads(nb.read_text())
    n = 0
    for c in d["cells"]:
        if c["cell_type"] == "code": c["outputs"] = keep(c); n += len(c["outputs"])
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")
    subprocess.run([str(BIN / "nbdev-clean"), "--fname", str(nb)], check=True)
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    for p in ap.parse_args().notebooks: print(f"{p}: {save(p)} outputs kept")
