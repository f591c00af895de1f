raise SystemExit("the workspace's redis.py was imported")
