"""The scenario language: a small C subset parsed into statements and run on a backend."""
