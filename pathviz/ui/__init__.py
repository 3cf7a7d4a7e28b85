"""The Streamlit app's views, one module per view, each exposing a ``*_ui()`` function.

``app.py`` is the entry and page layout; these modules draw widgets and figures. Nothing here
imports torch at module level (export imports it lazily inside its button handler), so the app
starts in about a second. Pure helpers that need no Streamlit session (URL parsing) live in
:mod:`pathviz.ui.urlstate` and are tested without a browser.
"""
