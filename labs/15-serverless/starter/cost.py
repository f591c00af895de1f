"""What a month costs: functions billed per request against servers billed per month.

Every function gets the price table as its last argument, a dict like this one (the
checker passes many, with other numbers):

    {
        "price_per_million_requests": 0.20,   # dollars per 1,000,000 invocations
        "price_per_gb_second": 0.0000166667,  # dollars per GB of memory for one second
        "billing_granularity_ms": 1,          # each duration is rounded UP to this
        "free_requests": 1_000_000,           # free each month
        "free_gb_seconds": 400_000,           # free each month
        "server_monthly_price": 70.0,         # dollars per server per month
        "server_requests_per_second": 150,    # what one server serves at steady load
        "min_servers": 2,                     # never fewer, for redundancy
    }

A month is 30 days (2,592,000 seconds); 1 GB is 1,024 MB.
"""

SECONDS_PER_MONTH = 30 * 24 * 3600


def monthly_cost_functions(requests_per_month, avg_duration_ms, memory_mb, prices):
    """Dollars a month for a function invoked this often, this long, with this memory."""
    seconds = requests_per_month * avg_duration_ms / 1000
    return seconds * memory_mb / 1024 * prices["price_per_gb_second"]


def monthly_cost_server(requests_per_month, prices):
    """Dollars a month for the servers that serve this traffic at a steady rate."""
    return prices["min_servers"] * prices["server_monthly_price"]


def break_even_requests(avg_duration_ms, memory_mb, prices):
    """The fewest requests a month at which functions cost at least as much as servers."""
    return None
