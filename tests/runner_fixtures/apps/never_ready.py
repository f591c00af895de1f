import time

print("thinking about it", flush=True)
time.sleep(1000)
