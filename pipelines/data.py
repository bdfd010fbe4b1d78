"""The pilot model's data set: scikit-learn's bundled 8x8 handwritten digits.

Why this data set: it ships inside scikit-learn (no download, so tests and the local runner work
offline), it is small enough to train on two CPU cores in seconds, and it is a real ten-class
problem, so the multiclass metrics, the quality gate and the registry path are exercised for
real. The raw CSV written here is what the training pipeline's input data URI points at.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

# pandas and scikit-learn load in the functions that use them: the Pulumi program imports
# this module (through the feature specs) and should not pay ~2 s and ~150 MB for them.
if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

#: 64 pixel intensities, row-major over the 8x8 image, each an integer in 0..16.
FEATURES: tuple[str, ...] = tuple(f"pixel_{index}" for index in range(64))
#: The digit shown, 0..9.
LABEL = "label"
#: Name of the raw file in the data set directory.
RAW_FILE_NAME = "digits.csv"


def load_digits_frame() -> pd.DataFrame:
    """The 1,797 digits as one frame: `pixel_0`..`pixel_63` and `label`, all int64.

    scikit-learn hands the pixels over as floats; they are whole numbers, and integers keep the
    CSV small and make the validation rule "integer in 0..16" meaningful.
    """
    import pandas as pd
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    bunch = load_digits()
    frame = pd.DataFrame(bunch.data.astype("int64"), columns=list(FEATURES))
    frame[LABEL] = bunch.target.astype("int64")
    return frame


def write_raw_dataset(directory: Path) -> Path:
    """Writes the data set as `digits.csv` in `directory` (created if missing); returns the
    file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RAW_FILE_NAME
    load_digits_frame().to_csv(path, index=False)
    return path


def read_csv_dir(directory: Path) -> pd.DataFrame:
    """Every CSV under `directory`, concatenated in path order (so the row order is stable).

    Why a directory and not a file: a SageMaker channel or processing input is a directory that
    may hold one file or many parts of one export, under names the step does not choose.
    Raises FileNotFoundError when there is no CSV at all, EmptyCsv naming a file with no
    header.
    """
    import pandas as pd

    files = sorted(path for path in directory.rglob("*.csv") if path.is_file())
    if not files:
        raise FileNotFoundError(f"no CSV files in {directory}")
    frames = []
    for path in files:
        try:
            frames.append(pd.read_csv(path))
        except pd.errors.EmptyDataError:
            raise EmptyCsv(f"{path} is empty: no header, no rows") from None
    return pd.concat(frames, ignore_index=True)


class EmptyCsv(ValueError):
    """A CSV file with nothing in it (not even a header)."""
