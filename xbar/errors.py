"""Exceptions raised by xbar.

Every error a user can cause (a bad file, a bad option, a bad value) is an
:class:`XbarError`; the command line turns it into one line on stderr and exit
code 2. Anything else escaping is a bug in xbar.
"""


class XbarError(Exception):
    """A problem with the user's input: files, options or values."""


class ConfigError(XbarError):
    """An invalid hardware configuration (unknown key, wrong type, impossible value)."""


class WeightsFormatError(XbarError):
    """A weights file that is not a valid xbar-network HDF5 file."""


class DataError(XbarError):
    """A dataset that cannot be found, read or verified."""
