"""SafeSeek Explorer: the Streamlit app that shows, toggles and exports safety circuits (run explorer/app.py)."""
