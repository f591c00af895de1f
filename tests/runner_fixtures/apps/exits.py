import sys

sys.exit("DATABASE_URL is not set")
