"""How to install an optional part of backprop: the packages of one of its extras.

The package index holds an unrelated project that is also called ``backprop``, so a
hint never says ``pip install 'backprop[plot]'``: it names the extra's own packages,
read from this install's metadata (which ``pyproject.toml`` writes, so the list has one
owner), and the form that installs the extra from a checkout.
"""

from __future__ import annotations

DISTRIBUTION = "backprop"


def packages(extra: str) -> list[str]:
    """The requirement strings of ``extra`` (e.g. ``["matplotlib>=3.5"]``); [] when unknown."""
    from importlib import metadata  # only when a hint is needed: it costs ~0.1 s to import

    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return []
    found = []
    for line in requires:
        spec, _, marker = line.partition(";")
        if marker.replace(" ", "").replace("'", '"') == f'extra=="{extra}"':
            found.append(spec.strip())
    return found


def requirements(extra: str) -> str:
    """The extra's packages as pip arguments, quoted where the shell needs it."""
    return " ".join(f"'{n}'" if any(c in n for c in "<>=!~ ") else n for n in packages(extra))


def install_hint(extra: str) -> str:
    """``pip install 'matplotlib>=3.5' (or pip install -e '.[plot]' in the backprop checkout)``."""
    checkout = f"pip install -e '.[{extra}]' in the backprop checkout"
    names = requirements(extra)
    return f"pip install {names} (or {checkout})" if names else checkout
