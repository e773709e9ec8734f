"""URL converters restricting tile kinds and formats to the served ones."""


class TileKindConverter:
    """original, restored or mask."""

    regex = "original|restored|mask"

    def to_python(self, value: str) -> str:  # noqa: D102
        return value

    def to_url(self, value: str) -> str:  # noqa: D102
        return value


class TileFormatConverter:
    """jpeg, jpg or png."""

    regex = "jpeg|jpg|png"

    def to_python(self, value: str) -> str:  # noqa: D102
        return value

    def to_url(self, value: str) -> str:  # noqa: D102
        return value
