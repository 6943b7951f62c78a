"""Exceptions raised by xbar.

Every error a user can cause (a bad file, a bad option, a bad value) is an
:class:`XbarError`; the command line turns it into one line on stderr and exit
code 2. Anything else escaping is a bug in xbar.
"""

HDF5_ERRORS: tuple[type[Exception], ...] = (OSError, RuntimeError, KeyError, ValueError, TypeError)
"""What h5py raises for a damaged or unexpected file (fuzzing saw all five; RuntimeError is most HDF5
errors, UnicodeDecodeError is a ValueError). Caught only around h5py calls, never around xbar's own code,
and turned into an :class:`XbarError` naming the file."""


class XbarError(Exception):
    """A problem with the user's input: files, options or values."""


class ConfigError(XbarError):
    """An invalid hardware configuration (unknown key, wrong type, impossible value)."""


class WeightsFormatError(XbarError):
    """A weights file that is not a valid xbar-network HDF5 file."""


class DataError(XbarError):
    """A dataset that cannot be found, read or verified."""
