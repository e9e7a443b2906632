"""Generated preference data whose true rule is known, for the reward-model benchmark and tests.
Pure: no Django, no torch.

`fact_pairs`: the chosen answer is factually right and the rejected one wrong (a capital, a
colour, an opposite, a category, an animal's sound), and polite filler is added to either side at
random, so length says nothing about which one is right. `split_by_fact` holds out whole facts:
a held-out question is never seen in training, so the model must know, not remember.
"""
from __future__ import annotations

import random

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo", "Greece": "Athens",
    "Austria": "Vienna", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Poland": "Warsaw", "Hungary": "Budapest", "Kenya": "Nairobi", "Peru": "Lima",
    "Argentina": "Buenos Aires", "Chile": "Santiago", "Cuba": "Havana", "Thailand": "Bangkok",
    "South Korea": "Seoul", "Iran": "Tehran", "Iraq": "Baghdad", "Turkey": "Ankara", "Canada": "Ottawa",
    "Australia": "Canberra", "Mexico": "Mexico City", "Belgium": "Brussels", "Netherlands": "Amsterdam",
    "Czechia": "Prague", "Romania": "Bucharest", "Ukraine": "Kyiv", "India": "New Delhi", "Vietnam": "Hanoi",
    "Colombia": "Bogota", "Morocco": "Rabat",
}
COLOURS = {
    "a ripe banana": "yellow", "fresh grass": "green", "a clear daytime sky": "blue", "fresh snow": "white",
    "coal": "black", "blood": "red", "a ripe tomato": "red", "a lemon": "yellow", "an orange": "orange",
    "milk": "white", "a crow": "black", "a carrot": "orange", "a lime": "green", "the sea on a sunny day": "blue",
    "a flamingo": "pink", "chocolate": "brown", "an eggplant": "purple", "a polar bear": "white",
    "a fire truck": "red", "a leaf in summer": "green", "charcoal": "black", "a canary": "yellow",
    "a pumpkin": "orange", "a plum": "purple", "soil": "brown",
}
OPPOSITES = {
    "hot": "cold", "up": "down", "big": "small", "fast": "slow", "happy": "sad", "light": "dark",
    "open": "closed", "early": "late", "full": "empty", "hard": "soft", "rich": "poor", "strong": "weak",
    "young": "old", "wet": "dry", "loud": "quiet", "high": "low", "thick": "thin", "clean": "dirty",
    "heavy": "light", "long": "short", "win": "lose", "push": "pull", "buy": "sell", "arrive": "leave",
    "true": "false", "inside": "outside", "friend": "enemy", "day": "night", "begin": "end", "north": "south",
}
CATEGORIES = {
    "fruit": ["apple", "banana", "cherry", "mango", "pear", "grape", "peach", "plum", "kiwi", "lemon"],
    "animal": ["dog", "cat", "horse", "lion", "tiger", "rabbit", "elephant", "wolf", "bear", "zebra"],
    "tool": ["hammer", "wrench", "screwdriver", "saw", "drill", "pliers", "chisel", "shovel", "axe", "rake"],
    "vehicle": ["car", "bus", "bicycle", "train", "truck", "motorcycle", "tram", "van", "scooter", "taxi"],
    "musical instrument": ["piano", "violin", "guitar", "trumpet", "flute", "drum", "cello", "harp", "oboe",
                           "clarinet"],
}
SOUNDS = {
    "dog": "barks", "cat": "meows", "cow": "moos", "duck": "quacks", "lion": "roars", "sheep": "bleats",
    "horse": "neighs", "pig": "oinks", "owl": "hoots", "snake": "hisses", "rooster": "crows", "frog": "croaks",
    "bee": "buzzes", "wolf": "howls", "mouse": "squeaks",
}
FILLER = [
    "I hope this helps.", "Let me know if you have any other questions.", "This is a common question.",
    "Happy to explain further if needed.", "Thanks for asking.", "It is good to double-check facts like this.",
    "Many people ask about this.", "Feel free to follow up.",
]


def _facts() -> list[dict]:
    """Every fact: its id, domain, question, right answer and the wrong answers to pair it with."""
    facts = []
    for country, capital in CAPITALS.items():
        facts.append({"fact": f"capital:{country}", "domain": "geography", "prompt": f"What is the capital of {country}?",
                      "right": f"The capital of {country} is {capital}.",
                      "wrong": [f"The capital of {country} is {c}." for c in CAPITALS.values() if c != capital]})
    colours = sorted(set(COLOURS.values()))
    for thing, colour in COLOURS.items():
        facts.append({"fact": f"colour:{thing}", "domain": "everyday", "prompt": f"What colour is {thing}?",
                      "right": f"{thing[0].upper() + thing[1:]} is {colour}.",
                      "wrong": [f"{thing[0].upper() + thing[1:]} is {c}." for c in colours if c != colour]})
    for word, opposite in OPPOSITES.items():
        facts.append({"fact": f"opposite:{word}", "domain": "language", "prompt": f"What is the opposite of '{word}'?",
                      "right": f"The opposite of '{word}' is '{opposite}'.",
                      "wrong": [f"The opposite of '{word}' is '{o}'." for w, o in OPPOSITES.items()
                                if o not in (opposite, word) and w != word]})
    for category, members in CATEGORIES.items():
        others = [m for c, ms in CATEGORIES.items() if c != category for m in ms]
        for member in members:
            facts.append({"fact": f"category:{member}", "domain": "everyday",
                          "prompt": f"Give me an example of a {category}.",
                          "right": f"A {member} is a {category}.", "wrong": [f"A {o} is a {category}." for o in others]})
    for animal, sound in SOUNDS.items():
        facts.append({"fact": f"sound:{animal}", "domain": "nature", "prompt": f"What sound does a {animal} make?",
                      "right": f"A {animal} {sound}.",
                      "wrong": [f"A {animal} {s}." for s in SOUNDS.values() if s != sound]})
    return facts


def fact_pairs(*, per_fact: int = 6, seed: int = 0) -> list[dict]:
    """{fact, domain, prompt, chosen, rejected} with the right answer chosen. Each side gets 0-3
    filler sentences independently, so the chosen one is the shorter about half the time."""
    rng = random.Random(seed)
    out = []
    for fact in _facts():
        for wrong in rng.sample(fact["wrong"], min(per_fact, len(fact["wrong"]))):
            chosen = " ".join([fact["right"], *rng.sample(FILLER, rng.randint(0, 3))])
            rejected = " ".join([wrong, *rng.sample(FILLER, rng.randint(0, 3))])
            out.append({"fact": fact["fact"], "domain": fact["domain"], "prompt": fact["prompt"],
                        "chosen": chosen, "rejected": rejected})
    return out


def split_by_fact(pairs: list[dict], *, test_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Train and test with no fact in both."""
    facts = sorted({p["fact"] for p in pairs})
    held = set(random.Random(seed).sample(facts, round(test_fraction * len(facts))))
    return [p for p in pairs if p["fact"] not in held], [p for p in pairs if p["fact"] in held]
