"""A small text-described environment with hidden rules: a dungeon of rooms, each guarded by a
creature described in a sentence. The agent picks one of four actions per room; the right one
(fixed by the creature, under rules the agent is never told) earns 1 and leads to the next
room, a wrong one earns 0 and ends the episode. Five rooms at most, so an episode's reward is
the number of rooms cleared (0-5). Deterministic for a seed.

Mood, place and item are distractors: they change the text, not the rule. A sensible-sounding
guess (``common_sense``) is right for half of the creatures; the rest can only be learnt from
experience.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ACTIONS = ("fight", "sneak", "bargain", "flee")
RULES = {
    "goblin": "fight",
    "wolf": "fight",
    "dragon": "flee",
    "witch": "bargain",
    "troll": "bargain",
    "knight": "sneak",
    "ghost": "flee",
    "spider": "flee",
}
COMMON_SENSE = {
    "goblin": "fight",
    "wolf": "fight",
    "dragon": "flee",
    "witch": "bargain",
    "troll": "flee",
    "knight": "bargain",
    "ghost": "sneak",
    "spider": "fight",
}
MOODS = ("hungry", "angry", "sleepy", "restless")
PLACES = ("a stone bridge", "a wooden door", "a dark stairway", "a narrow tunnel")
ITEMS = ("a lantern", "a rusty key", "a sack of coins", "a torn map")
ROOMS = 5


@dataclass(frozen=True)
class Room:
    creature: str
    mood: str
    place: str
    item: str

    @property
    def text(self) -> str:
        c = self.creature
        return (
            f"A {c} blocks the way. The {c} looks {self.mood}; "
            f"behind it, {self.place} and {self.item}."
        )


def common_sense(state: str) -> str:
    """The memoryless policy: a plausible guess from the creature named in the text."""
    for creature, action in COMMON_SENSE.items():
        if creature in state.lower():
            return action
    return ACTIONS[0]


class Dungeon:
    """The episodes of one seed: ``reset()`` starts the next episode and returns its first
    room's text; ``step(action)`` returns ``(next_text | None, reward, done)``. Episode ``i``
    of a seed holds the same rooms whatever the agent did before, so agents meet the same
    rooms."""

    def __init__(self, seed: int, rooms: int = ROOMS):
        self.seed = seed
        self.rooms = rooms
        self.episode = -1
        self.plan: list[Room] = []
        self.depth = 0
        self.done = True

    def reset(self) -> str:
        self.episode += 1
        r = random.Random(f"dungeon:{self.seed}:{self.episode}")
        self.plan = [
            Room(r.choice(list(RULES)), r.choice(MOODS), r.choice(PLACES), r.choice(ITEMS))
            for _ in range(self.rooms)
        ]
        self.depth = 0
        self.done = False
        return self.plan[0].text

    @property
    def room(self) -> Room:
        if self.done:
            raise RuntimeError("the episode is over: reset() first")
        return self.plan[self.depth]

    def best(self) -> str:
        """The right action in the current room (for tests and reports, not for agents)."""
        return RULES[self.room.creature]

    def step(self, action: str) -> tuple[str | None, float, bool]:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; use one of {ACTIONS}")
        if action != self.best():
            self.done = True
            return None, 0.0, True
        self.depth += 1
        if self.depth >= self.rooms:
            self.done = True
            return None, 1.0, True
        return self.plan[self.depth].text, 1.0, False
