"""hashfed for python-threatexchange: a SignalExchangeAPI that reads a hashfed node's feed.

hashfed_pytx.node talks to the node (standard library only); hashfed_pytx.exchange is the pytx
exchange and needs threatexchange 1.2.16, imported only when that module is.
"""
