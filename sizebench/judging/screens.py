"""The state of human judging for one run: open screens, the votes stored, undo; no HTTP here.

Every screen has a one-time id. A vote names its screen: a screen voted on, or one this server never
issued (a page left open across a restart), is refused as a conflict; so is a second vote by the same
rater on the same prompt and pair. Undo takes back the rater's last vote (a VoteUndoneRecord) and
issues a new screen, with a new id, for the same answers on the same sides.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sizebench.analysis.preference import HUMAN  # the source of the page's votes, whoever the rater
from sizebench.judging.pairs import VOTES, Item
from sizebench.runstore.records import VoteRecord, VoteUndoneRecord
from sizebench.runstore.store import RunStore

CHOICES = ("A", "B", "tie", "bad")
MAX_COMMENT = 2000
MAX_RATER = 80
MAX_OPEN = 1000  # screens open at once over all raters; the oldest is dropped first


class Refused(Exception):
    """A request the state cannot take: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Screen:
    id: str
    rater: str
    item: Item
    left: str  # the model shown as A

    @property
    def right(self) -> str:
        return self.item.big if self.left == self.item.small else self.item.small


class Judging:
    def __init__(self, store: RunStore, items: list[Item]):
        self.store = store
        self.shown = [i for i in items if not i.identical]
        self.identical = [i for i in items if i.identical]
        self.by_pair = {(i.prompt_id, frozenset((i.small, i.big))): i for i in items}
        self.lock = threading.Lock()
        self.open: OrderedDict[str, Screen] = OrderedDict()  # one per rater: a new screen closes the rater's last
        self.votes: dict[str, dict] = {}  # screen -> the vote record, for votes not undone, in order
        undone = set()
        for r in store.records():
            if (
                r["kind"] == "vote"
                and r["model"] == HUMAN
                and (r["prompt_id"], frozenset((r["left"], r["right"]))) in self.by_pair
            ):
                self.votes[r["screen"]] = r
            elif r["kind"] == "vote_undone" and r["model"] == HUMAN:
                undone.add(r["screen"])
        self.used = set(self.votes) | undone
        for screen in undone:
            self.votes.pop(screen, None)

    def record_identical(self) -> int:
        """Identical answers: a tie each, recorded once (not shown); returns how many were new."""
        recorded = {self._item_of(v).key for v in self.votes.values() if v.get("identical")}
        new = [i for i in self.identical if i.key not in recorded]
        for item in new:
            self._append(
                VoteRecord(
                    HUMAN,
                    VOTES,
                    "identical-" + secrets.token_hex(8),
                    item.prompt_id,
                    item.small,
                    item.big,
                    "tie",
                    "",
                    identical=True,
                )
            )
        return len(new)

    def _append(self, record) -> None:
        row = self.store.append(record)  # as stored: a rater's text repaired (lone surrogates) like any record
        if record.kind == "vote":
            self.votes[record.screen] = row
        self.used.add(record.screen)

    def _voted(self, rater: str) -> list[dict]:
        return [v for v in self.votes.values() if v["rater"] == rater and not v.get("identical")]

    def _issue(self, rater: str, item: Item, left: str | None = None) -> dict:
        left = left or secrets.choice((item.small, item.big))  # sides at random; the vote records them
        screen = Screen(secrets.token_urlsafe(12), rater, item, left)
        for old in [s.id for s in self.open.values() if s.rater == rater]:
            del self.open[old]
        self.open[screen.id] = screen
        while len(self.open) > MAX_OPEN:
            self.open.popitem(last=False)
        return self._show(screen)

    def _show(self, screen: Screen) -> dict:
        item = screen.item
        return {
            "screen": screen.id,
            "prompt": item.prompt,
            "context": item.context or "",
            "a": item.answer(screen.left),
            "b": item.answer(screen.right),
            **self._progress(screen.rater),
        }

    def _progress(self, rater: str) -> dict:
        return {
            "done": len(self._voted(rater)),
            "total": len(self.shown),
            "identical": len(self.identical),
            "can_undo": bool(self._voted(rater)),
        }

    def next(self, rater: str) -> dict:
        rater = check_rater(rater)
        with self.lock:
            voted = {self._item_of(v).key for v in self._voted(rater)}
            for item in self.shown:
                if item.key not in voted:
                    return self._issue(rater, item)
            return {"finished": True, **self._progress(rater)}

    def vote(self, screen_id: str, choice: str, rater: str, comment: str = "") -> dict:
        rater = check_rater(rater)
        if choice not in CHOICES:
            raise Refused(400, f"choice must be one of {', '.join(CHOICES)}")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT or not _encodable(comment):
            raise Refused(400, f"comment must be text (UTF-8) of at most {MAX_COMMENT} characters")
        with self.lock:
            screen = self.open.get(screen_id) if isinstance(screen_id, str) else None
            if screen is None:
                raise Refused(409, "this screen was already voted on or is no longer open; load the next one")
            if screen.rater != rater:
                raise Refused(409, "this screen was issued to another rater")
            item = screen.item
            if any(self._item_of(v).key == item.key for v in self._voted(rater)):
                del self.open[screen_id]
                raise Refused(409, "this rater has already voted on these two answers")
            self._append(
                VoteRecord(
                    HUMAN, VOTES, screen.id, item.prompt_id, screen.left, screen.right, choice, rater, comment.strip()
                )
            )  # raises (a full disk): the screen stays open
            del self.open[screen_id]
            return self._progress(rater)

    def undo(self, rater: str) -> dict:
        """Take back the rater's last vote; the same answers come back on a new screen."""
        rater = check_rater(rater)
        with self.lock:
            mine = self._voted(rater)
            if not mine:
                raise Refused(409, "nothing to undo")
            last = mine[-1]
            self.store.append(VoteUndoneRecord(HUMAN, VOTES, last["screen"], rater))
            del self.votes[last["screen"]]
            return self._issue(rater, self._item_of(last), last["left"])

    def _item_of(self, vote: dict) -> Item:
        return self.by_pair[(vote["prompt_id"], frozenset((vote["left"], vote["right"])))]


def check_rater(rater) -> str:
    if not isinstance(rater, str) or not rater.strip() or len(rater.strip()) > MAX_RATER or not _encodable(rater):
        raise Refused(400, f"rater must be a name of 1 to {MAX_RATER} characters")
    return rater.strip()


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON's "\\ud800"): such text cannot be stored as UTF-8."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
