"""What the test modules share: builders, collectors, servers, generators.

No test module imports another; what two of them need lives here.
"""
