"""The one switch for how big the experiments are: ``ci``, ``book`` or ``paper``.

* ``ci`` -- seconds per chapter; used by the tests (nbval) so CI stays fast.
* ``book`` -- minutes per chapter; the default, used when the book is built.
* ``paper`` -- the paper's own settings (trial counts, grids); hours on a CPU.

The scale comes from the ``scale`` argument when given, otherwise from the
``LTHBOOK_SCALE`` environment variable, otherwise ``book``.
"""

from __future__ import annotations

import os
from typing import Mapping, TypeVar

SCALES: tuple[str, ...] = ("ci", "book", "paper")
ENV_VAR = "LTHBOOK_SCALE"
DEFAULT_SCALE = "book"

T = TypeVar("T")


def get_scale(scale: str | None = None) -> str:
    """Return the active scale name, validating it.

    Parameters
    ----------
    scale:
        ``"ci"``, ``"book"`` or ``"paper"``; ``None`` reads ``$LTHBOOK_SCALE``
        (default ``"book"``).
    """
    source = "scale"
    if scale is None:
        scale = os.environ.get(ENV_VAR, DEFAULT_SCALE)
        source = f"${ENV_VAR}"
    if scale not in SCALES:
        raise ValueError(f"{source} must be one of {', '.join(SCALES)}; got {scale!r}")
    return scale


def pick(options: Mapping[str, T], scale: str | None = None) -> T:
    """Pick the entry of ``options`` (keyed by scale name) for the active scale."""
    missing = [s for s in SCALES if s not in options]
    if missing:
        raise ValueError(f"options must define every scale; missing {missing}")
    return options[get_scale(scale)]


SEED_ENV_VAR = "LTHBOOK_SEED"
#: Largest base seed every figure accepts: Figure 7 seeds torch with ``seed * 1000 + level``,
#: which must stay below 2**63 (``torch.manual_seed`` overflows above about 1.8e16).
MAX_SEED = 2**48 - 1


def get_seed(seed: int | None = None) -> int:
    """Base seed of the chapters' experiments: ``seed`` if given, else ``$LTHBOOK_SEED``, else 0.

    Every random draw in a chapter is offset by this number, so the whole book
    can be re-run on fresh randomness (the claim checks must hold for any seed).
    """
    source = "seed"
    if seed is None:
        raw = os.environ.get(SEED_ENV_VAR, "0")
        source = f"${SEED_ENV_VAR}"
        try:
            seed = int(raw)
        except ValueError:
            raise ValueError(f"{source} must be a non-negative integer; got {raw!r}") from None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{source} must be an integer in [0, {MAX_SEED}] (2**48 - 1); got {seed!r}")
    return seed
