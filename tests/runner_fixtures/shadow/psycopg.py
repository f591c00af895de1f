raise SystemExit("the workspace's psycopg.py was imported")
