"""UCI Adult / Census Income (Becker & Kohavi 1996, UCI Machine Learning Repository,
doi:10.24432/C5XW20; Kohavi 1996, KDD) from the published ``adult.data`` / ``adult.test``.

Binary task: does income exceed $50K (class 1, ``>50K``)? The positive class is ``>50K``, so
the Lightning module reports ``test/f1`` as the F1 score of that class (not the macro F1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from midl.data.base import InMemoryDataModule, Splits

# Column names and kinds from adult.names.
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
           "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
           "hours-per-week", "native-country", "income"]
NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race",
               "sex", "native-country"]
MISSING = "missing"  # the category given to the files' "?" values
LABELS = ("<=50K", ">50K")
# The published categories of adult.names (native-country's 41 left out), used only to tell
# which column a malformed file lacks.
CATEGORIES = {
    "workclass": {"Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov",
                  "State-gov", "Without-pay", "Never-worked"},
    "education": {"Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm",
                  "Assoc-voc", "9th", "7th-8th", "12th", "Masters", "1st-4th", "10th",
                  "Doctorate", "5th-6th", "Preschool"},
    "marital-status": {"Married-civ-spouse", "Divorced", "Never-married", "Separated",
                       "Widowed", "Married-spouse-absent", "Married-AF-spouse"},
    "occupation": {"Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
                   "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
                   "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv",
                   "Armed-Forces"},
    "relationship": {"Wife", "Own-child", "Husband", "Not-in-family", "Other-relative",
                     "Unmarried"},
    "race": {"White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"},
    "sex": {"Female", "Male"},
}


def _fits(rows: list[list[str]], names: list[str]) -> bool:
    """Whether every field of ``rows`` fits the kind of the column ``names`` gives it: a
    number for a numeric column, a label for ``income``, a published category (or ``?``)
    for the other categorical columns, a word for ``native-country``."""
    def number(value: str) -> bool:
        try:
            float(value)
        except ValueError:
            return False
        return True

    for j, name in enumerate(names):
        values = {row[j] for row in rows}
        if name in NUMERIC:
            ok = all(number(v) for v in values)
        elif name == "income":
            ok = all(v.rstrip(".") in LABELS for v in values)
        elif name in CATEGORIES:
            ok = values <= CATEGORIES[name] | {"?"}
        else:
            ok = not any(number(v) or v.rstrip(".") in LABELS for v in values)
        if not ok:
            return False
    return True


def _check_columns(path: str | Path, sample_rows: int = 200) -> None:
    """Raise a ValueError naming the missing column(s) if the rows of an Adult file do not
    have the 15 fields of :data:`COLUMNS`; return quietly if they all do.

    A file whose rows all lack one column: the column is found by which assignment of the 14
    fields to column names fits their kinds (:func:`_fits`, on the first ``sample_rows``
    rows); when several fit (adjacent numeric columns), all are named. A single short row
    (truncated file): its line and the trailing columns it lacks are named.
    """
    rows: list[tuple[int, list[str]]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip() and not line.lstrip().startswith("|"):
                rows.append((lineno, [v.strip() for v in line.rstrip("\n").split(",")]))
    counts = {len(fields) for _, fields in rows}
    if counts <= {len(COLUMNS)}:
        return
    if len(counts) == 1 and (n := counts.pop()) < len(COLUMNS):
        sample = [fields for _, fields in rows[:sample_rows]]
        candidates = [c for i, c in enumerate(COLUMNS) if n == len(COLUMNS) - 1
                      and _fits(sample, COLUMNS[:i] + COLUMNS[i + 1:])]
        if len(candidates) == 1:
            which = f"the column {candidates[0]!r} is missing"
        elif candidates:
            which = f"one of the columns {candidates} is missing"
        else:
            which = f"{len(COLUMNS) - n} column(s) are missing"
        raise ValueError(f"{path}: every row has {n} fields, expected the {len(COLUMNS)} "
                         f"columns of adult.names; {which} (expected order: "
                         f"{', '.join(COLUMNS)})")
    lineno, fields = next((i, f) for i, f in rows if len(f) != len(COLUMNS))
    if len(fields) < len(COLUMNS):
        raise ValueError(f"{path}: line {lineno} has {len(fields)} fields, expected "
                         f"{len(COLUMNS)}: missing {COLUMNS[len(fields):]}; the file is "
                         "truncated or corrupt")
    raise ValueError(f"{path}: line {lineno} has {len(fields)} fields, more than the "
                     f"{len(COLUMNS)} columns {COLUMNS}; the file is corrupt")


def read_adult_csv(path: str | Path) -> pd.DataFrame:
    """Read ``adult.data`` or ``adult.test`` in the published UCI format.

    Format: comma + space separated, no header, ``?`` for missing values; ``adult.test`` starts
    with the line ``|1x3 Cross validator`` and its labels end with ``.`` (``>50K.``); blank
    trailing lines are ignored.

    Returns:
        A frame with the 15 :data:`COLUMNS`; numeric columns as float64, categorical columns as
        strings with ``?`` replaced by ``"missing"``, and ``income`` normalised to ``<=50K`` /
        ``>50K``.

    Raises:
        ValueError: if the file does not have 15 columns (naming the missing column, or the
            line and columns a short row lacks), has non-numeric values in a numeric column or
            labels other than ``<=50K`` / ``>50K`` (truncated or corrupt file); the message
            names the file.
    """
    try:
        df = pd.read_csv(path, header=None, names=COLUMNS, sep=",", skipinitialspace=True,
                         na_values="?", keep_default_na=False, comment="|",
                         skip_blank_lines=True, dtype=str, engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable Adult CSV file ({err}); the file is "
                         "truncated or corrupt") from err
    if df["income"].isna().any():
        raise ValueError(f"{path}: rows with fewer than 15 columns; the file is truncated or "
                         "corrupt")
    income = df["income"].str.rstrip(".")
    bad = ~income.isin(LABELS)
    if bad.any():
        _check_columns(path)  # a short row reads as an empty label: name its missing columns
        raise ValueError(f"{path}: unexpected labels {sorted(set(income[bad]))[:5]} (row "
                         f"{int(np.argmax(bad.to_numpy()))}); expected <=50K / >50K")
    df["income"] = income
    try:
        df[NUMERIC] = df[NUMERIC].astype(np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric value in a numeric column ({err}); the file "
                         "is corrupt") from err
    if df[NUMERIC].isna().any().any():
        raise ValueError(f"{path}: missing values in numeric columns; the file is corrupt")
    df[CATEGORICAL] = df[CATEGORICAL].fillna(MISSING)
    return df


class AdultDataModule(InMemoryDataModule):
    """UCI Adult as float feature vectors: 32,561 training records (minus the validation slice)
    and the official 16,281 test records; class 1 = ``>50K`` (24.1% of training records).

    Preprocessing (scikit-learn ``ColumnTransformer``) is fitted on the training part only,
    after the validation slice and any low-data subset are taken, then applied to validation
    and test: the 6 numeric columns are standardised (``StandardScaler``), the 8 categorical
    columns one-hot encoded (``OneHotEncoder(handle_unknown="ignore")``; ``?`` is its own
    category, categories unseen in training encode as all zeros). All 14 attributes are used,
    ``fnlwgt`` included. The base class's standardisation is off (``standardize = False``), so
    one-hot columns stay 0/1. ``input_shape`` is ``(n_features,)`` after fitting (108 on the
    full training split).

    Files: ``<data_dir>/adult/adult.data`` and ``adult.test``. With ``download=True`` and the
    files absent, ``hf_dataset`` is loaded from the Hugging Face hub with ``datasets`` (needs
    the network); it must have ``train`` and ``test`` splits with the 15 UCI columns (names
    compared after lower-casing and mapping ``.``/``_`` to ``-``).

    Args:
        val_size: validation slice of the training split (default 10%).
        hf_dataset: hub dataset id used only for ``download=True``.
        **kwargs: see :class:`~midl.data.base.InMemoryDataModule`.

    Raises:
        FileNotFoundError: when a file is missing, naming the folder searched.
        ValueError: when a file is truncated or corrupt, naming the file.
        RuntimeError: when the hub download fails (offline, or a dataset without the columns).
    """

    name = "UCI Adult"
    published_sizes = {"train": 32561, "test": 16281}
    num_classes = 2
    positive_class = 1  # >50K
    input_shape: tuple[int, ...] = (108,)
    standardize = False
    folder = "adult"
    files = ("adult.data", "adult.test")

    def __init__(self, val_size: int | float = 0.1, hf_dataset: str | None = None,
                 **kwargs) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.hf_dataset = hf_dataset
        self.frames: dict[str, pd.DataFrame] = {}
        self.preprocessor = None

    def _from_hub(self) -> dict[str, pd.DataFrame]:
        if not self.hf_dataset:
            raise self.missing(self.data_dir / self.folder, list(self.files),
                               "set data.hf_dataset to a Hugging Face hub dataset with train "
                               "and test splits (used with data.download=true)")
        try:
            import datasets

            ds = datasets.load_dataset(self.hf_dataset)
        except Exception as err:  # offline: ConnectionError, OfflineModeIsEnabled, ...
            raise RuntimeError(f"could not load {self.hf_dataset!r} from the Hugging Face hub "
                               f"({err!r}); put adult.data and adult.test in "
                               f"{self.data_dir / self.folder} instead") from err
        frames = {}
        for split in ("train", "test"):
            if split not in ds:
                raise RuntimeError(f"hub dataset {self.hf_dataset!r} has no {split!r} split "
                                   f"(splits: {list(ds)})")
            df = ds[split].to_pandas()
            df.columns = [c.lower().replace(".", "-").replace("_", "-") for c in df.columns]
            if set(COLUMNS) - set(df.columns):
                raise RuntimeError(f"hub dataset {self.hf_dataset!r} lacks columns "
                                   f"{sorted(set(COLUMNS) - set(df.columns))}")
            df = df[COLUMNS].copy()
            df[CATEGORICAL] = df[CATEGORICAL].astype(str).replace({"?": MISSING})
            df[NUMERIC] = df[NUMERIC].astype(np.float64)
            df["income"] = df["income"].astype(str).str.strip().str.rstrip(".")
            frames[split] = df
        return frames

    def load(self) -> Splits:
        """Read both files; ``x`` holds row ids into :attr:`frames`, turned into features by
        :meth:`fit_features` once the training part is known."""
        root = self.data_dir / self.folder
        if all((root / f).exists() for f in self.files):
            self.frames = {"train": read_adult_csv(root / self.files[0]),
                           "test": read_adult_csv(root / self.files[1])}
        elif self.download:
            self.frames = self._from_hub()
        else:
            raise self.missing(root, list(self.files),
                               "pass data.download=true with data.hf_dataset=<hub id> to load "
                               "it from the Hugging Face hub")
        ys = [torch.from_numpy((self.frames[s]["income"] == ">50K").to_numpy().astype(np.int64))
              for s in ("train", "test")]
        return Splits(torch.arange(len(ys[0])), ys[0], torch.arange(len(ys[1])), ys[1])

    def fit_features(self, x_train: Tensor, x_val: Tensor, x_test: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """Fit the ColumnTransformer on the training rows only; return float32 (N, F)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        features = NUMERIC + CATEGORICAL
        train, test = self.frames["train"][features], self.frames["test"][features]
        self.preprocessor = ColumnTransformer(
            [("numeric", StandardScaler(), NUMERIC),
             ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
              CATEGORICAL)])
        self.preprocessor.fit(train.iloc[x_train.numpy()])

        def encode(frame: pd.DataFrame, rows: Tensor) -> Tensor:
            return torch.from_numpy(
                self.preprocessor.transform(frame.iloc[rows.numpy()]).astype(np.float32))

        out = encode(train, x_train), encode(train, x_val), encode(test, x_test)
        self.input_shape = (out[0].shape[1],)
        return out

    def summary(self) -> dict[str, object]:
        out = super().summary()
        out["positive_class"] = ">50K"
        out["f1"] = "test/f1 is the F1 score of the positive class >50K"
        out["n_features"] = self.input_shape[0]
        return out
