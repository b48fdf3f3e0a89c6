"""stepwire-codegen: the contract in, typed Python codecs out."""

__version__ = "0.1.0"
