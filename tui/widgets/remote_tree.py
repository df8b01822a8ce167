"""A lazily loaded tree of one connection's folders: nothing is listed until a folder opens.

Shaped for slow, rate-limited platforms (as harlequin's catalog is): an opening folder shows a
"loading…" child while its listing runs in a worker of this widget (so the listing dies with
the tree, never with a job), a listing that fails says why on the folder that failed, and
listings are kept until the user refreshes, so opening a folder twice costs one API call.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode, UnknownNodeID
from textual.worker import Worker

from core.connectors.base import Connector, ConnectorError, Entry
from core.paths import join
from tui.widgets.format import plain, printable, size

LOADING = "loading…"


@dataclass(frozen=True)
class Item:
    """What a node stands for: an entry at a path ('' is the root), or a note about a folder
    (its loading placeholder, its error, that it is empty)."""

    path: str
    entry: Entry | None = None  # None for the root and for notes
    note: str = ""  # "loading", "error", "empty"; "" for a real file or folder

    @property
    def is_folder(self) -> bool:
        return not self.note and (self.entry is None or self.entry.is_dir)


def _order(entry: Entry) -> tuple[bool, str]:
    """Folders first, then by name as people read it."""
    return not entry.is_dir, entry.name.casefold()


def _label(entry: Entry) -> Text:
    """A listed name as drawn: printable (a name can hold an escape sequence)."""
    name = printable(entry.name)
    if entry.skip_reason:
        return Text.assemble(name, (f"  (skipped: {printable(entry.skip_reason)})", "dim"))
    if entry.is_dir:
        return Text(name, style="bold")
    return Text.assemble(name, (f"  {size(entry.size)}", "dim"))


class RemoteTree(Tree[Item]):
    """One connection's folders, listed through its connector one folder at a time."""

    def __init__(self, connector: Connector, label: str, *, id: str | None = None) -> None:
        super().__init__(plain(label, style="bold"), data=Item(""), id=id)
        self.connector = connector
        self.listings: dict[str, list[Entry]] = {}  # folder path -> its entries, as listed
        self._loading: dict[str, Worker[None]] = {}  # folder path -> its listing in flight
        self._filtered: TreeNode[Item] | None = None  # the folder the filter narrows now
        self.filter_text = ""

    # -- listing ----------------------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Item]) -> None:
        item = event.node.data
        if item is not None and item.is_folder and item.path not in self.listings:
            self._load(event.node)

    def _load(self, node: TreeNode[Item]) -> Worker[None]:
        """List the folder in a worker, with a placeholder child until it answers."""
        assert node.data is not None
        path = node.data.path
        if path not in self._loading:
            node.remove_children()
            node.add_leaf(Text(LOADING, style="italic dim"), Item(path, note="loading"))
            self._loading[path] = self.run_worker(self._list(node, path), group="listing",
                                                  name=f"list /{path}")
        return self._loading[path]

    async def _list(self, node: TreeNode[Item], path: str) -> None:
        try:
            entries = await self.connector.list_dir(path)
        except ConnectorError as exc:
            node.remove_children()
            node.add_leaf(plain(f"⚠ cannot list: {exc}", style="bold red"),
                          Item(path, note="error"))
            return
        finally:
            self._loading.pop(path, None)
        self.listings[path] = sorted(entries, key=_order)
        self._fill(node, self.filter_text if node is self._filtered else "")

    def _fill(self, node: TreeNode[Item], text: str) -> None:
        """Show the folder's listed entries whose names contain `text` (any case)."""
        assert node.data is not None
        path = node.data.path
        wanted = text.casefold()
        shown = [e for e in self.listings[path] if wanted in e.name.casefold()]
        node.remove_children()
        for entry in shown:
            item = Item(join(path, entry.name), entry)
            if entry.is_dir and not entry.skip_reason:
                node.add(_label(entry), item)
            else:
                node.add_leaf(_label(entry), item)
        if not shown:
            note = f"(no names contain “{text}”)" if text else "(empty folder)"
            node.add_leaf(plain(note, style="italic dim"), Item(path, note="empty"))

    async def expand_path(self, path: str) -> TreeNode[Item]:
        """Open every folder down to `path` ('' is the root), each once it is listed, as a
        user would: for scripts that show a folder (screenshots, tests)."""
        node = self.root
        for depth, name in enumerate([""] + (path.split("/") if path else [])):
            if depth:
                found = next((c for c in node.children if c.data and c.data.is_folder
                              and c.data.entry and c.data.entry.name == name), None)
                if found is None:
                    raise LookupError(f"/{path}: no folder {name!r} is listed here")
                node = found
            assert node.data is not None
            if node.data.path not in self.listings:
                await self._load(node).wait()
            node.expand()
        return node

    # -- the user's folder ------------------------------------------------------------------

    def folder_node(self, node: TreeNode[Item] | None = None) -> TreeNode[Item]:
        """The folder a node is in: itself when it is a folder, else the folder holding it."""
        node = node or self.cursor_node or self.root
        while node.parent is not None and not (node.data and node.data.is_folder):
            node = node.parent
        return node

    def refresh_folder(self) -> None:
        """List the folder at the cursor again, from the platform (its cache is dropped)."""
        node = self.folder_node()
        assert node.data is not None
        forget = getattr(self.connector, "forget", None)
        if callable(forget):
            forget()
        path = node.data.path
        prefix = f"{path}/" if path else ""
        for known in [p for p in self.listings if p == path or p.startswith(prefix)]:
            del self.listings[known]
        if node.is_expanded:
            self._load(node)
        else:
            node.remove_children()

    def filter_folder(self, text: str, folder: TreeNode[Item]) -> None:
        """Narrow the listed children of `folder` to names containing `text`; the folder
        narrowed before gets all its children back."""
        if self._filtered is not None and self._filtered is not folder:
            self._restore(self._filtered)
        self._filtered, self.filter_text = folder, text
        assert folder.data is not None
        if folder.data.path in self.listings:
            self._fill(folder, text)
            folder.expand()
        self.move_cursor(folder)

    def _restore(self, folder: TreeNode[Item]) -> None:
        try:
            self.get_node_by_id(folder.id)
        except UnknownNodeID:
            return  # gone with a refresh of a folder above it
        assert folder.data is not None
        if folder.data.path in self.listings:
            self._fill(folder, "")
