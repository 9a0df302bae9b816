"""The household wallet: a password-protected keystore, a library that speaks to a node only over
JSON-RPC (`rpc.client`), and the `gridchain wallet` commands built on it.

A wallet is an outside client of the chain, like a meter: it imports `primitives` and `rpc.client`
and never the node, runtime or pallets. Call indices, storage keys and value layouts all come from
the node's JSON metadata (`state_getMetadata`), so the wallet keeps working when the runtime adds
calls or reorders pallets. See docs/wallet.md.
"""
