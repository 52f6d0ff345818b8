"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (file, field, name, option): never shown with a traceback.

    The message must say where (file/line/field/option) and what was expected.
    """

    exit_code = 2
