raise SystemExit("the workspace's sdtutor.py was imported")
