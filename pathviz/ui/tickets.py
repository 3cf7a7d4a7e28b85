"""The Tickets view: retrain the support at an iteration with its controls, and compare them.

Torch-free (reads ``pathviz.tickets``); retraining runs in a background process.
"""

from __future__ import annotations

import pathlib

import streamlit as st


def tickets_ui(run_dir: pathlib.Path, run_name: str, iteration: int | None) -> None:
    """Draw the Tickets view of run ``run_name`` (folder ``run_dir``) at ``iteration``."""
    st.info("The Tickets view is being built.")
