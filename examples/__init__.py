"""Example libraries and adapters: ``mylib`` (the seed's thread-hostile library) and its adapter."""
