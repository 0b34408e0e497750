"""Reading studies from the trial store, ``render()`` and the command line."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from nas import cli
from nas.errors import NasError

DEFAULT_DIR = Path("dashboards")


class DashboardError(NasError):
    """A dashboard cannot be made from the given storage or study names."""


def _display_url(url: str) -> str:
    from nas.store import mask_url
    return mask_url(url)


def load(storage_url: str, studies: Sequence[str] | None = None) -> list[tuple[dict, list[dict]]]:
    """(study, trials) pairs from the store at ``storage_url``: the named studies in the
    given order, or all studies. Raises :class:`DashboardError` naming what is wrong."""
    url = str(storage_url)
    if "://" not in url and not Path(url).is_file():
        raise DashboardError(f"storage file {url!r} does not exist; pass the database a search "
                             "wrote (e.g. --storage nas.db) or a SQLAlchemy URL")
    try:
        from nas.store import TrialStore
        store = TrialStore(url, readonly=True)
        known = {s["name"]: s for s in store.studies()}
        if not known:
            raise DashboardError(f"storage {_display_url(url)!r} holds no studies; run a search first")
        wanted = list(studies) if studies else sorted(known)
        for name in wanted:
            if name not in known:
                from nas.registry import closest
                near = closest(name, list(known))
                raise DashboardError(f"unknown study {name!r} in {_display_url(url)!r}; "
                                     + (f"did you mean {', '.join(near)}? " if near else "")
                                     + f"known: {', '.join(sorted(known))}")
        from nas import baselines
        data = [({**known[n], "baselines": baselines.read(store, n)}, store.trials(n))
                for n in wanted]
        store.close()
        return data
    except NasError as e:
        raise DashboardError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any driver/schema error means "cannot read it"
        raise DashboardError(f"cannot read storage {_display_url(url)!r}: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; "
                             "pass a database written by nas.search") from None


def default_path(names: Sequence[str]) -> Path:
    """dashboards/<study>.html (several studies: their names joined by '+')."""
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", "+".join(names)).strip("._") or "dashboard"
    return DEFAULT_DIR / f"{stem[:120]}.html"


def render(storage_url: str, studies: Sequence[str] | None = None,
           out_path: str | Path | None = None) -> Path:
    """Write the dashboard of ``studies`` (default: all) in the store to ``out_path``
    (default dashboards/<study>.html) and return the path."""
    from nas.dashboard.html import build_page
    data = load(storage_url, studies)
    path = Path(out_path) if out_path else default_path([s["name"] for s, _ in data])
    text = build_page(data, _display_url(str(storage_url)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise DashboardError(f"cannot write {str(path)!r}: {e.strerror}; choose another -o path") from None
    return path


@cli.guarded
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m nas.dashboard --storage URL [--study NAME ...] [-o PATH]``."""
    p = cli.ArgumentParser(prog="python -m nas.dashboard",
                                description="Render a search's dashboard as one offline HTML page.")
    p.add_argument("--storage", required=True, help="SQLAlchemy URL or SQLite file of the search")
    p.add_argument("--study", action="extend", nargs="+", metavar="NAME",
                   help="studies to show; several are compared (default: all)")
    p.add_argument("-o", "--output", help="HTML file to write (default dashboards/<study>.html)")
    args = p.parse_args(argv)
    print(render(args.storage, args.study, args.output))
    return 0
