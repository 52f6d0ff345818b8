"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (file, field, name, option): never shown with a traceback.

    The message must say where (file/line/field/option) and what was expected.
    """

    exit_code = 2


# The command ran and wrote its results, but what it measured failed: `run` when no request
# succeeded, `validate` when a corpus file was invalid. (2: a user mistake, nothing ran;
# 130/143: interrupted, see ``interrupts``.)
EXIT_INCOMPLETE = 3
