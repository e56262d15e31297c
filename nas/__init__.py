"""Global search: space sampling, strategies, rewards, search loop, Ray Tune driver."""
