"""The one error a scenario can raise, located so an editor can point at it."""


class ScenarioError(Exception):
    """A scenario the engine cannot parse or run, at the user's line and column (1-based).

    Columns count characters, a tab being one, as pycparser counts them.
    """

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(line, col, message)
        self.line = line
        self.col = col
        self.message = message

    def __str__(self) -> str:
        return f"line {self.line}, column {self.col}: {self.message}"
