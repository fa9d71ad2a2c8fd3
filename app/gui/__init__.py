"""PySide6 desktop front end. Drives the engine; holds no pipeline logic of its own."""
