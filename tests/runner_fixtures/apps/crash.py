print("about to fail", flush=True)
raise RuntimeError("no config")
