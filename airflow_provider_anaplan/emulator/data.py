"""Model data held by the emulator's task engine, and the content of uploaded and exported files.

A model's data is a set of lists (items with a code, a name, a parent and typed properties) and modules (numeric or
text line items over a tuple of list dimensions). File content is kept chunk by chunk, in memory or spooled to a
directory, so that a large upload never has to sit in one Python object.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NUMBER = "NUMBER"
TEXT = "TEXT"


@dataclass
class ListItem:
    code: str
    name: str
    parent: str = ""  # the key of the parent item in the list's parent list (or this list), "" for a top-level item
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.code or self.name


@dataclass
class ModelList:
    id: str
    name: str
    parent_list: str | None = None  # the list parents come from; None: parents are items of this list
    properties: dict[str, str] = field(default_factory=dict)  # property name -> NUMBER | TEXT
    defaults: dict[str, Any] = field(default_factory=dict)  # property values of newly created items
    items: dict[str, ListItem] = field(default_factory=dict)  # by key (code, or name when there is no code)

    def lookup(self) -> dict[str, str]:
        """Item keys by code and by name, for matching source values to items."""
        out: dict[str, str] = {}
        for item in self.items.values():
            out.setdefault(item.name, item.key)
            if item.code:
                out[item.code] = item.key
        return out


@dataclass
class Module:
    id: str
    name: str
    dimensions: list[str]  # list names, in order
    line_items: dict[str, str]  # line item name -> NUMBER | TEXT
    cells: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)  # item keys -> line item -> value


@dataclass
class ModelData:
    lists: dict[str, ModelList] = field(default_factory=dict)  # by name
    modules: dict[str, Module] = field(default_factory=dict)  # by name

    def delete_items(self, list_name: str, keys: set[str]) -> None:
        """Remove items from a list together with the module cells that refer to them."""
        model_list = self.lists[list_name]
        for key in keys:
            model_list.items.pop(key, None)
        for module in self.modules.values():
            positions = [i for i, dim in enumerate(module.dimensions) if dim == list_name]
            if positions:
                module.cells = {
                    coord: values
                    for coord, values in module.cells.items()
                    if not any(coord[i] in keys for i in positions)
                }


def model_data_from_seed(entry: dict[str, Any]) -> ModelData:
    """Build one model's data from its ``seed_data.json`` entry (``lists`` and ``modules``)."""
    data = ModelData()
    for raw in entry.get("lists", []):
        model_list = ModelList(
            id=raw["id"],
            name=raw["name"],
            parent_list=raw.get("parentList"),
            properties=dict(raw.get("properties", {})),
            defaults=dict(raw.get("defaults", {})),
        )
        for item in raw.get("items", []):
            properties = {**model_list.defaults, **item.get("properties", {})}
            new = ListItem(item.get("code", ""), item["name"], item.get("parent", ""), properties)
            model_list.items[new.key] = new
        data.lists[model_list.name] = model_list
    for raw in entry.get("modules", []):
        module = Module(raw["id"], raw["name"], list(raw["dimensions"]), dict(raw["lineItems"]))
        for cell in raw.get("cells", []):
            module.cells[tuple(cell["at"])] = dict(cell["values"])
        data.modules[module.name] = module
    return data


@dataclass
class Deferred:
    """A chunk kept as it was uploaded (gzip), with the function that inflates it when it is first read."""

    stored: bytes | Path
    inflate: Callable[[bytes], bytes]


class ChunkStore:
    """File content per (model id, file id) as numbered chunks, in memory or as files under ``spool_dir``.

    A chunk put with ``inflate`` is kept compressed and inflated only when first read (then kept inflated).
    """

    def __init__(self, spool_dir: str | Path | None = None) -> None:
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[tuple[str, str], dict[int, bytes | Path | Deferred]] = {}

    def indexes(self, model_id: str, file_id: str) -> list[int]:
        return sorted(self._files.get((model_id, file_id), {}))

    def has_content(self, model_id: str, file_id: str) -> bool:
        return bool(self._files.get((model_id, file_id)))

    def put(
        self, model_id: str, file_id: str, index: int, data: bytes, inflate: Callable[[bytes], bytes] | None = None
    ) -> None:
        """Keep a chunk; with ``inflate``, ``data`` is kept as given and inflated by it when first read."""
        chunks = self._files.setdefault((model_id, file_id), {})
        self._release(chunks.pop(index, None))
        kept = self._keep(data)
        chunks[index] = Deferred(kept, inflate) if inflate is not None else kept

    def read(self, model_id: str, file_id: str, index: int) -> bytes | None:
        """A chunk's content (a deferred chunk is inflated now, and kept inflated; ``inflate`` may raise)."""
        chunks = self._files.get((model_id, file_id), {})
        stored = chunks.get(index)
        if stored is None:
            return None
        if isinstance(stored, Deferred):
            data = stored.inflate(self._load(stored.stored))
            if chunks.get(index) is stored:
                self._release(stored.stored)
                chunks[index] = self._keep(data)
            return data
        return self._load(stored)

    @staticmethod
    def _load(stored: bytes | Path) -> bytes:
        return stored.read_bytes() if isinstance(stored, Path) else stored

    def iter_chunks(self, model_id: str, file_id: str) -> Iterator[bytes]:
        """The chunks in index order, read one at a time."""
        for index in self.indexes(model_id, file_id):
            data = self.read(model_id, file_id, index)
            if data is not None:
                yield data

    def size(self, model_id: str, file_id: str) -> int:
        return sum(len(self.read(model_id, file_id, i) or b"") for i in self.indexes(model_id, file_id))

    def replace(self, model_id: str, file_id: str, chunks: list[bytes]) -> None:
        """Make ``chunks`` the whole content of the file (an export's output)."""
        self.clear(model_id, file_id)
        self._files[(model_id, file_id)] = {i: self._keep(c) for i, c in enumerate(chunks)}

    def clear(self, model_id: str, file_id: str) -> None:
        for stored in self._files.pop((model_id, file_id), {}).values():
            self._release(stored)

    def _keep(self, data: bytes) -> bytes | Path:
        if self.spool_dir is None:
            return data
        path = self.spool_dir / f"{uuid.uuid4().hex}.chunk"
        path.write_bytes(data)
        return path

    @staticmethod
    def _release(stored: bytes | Path | Deferred | None) -> None:
        if isinstance(stored, Deferred):
            stored = stored.stored
        if isinstance(stored, Path):
            stored.unlink(missing_ok=True)
