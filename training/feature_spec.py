"""What validation decided about the features, for the pipeline, the ONNX export and the bundle alike.

The serving schema (every feature the API takes) can be wider than what the model uses: a constant column
stays in the schema, so clients keep sending the same instances, but the model ignores it. A categorical
column with more than ``max_categories`` levels is one-hot encoded on its most frequent levels only; the
rest are encoded as all-zero, like a category never seen in training.

ONNX input names: a column name is any text (``sepal length (cm)``, ``Unnamed: 0``, ``température``), while
ONNX names are identifiers (``[A-Za-z_][A-Za-z0-9_]*``). A name that already is one is kept; any other is
spelled with its ASCII letters and digits joined by ``_`` (accents dropped), prefixed with ``_`` when it would
start with a digit. The ONNX output names are never used, and a clash gets the first free ``_2``, ``_3``...
suffix, in column order: the mapping is deterministic, unique and stored in the bundle (``Feature.onnx_input``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from functions.common.bundle import LABEL_OUTPUT, PROBABILITIES_OUTPUT, VALUE_OUTPUT, FeatureType

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Za-z0-9]+")
OUTPUT_NAMES = frozenset({LABEL_OUTPUT, PROBABILITIES_OUTPUT, VALUE_OUTPUT})


def _spelling(name: str) -> str:
    if IDENTIFIER.fullmatch(name):
        return name
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spelled = "_".join(_WORD.findall(ascii_text))
    return spelled if spelled and not spelled[0].isdigit() else f"_{spelled}"


def onnx_input_names(features: Iterable[str]) -> dict[str, str]:
    """Feature name -> ONNX input name, as the module docstring says."""
    names = list(features)
    spelled = {name: _spelling(name) for name in names}
    taken = set(OUTPUT_NAMES)
    mapping: dict[str, str] = {}
    # Names kept as they are claim theirs first, so a valid name never changes because of another column.
    for name in sorted(names, key=lambda n: spelled[n] != n):
        candidate, suffix = spelled[name], 1
        while candidate in taken:
            suffix += 1
            candidate = f"{spelled[name]}_{suffix}"
        taken.add(candidate)
        mapping[name] = candidate
    return {name: mapping[name] for name in names}


@dataclass(frozen=True)
class FeatureSpec:
    # Every feature the API takes, in data order.
    types: dict[str, FeatureType]
    # Feature name -> ONNX input name, for every feature.
    onnx_inputs: dict[str, str]
    # Features the model ignores (constant in the training data); still inputs of the ONNX graph.
    ignored: frozenset[str] = frozenset()
    # High-cardinality categoricals: the levels the model encodes, most frequent first.
    capped: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, types: Mapping[str, FeatureType]) -> FeatureSpec:
        """Every feature used by the model, every category encoded."""
        return cls(dict(types), onnx_input_names(types))

    @property
    def model_types(self) -> dict[str, FeatureType]:
        """The features the model uses, in data order."""
        return {name: kind for name, kind in self.types.items() if name not in self.ignored}
