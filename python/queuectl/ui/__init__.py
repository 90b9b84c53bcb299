"""The web dashboard (`queuectl ui`): see server.py."""
