"""Put the real datasets kept next to the repository into the data folder the workers read.

    python scripts/prepare_data.py                       # into $ENAS_DATA_DIR (default $ENAS_HOME/data)
    python scripts/prepare_data.py --data-dir /srv/data  # somewhere else
    python scripts/prepare_data.py --only ptb            # just one dataset

Writes, in the standard distribution formats that `dataset: cifar10` / `dataset: ptb` read:
  <data-dir>/ptb/ptb.{train,valid,test}.txt           from <source>/ptb-mini (a copy)
  <data-dir>/cifar10/cifar-10-batches-py/...          from <source>/cifar10-jpeg.tar.gz, converted by
                                                      <tools>/cifar10_from_jpeg.py (needs Pillow)
<source> defaults to ../shared/data next to the repository. A dataset already in place is left
alone (--force rewrites it). Both are development copies: perplexities on ptb-mini and accuracies on
the JPEG copy of CIFAR-10 are not comparable with published figures (../shared/data/README.md).
Exit status 0 when every dataset asked for is in place.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
DATASETS = ("ptb", "cifar10")


def default_data_dir() -> Path:
    """The workers' data folder: ENAS_DATA_DIR, else ENAS_HOME/data (service.settings)."""
    sys.path.insert(0, str(ROOT))
    from service.settings import Settings

    data_dir = Settings().data_dir
    assert data_dir is not None  # Settings fills it in from home
    return data_dir


def prepare_ptb(source: Path, data_dir: Path, force: bool = False) -> Path:
    """Copy ptb-mini's three Mikolov-format files to <data_dir>/ptb; returns that folder.

    Raises:
        FileNotFoundError: a source file is missing.
    """
    target = data_dir / "ptb"
    if not force and all((target / f).is_file() for f in PTB_FILES):
        return target
    missing = [f for f in PTB_FILES if not (source / "ptb-mini" / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{source / 'ptb-mini'} lacks {', '.join(missing)}")
    target.mkdir(parents=True, exist_ok=True)
    for name in PTB_FILES:
        shutil.copyfile(source / "ptb-mini" / name, target / name)
    return target


def prepare_cifar10(source: Path, tools: Path, data_dir: Path, force: bool = False) -> Path:
    """Convert the JPEG archive to <data_dir>/cifar10/cifar-10-batches-py; returns that folder.

    Raises:
        FileNotFoundError: the archive or the converter is missing.
        RuntimeError: the converter failed (e.g. Pillow is not installed).
    """
    target = data_dir / "cifar10" / "cifar-10-batches-py"
    if not force and all((target / f).is_file() for f in CIFAR_FILES):
        return target
    archive, converter = source / "cifar10-jpeg.tar.gz", tools / "cifar10_from_jpeg.py"
    for path in (archive, converter):
        if not path.is_file():
            raise FileNotFoundError(f"missing {path}")
    done = subprocess.run(
        [sys.executable, str(converter), str(data_dir / "cifar10"), "--archive", str(archive)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        hint = " (pip install pillow)" if "PIL" in done.stderr else ""
        raise RuntimeError(f"{converter} failed{hint}: {done.stderr.strip()[-2000:]}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $ENAS_DATA_DIR or $ENAS_HOME/data"
    )
    parser.add_argument("--source", type=Path, default=SHARED / "data", help="default: ../shared/data")
    parser.add_argument("--tools", type=Path, default=SHARED / "tools", help="default: ../shared/tools")
    parser.add_argument("--only", choices=DATASETS, action="append", help="one dataset (repeatable)")
    parser.add_argument("--force", action="store_true", help="rewrite datasets already in place")
    args = parser.parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    ok = True
    for name in args.only or DATASETS:
        try:
            if name == "ptb":
                where = prepare_ptb(args.source, data_dir, args.force)
            else:
                where = prepare_cifar10(args.source, args.tools, data_dir, args.force)
            print(f"{name}: {where}")
        except (OSError, RuntimeError) as e:
            print(f"{name}: not prepared: {e}", file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
