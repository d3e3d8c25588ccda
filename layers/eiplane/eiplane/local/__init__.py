"""The embedded AWS: the project on moto, in-process or as a loopback server."""
