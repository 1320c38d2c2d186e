"""Entry point of SafeSeek Explorer: `streamlit run explorer/app.py [-- --model PATH --device cpu]`.

Builds the page navigation (the URL path names the page: /playground, /circuit, ...), takes a session's starting
state from the query string (so a shared link reopens the same view) and writes the state back to it after every
run. The page itself is never a query parameter: with st.navigation that made every link open with Streamlit's
"Page not found" dialog, and every page change add a second history entry.
"""

from __future__ import annotations

import argparse
import logging
import sys

import streamlit as st

from explorer import access, nav, state, ui
from explorer.views import circuit, compare, discover, home, model, playground, report, tour, tune

PAGES = [
    (home.render, "Start", "start", ":material/home:"),
    (tour.render, "Guided tour", "tour", ":material/school:"),
    (playground.render, "Playground", "playground", ":material/toggle_on:"),
    (circuit.render, "Circuit", "circuit", ":material/grid_on:"),
    (discover.render, "Discover", "discover", ":material/search:"),
    (compare.render, "Compare", "compare", ":material/leaderboard:"),
    (report.render, "Report", "report", ":material/assignment:"),
    (tune.render, "Tune", "tune", ":material/tune:"),
    (model.render, "Model", "model", ":material/memory:"),
]
# Streamlit's captions and widget help are a translucent grey (about 3.9:1 on white): darkened to pass WCAG AA
# (4.5:1). Less empty space above the page links.
BASE_CSS = ("<style>[data-testid='stCaptionContainer'], [data-testid='stWidgetLabel'] p, "
            "[data-testid='stMetricLabel'] p { color: #4a4c57; } "
            "[data-testid='stMainBlockContainer'] { padding-top: 3.5rem; }</style>")
# Presenter mode: everything a room reads from a projector is larger; Streamlit sizes its text in rem.
PRESENTER_CSS = ("<style>html { font-size: 22px; } [data-testid='stHeader'] { display: none; } "
                 "[data-testid='stMainBlockContainer'] { padding-top: 1.5rem; }</style>")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The app's own options (after `--` on the streamlit command line); anything else is ignored."""
    parser = argparse.ArgumentParser(prog="explorer/app.py", add_help=False)
    parser.add_argument("--model", default=state.DEFAULT_MODEL,
                        help="model a new session starts with: organism, aligned, a checkpoint folder or a hub id")
    parser.add_argument("--device", default="auto", help="auto (GPU if visible), cpu or cuda")
    return parser.parse_known_args(argv)[0]


@st.cache_resource
def _start_up() -> int:
    """Once per server process: remove scratch folders left by sessions that ended without cleanup."""
    logging.basicConfig()
    access.log.setLevel(logging.INFO)
    removed = access.remove_stale()
    access.log.info("removed %d stale scratch folders under %s", removed, access.scratch_root())
    return removed
def _header(slot, present: bool) -> None:
    """The page links (carrying the demo state) and the status line, in one fixed slot at the top."""
    query = state.to_query(state.demo())
    with slot.container():
        if not present:
            with st.container(horizontal=True, gap="small"):
                for page in nav.register(PAGES):
                    st.page_link(page, query_params=query)
            st.caption(ui.status_line())


def main() -> None:
    st.set_page_config(page_title="SafeSeek Explorer", page_icon=":material/policy:", layout="wide")
    _start_up()
    args = parse_args(sys.argv[1:])
    query = dict(st.query_params.to_dict())
    first_run = "demo" not in st.session_state
    state.init_session(query, default_model=args.model)
    st.session_state.setdefault("device", args.device)
    present = state.demo().present
    pages = nav.register(PAGES)
    # Streamlit's own navigation drops the query string on every page change, and the app then had to write it back:
    # two history entries per page. Our links carry the query string, so a page change is one entry.
    navigation = st.navigation(pages, position="hidden")
    old_page = query.get("page")  # links made before the page moved into the URL path: /?page=circuit
    known_pages = [url for _, _, url, _ in PAGES]
    if first_run and old_page in known_pages and not navigation.url_path:
        nav.go(old_page)
    elif first_run and old_page:
        st.session_state.url_problems.append(f"unknown page {old_page!r} in the link; use one of "
                                             f"{', '.join(known_pages)}")
    st.html(BASE_CSS + (PRESENTER_CSS if present else ""))
    for problem in st.session_state.url_problems:
        st.warning(f"Link: {access.md(problem)}")
    st.session_state.url_problems = []  # shown once
    # Drawn at once with the state the callbacks left, and redrawn last with what the page loaded: the line never
    # disappears during a rerun, so nothing below it moves under the pointer.
    header = st.empty()
    _header(header, present)
    try:
        navigation.run()
    except Exception as e:  # st.stop() / st.rerun() are not Exceptions: they pass through
        if access.is_admin():
            raise  # the admin sees Streamlit's traceback
        st.error(f"Something went wrong ({access.md(access.public_message(e))}); the details are in the server log.")
        access.log.exception("page %s failed", navigation.url_path)
    finally:
        _header(header, present)
        # Also after st.stop() in a page: the URL always shows what the page shows.
        query = state.to_query(state.demo())
        if dict(st.query_params.to_dict()) != query:
            st.query_params.from_dict(query)


if __name__ == "__main__":
    main()
