"""The health verifier: checks that return :class:`deployer.model.Measurement` values.

Checks never raise for what they measure; "could not measure" (Error) is kept
apart from "measured bad" (Failed).
"""
