"""The HTTP server: a Falcon WSGI app served by waitress."""
