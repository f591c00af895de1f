import json

import helper
import psycopg


def where(conn):
    conn.execute("SELECT 1")
    return {
        "json": json.__file__,
        "psycopg": psycopg.__file__,
        "helper": helper.double(21),
        "dumps": json.dumps([1]),
    }
