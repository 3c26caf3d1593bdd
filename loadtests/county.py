"""`python -m loadtests.county`: see `loadtests/locust_county.py`."""

from loadtests.locust_county import main

if __name__ == "__main__":
    raise SystemExit(main())
