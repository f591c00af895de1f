"""Cache-Control for what the web server sends, by path."""


def cache_control(path):
    """The Cache-Control header for a response to GET `path`."""
    return "public, max-age=3600"
