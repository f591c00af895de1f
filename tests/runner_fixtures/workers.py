"""A worker that asks the database what time it is, the moment it is released."""


def stamp(conn, index):
    row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    return [index, row[0]]
