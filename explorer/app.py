"""Entry point of SafeSeek Explorer: `streamlit run explorer/app.py [-- --model PATH --device cpu]`.

Builds the page navigation, takes a session's starting state from the URL (so a shared link reopens the same
view) and writes the state back to the URL after every run.
"""

from __future__ import annotations

import argparse
import logging
import sys

import streamlit as st

from explorer import access, state, ui
from explorer.views import circuit, compare, discover, model, playground, report, tour, tune

PAGES = [
    (model.render, "Model", "model", ":material/memory:"),
    (discover.render, "Discover", "discover", ":material/search:"),
    (circuit.render, "Circuit", "circuit", ":material/grid_on:"),
    (playground.render, "Playground", "playground", ":material/toggle_on:"),
    (compare.render, "Compare", "compare", ":material/leaderboard:"),
    (report.render, "Report", "report", ":material/assignment:"),
    (tour.render, "Guided tour", "tour", ":material/school:"),
    (tune.render, "Tune", "tune", ":material/tune:"),
]


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


def main() -> None:
    st.set_page_config(page_title="SafeSeek Explorer", page_icon=":material/policy:", layout="wide")
    _start_up()
    args = parse_args(sys.argv[1:])
    names = tuple(url for _, _, url, _ in PAGES)
    state.init_session(dict(st.query_params.to_dict()), names, default_model=args.model)
    st.session_state.setdefault("device", args.device)
    start = st.session_state.setdefault("start_page", state.demo().page)
    navigation = st.navigation(
        [st.Page(render, title=title, url_path=url, icon=icon, default=url == start)
         for render, title, url, icon in PAGES],
        position="top",
    )
    state.update(page=navigation.url_path or start)  # the default page's url_path is ""
    for problem in st.session_state.url_problems:
        st.warning(f"Link: {access.md(problem)}")
    st.session_state.url_problems = []  # shown once
    header = st.empty()
    try:
        navigation.run()
    except Exception as e:  # st.stop() / st.rerun() are not Exceptions: they pass through
        if access.is_admin():
            raise  # the admin sees Streamlit's traceback
        st.error(f"Something went wrong ({access.md(access.public_message(e))}); the details are in the server log.")
        access.log.exception("page %s failed", navigation.url_path)
    finally:
        header.caption(ui.status_line())  # drawn last: it shows what the page loaded
        # Also after st.stop() in a page: the URL always shows what the page shows.
        query = state.to_query(state.demo())
        if dict(st.query_params.to_dict()) != query:
            st.query_params.from_dict(query)


if __name__ == "__main__":
    main()
