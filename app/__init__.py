"""The web app: server-rendered hypermedia over the engine (no kernel logic here)."""
