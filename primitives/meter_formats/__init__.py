"""Signed records of meters in the field: OCMF, SML/EDL40 and DLMS/COSEM general-signing.

`record` holds what every format parses into, `ecdsa` the keys and the signature check; one module
per format parses its bytes strictly. See docs/protocol.md for each format's signed bytes.
"""
