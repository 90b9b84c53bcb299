"""The web dashboard (`queuectl ui`): server.py builds and serves the app; see its docstring
for the rooms it is cut into."""
