"""On-demand benchmarks (never run by CI): the protocol-core micro-benchmarks, the load tool
(``python -m benchmarks.load``) and the Myelin-versus-Synapse runner (``benchmarks/compare.py``).
"""
