"""Type stub of the optional C accelerator (``_speedups.c``)."""

from collections.abc import Callable, Sequence

class Scanner:
    def __init__(
        self,
        granted: frozenset[str],
        js_types: frozenset[bytes],
        category_rank: dict[str, int],
        hint_words: Sequence[bytes],
        anchors: Sequence[bytes],
        script_url: Callable[[bytes], str | None],
        element_url: Callable[[bytes], str | None],
        inline_category: Callable[[bytes], str | None],
    ) -> None: ...
    def run(
        self,
        data: bytes,
        pos: int,
        emit: int,
        out: list[bytes | memoryview],
        stats: dict[str, int],
        edits: list[tuple[int, int, bytes]] | None,
        base: int,
        tag_cap: int,
        script_cap: int,
        /,
    ) -> tuple[int, int, int, int]: ...

class Literals:
    def __init__(self, words: Sequence[bytes]) -> None: ...
    def finditer(self, text: bytes, /) -> list[tuple[int, int]]: ...

def script_end(data: bytes, pos: int, esc: int, /) -> tuple[int, int]: ...
def tables() -> dict[str, object]: ...
