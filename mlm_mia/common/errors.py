"""The one exception type the scripts turn into a clear message and a non-zero exit."""


class InputError(Exception):
    """Bad user input: a missing file, wrong columns, too few patients, ...

    The message names the file (or flag) at fault and says how to fix it.
    """
