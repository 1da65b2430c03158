"""Parts of tests/benchmark.py: measuring tools and the existing port it compares against."""
