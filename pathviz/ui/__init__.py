"""Streamlit views of the app, one module per view; torch-free, so the app starts fast."""
