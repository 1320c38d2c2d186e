"""The app's pages as st.Page objects, so any page can link to another (buttons, page links) without importing it."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from explorer import state

_PAGES: dict[str, st.Page] = {}


def register(pages: list[tuple[Callable[[], None], str, str, str]]) -> list[st.Page]:
    """st.Page objects for (render, title, url path, icon) rows; the first row is the default page (the URL "/")."""
    if not _PAGES:
        for index, (render, title, url, icon) in enumerate(pages):
            _PAGES[url] = st.Page(render, title=title, url_path=url, icon=icon, default=index == 0)
    return list(_PAGES.values())


def page(url: str) -> st.Page:
    return _PAGES[url]


def go(url: str) -> None:
    """Switch to another page; the query string (the demo state) travels with it."""
    st.switch_page(_PAGES[url], query_params=state.to_query(state.demo()))
