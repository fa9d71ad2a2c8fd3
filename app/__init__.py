"""The application: sources, the real-time engine, sinks and the front ends (GUI, headless)."""
