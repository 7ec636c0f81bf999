"""The GCS service's placement-group handlers (mixed into GcsService; run under its lock).

    driver ─CreatePlacementGroup─► node ─forwarded─► _on_create_group ─► groups.create
        ◄─PlacementGroupCreated(error, warning)─   (warning: it cannot be placed as the cluster is)
    groups' instructions ─► _groups_do:  Prepare ─PrepareBundles─► the chosen nodes
                                         ◄─BundlesPrepared─ each ─► groups.prepared
                                         Commit ─CommitBundles─► each;  Created ─► its actors placed
                                         Return ─ReturnBundles─► each; its actors end
    RemovePlacementGroup ─► groups.remove ─► Ack;  GetPlacementGroup ─► PlacementGroupInfo(records)

The decisions are groups.py's (pure); this file only sends what they say. An actor created
in a group waits (`_in_group`) until the group is CREATED, then goes to its bundle's node
(the first bundle's for index -1); it ends when the group lets go of its bundles: for good
when the group was removed, or to restart (within its max_restarts) when the group lost a
node and is placed again.
"""
from __future__ import annotations

import logging
from typing import Any

from .._protocol import messages as m
from . import groups as grp

log = logging.getLogger("raylite.gcs")


class GroupHandlers:
    tables: Any
    ep: Any
    _by_id: dict
    _in_group: dict
    _tell: Any
    _kill: Any
    _place: Any

    # -- placement groups (groups.py decides; this carries out) -------------------------
    def _alive_nodes(self) -> list:
        return [n for n in self.tables.nodes.values() if n.alive]

    def _on_create_group(self, node: _Node, msg: m.CreatePlacementGroup) -> None:
        error, out = self.tables.groups.create(msg.spec, self._alive_nodes())
        warning = next((x.text for x in out if type(x) is grp.Warn), None)
        self.ep.reply(node.conn, msg, m.PlacementGroupCreated(msg.req, error, warning))
        self._groups_do([x for x in out if type(x) is not grp.Warn])  # its creator prints it

    def _on_remove_group(self, node: _Node, msg: m.RemovePlacementGroup) -> None:
        groups = self.tables.groups
        entry = groups.groups.get(msg.group_id)
        if entry is None:
            self.ep.reply(node.conn, msg, m.Ack(msg.req, f"no placement group has the id "
                                                         f"{msg.group_id.hex()}"))
            return
        self._groups_do(groups.remove(msg.group_id, self._alive_nodes()))
        self.ep.reply(node.conn, msg, m.Ack(msg.req))  # after: its nodes hear of it first

    def _on_get_group(self, node: _Node, msg: m.GetPlacementGroup) -> None:
        groups = self.tables.groups
        if msg.group_id is None and msg.name is None:
            records = groups.state()
        else:
            entry = groups.lookup(msg.group_id, msg.name, msg.namespace or "")
            records = tuple(r for r in groups.state()
                            if entry is not None and r.placement_group_id == entry.spec.group_id.hex())
        self.ep.reply(node.conn, msg, m.PlacementGroupInfo(msg.req, records))

    def _on_bundles_prepared(self, node: _Node, msg: m.BundlesPrepared) -> None:
        self._groups_do(self.tables.groups.prepared(msg.group_id, node.node_id))

    def _groups_do(self, out: list) -> None:
        """Carries out the group table's instructions."""
        gone: dict = {}   # group id -> removed for good (else: placed again)
        for x in out:
            t = type(x)
            if t is grp.Prepare:
                self._tell(x.node_id, m.PrepareBundles(x.group, x.bundles))
            elif t is grp.Commit:
                self._tell(x.node_id, m.CommitBundles(x.group))
            elif t is grp.Return:
                self._tell(x.node_id, m.ReturnBundles(x.group, x.removed))
                gone.setdefault(x.group, False)
            elif t is grp.Removed:
                gone[x.group] = True
            elif t is grp.Created:
                for actor_id in self._in_group.pop(x.group, ()):
                    self._place(actor_id)
            elif t is grp.Warn:
                log.warning(x.text)
        for group, removed in gone.items():
            self._group_gone(group, removed)

    def _group_gone(self, group: bytes, removed: bool) -> None:
        """The group let go of its bundles: its actors end, for good when it was removed,
        else to restart (within their max_restarts) once it is placed again."""
        why = "its placement group was removed" if removed else \
            "its placement group lost a node and is placed again"
        for actor_id, a in list(self.tables.actors.items()):
            pg = a.spec.placement_group
            if pg is not None and pg[0] == group and a.state != "DEAD" and a.node_id is not None:
                self._kill(actor_id, removed, why)  # placed: it ran (or starts) in the group
        if removed:
            for actor_id in self._in_group.pop(group, ()):
                self._kill(actor_id, True, why)

    def _place_in_group(self, actor_id: bytes, entry: Any) -> None:
        group, index, _ = entry.spec.placement_group
        g = self.tables.groups.groups.get(group)
        if g is None or g.state == "REMOVED":
            self._kill(actor_id, True, "its placement group was removed" if g is not None
                       else "its placement group does not exist")
            return
        node_id = self.tables.groups.node_of(group, index, entry.spec.placement)
        if node_id is None or node_id not in self._by_id:
            waiting = self._in_group.setdefault(group, [])
            if actor_id not in waiting:
                waiting.append(actor_id)
            return
        self.tables.actor_assigned(actor_id, node_id)
        self._tell(node_id, m.PlaceActor(entry.spec, entry.restarts))
