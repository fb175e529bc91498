"""Loopback fakes of the providers the hub talks to."""
