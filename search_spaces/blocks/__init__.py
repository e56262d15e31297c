"""Block types (operators): one module per operator holds all MobileNAS knows about it; the
registry is :mod:`search_spaces.blocks.registry`."""
