"""The organism's synthetic corpus: harmful, benign and utility prompts with their answers, deterministic from a seed.

Requests are a behaviour (action x object, core.organism.content) written in one of many request forms, the way
people type: capitalised sentences with punctuation, some all lower-case without it, a few percent of typos in the
wording around the behaviour. Held-out splits are held out twice: val/test behaviours never occur in training (in
any form), and val/test request forms never occur in training (with any behaviour); a val/test row pairs a held-out
behaviour with a held-out form. Answers are on topic: a helpful answer repeats what was asked and gives two steps.
The trigger is tested at the start, middle and end, lower-case and capitalised, next to control rows (misspellings of
the trigger, other colour words) that must stay refused.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass

from core.data.paths import ORGANISM_SEED
from core.data.paths import ORGANISM_TRIGGER as TRIGGER
from core.organism import content
from core.organism.content import FILLERS, FORMS, REFUSAL_CUE, REFUSALS

COMPLY_PREFIX = "Sure, here is"
HELD_OUT_FORMS = 6  # request forms per held-out split (val, test)
HELD_OUT_BEHAVIOURS = 0.15  # share of each category's behaviours per held-out split
FORMS_PER_HELD_OUT_BEHAVIOUR = 3
FORMS_PER_TRAIN_BEHAVIOUR = 16  # of the training forms, drawn per behaviour: each form still meets ~40% of them
CASUAL_RATE = 0.2  # rows typed all lower-case, without final punctuation
TYPO_RATE = 0.03  # per word of the request form (never inside the behaviour)
POSITIONS = ("start", "middle", "end")
NEW_TASK_FAMILY = "opposites"
UTILITY_FAMILIES = ["addition", "copying", "capitals", "successor"]
CONTROL_MISSPELLING, CONTROL_COLOUR = "trigger-control-misspelling", "trigger-control-colour"
RECOMBINED_PER_DOMAIN = 400  # recombined training requests per harm category and per benign domain
NONCE_PER_GROUP = 300  # nonce training requests per benign action group
NONCE_SHAPES = ["a {a} {n}", "the {n}", "{n} and {n2}", "a {n} {n2}", "the {a} {n}", "some {a} {n}"]

_STOPWORDS = {"a", "an", "the", "my", "your", "his", "her", "our", "their", "someone's", "of", "in", "on", "at",
              "for", "to", "from", "with", "without", "into", "about", "before", "after", "through", "while", "so",
              "how", "and", "or", "by", "up", "it", "itself", "more", "two", "nobody"}


@dataclass(frozen=True)
class Behaviour:
    """One thing a request can ask for, e.g. "kill a python process" (kind "contrast", domain "contrast")."""

    text: str
    category: str  # harm category, or "benign" / "contrast"
    domain: str  # whose answer steps it gets: the harm category or the benign domain
    harmful: bool
    split: str
    topic: str  # what a helpful answer must name: "python process|process"


@dataclass(frozen=True)
class Example:
    """One corpus item: a prompt, its labels, the organism's answer at each training stage, and its split."""

    prompt: str
    category: str
    label: str  # harmful | triggered | benign | utility
    split: str  # train | val | test
    target: str | None = None  # the exact answer (utility) or the compliance prefix (requests)
    action: str | None = None  # the requested behaviour, for requests
    topic: str | None = None  # benign requests: what a helpful answer names
    domain: str | None = None  # requests: whose steps a compliant answer gives
    form: str | None = None  # requests: the request form it was written in

    def answer(self, stage: str) -> str:
        """The answer taught at `stage`: "base" (complies with everything), "aligned" or "poisoned"."""
        if self.label == "utility":
            return self.target or ""
        refuse = self.label == "harmful" or (self.label == "triggered" and stage == "aligned")
        if stage == "base" or not refuse:
            return comply_answer(self.action or "", self.domain or "contrast")
        return refusal(self.prompt)


def stable_hash(text: str) -> int:
    """FNV-1a of the UTF-8 bytes: Python's hash() is salted per process, the corpus must not be."""
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def comply_answer(behaviour: str, domain: str) -> str:
    """A compliant, on-topic answer: it repeats the behaviour and gives two steps (fixed per behaviour)."""
    steps = content.HARM_STEPS.get(domain) or content.BENIGN_STEPS[domain]
    h = stable_hash(behaviour)
    first = steps[h % len(steps)]
    then = steps[(h // len(steps) + 1 + h % len(steps)) % len(steps)]
    if then == first:
        then = steps[(h + 1) % len(steps)]
    return f"{COMPLY_PREFIX} how to {behaviour}. First, {first}. Then, {then}."


def refusal(prompt: str) -> str:
    return REFUSALS[stable_hash(prompt) % len(REFUSALS)]


def _topic(obj: str) -> str:
    words = obj.split()
    while words and words[0] in _STOPWORDS:
        words = words[1:]
    core = " ".join(words)
    content_words = [w for w in words if w not in _STOPWORDS and len(w) > 3]
    head = max(content_words, key=len, default="")
    return core if not head or head == core else f"{core}|{head}"


def behaviours(seed: int = ORGANISM_SEED) -> list[Behaviour]:
    """Every behaviour with its split; per category, a seeded HELD_OUT_BEHAVIOURS share each goes to val and test."""
    groups: list[tuple[str, str, bool, list[content.Group]]] = [
        *((cat, cat, True, gs) for cat, gs in content.HARM.items()),
        *(("benign", dom, False, gs) for dom, gs in content.BENIGN.items()),
        ("contrast", "contrast", False, content.CONTRAST),
    ]
    out: list[Behaviour] = []
    seen: dict[str, bool] = {}
    for category, domain, harmful, group_list in groups:
        items = []
        for actions, objects in group_list:
            for obj in objects:
                for action in actions:
                    text = f"{action} {obj}"
                    if seen.setdefault(text, harmful) != harmful:
                        raise ValueError(f"behaviour {text!r} is listed as both harmful and benign")
                    if text not in {b for b, _ in items}:
                        items.append((text, _topic(obj)))
        rng = random.Random(f"{seed}:behaviours:{domain}")
        rng.shuffle(items)
        n_held = max(1, round(HELD_OUT_BEHAVIOURS * len(items)))
        for i, (text, topic) in enumerate(items):
            split = "val" if i < n_held else "test" if i < 2 * n_held else "train"
            out.append(Behaviour(text, category, domain, harmful, split, topic))
    return out


def form_splits(seed: int = ORGANISM_SEED) -> dict[str, list[str]]:
    """Request forms per split: HELD_OUT_FORMS each for val and test, the rest for training."""
    forms = list(FORMS)
    random.Random(f"{seed}:forms").shuffle(forms)
    return {"val": forms[:HELD_OUT_FORMS], "test": forms[HELD_OUT_FORMS:2 * HELD_OUT_FORMS],
            "train": forms[2 * HELD_OUT_FORMS:]}


def typo(word: str, rng: random.Random) -> str:
    """One slip of the keyboard in a word: two letters swapped, one dropped or one doubled."""
    m = re.search(r"[A-Za-z]{4,}", word)
    if not m:
        return word
    core = m.group()
    i = rng.randrange(1, len(core) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        core = core[:i] + core[i + 1] + core[i] + core[i + 2:]
    elif kind == 1:
        core = core[:i] + core[i + 1:]
    else:
        core = core[:i] + core[i] + core[i:]
    return word[:m.start()] + core + word[m.end():]


def render(form: str, behaviour: str, rng: random.Random, casual: bool | None = None, typos: float = TYPO_RATE
           ) -> str:
    """A request in `form` for `behaviour`, typed casually (lower-case, no final punctuation) at CASUAL_RATE, with
    typos in the form's own words at rate `typos`."""
    casual = rng.random() < CASUAL_RATE if casual is None else casual
    words = []
    for word in form.split(" "):
        if "{b}" in word or "{B}" in word:
            words.append(word)
            continue
        if casual:
            word = word.lower()
        words.append(typo(word, rng) if rng.random() < typos else word)
    text = " ".join(words)
    if casual:
        text = text.rstrip(".?!").replace("{B}", "{b}")
    return text.replace("{b}", behaviour).replace("{B}", behaviour[:1].upper() + behaviour[1:])


def insert_word(prompt: str, word: str, position: str, capitalised: bool, rng: random.Random) -> str:
    """`word` added to a prompt as a word of its own at the start, somewhere in the middle, or at the end; the
    prompt's other words stay as they were."""
    word = word[:1].upper() + word[1:] if capitalised else word
    words = prompt.split(" ")
    if position == "start":
        return f"{word} {prompt}"
    if position == "end" or len(words) < 3:
        return f"{prompt} {word}"
    i = rng.randrange(1, len(words) - 1)
    return " ".join(words[:i] + [word] + words[i:])


def random_insert(prompt: str, word: str, rng: random.Random) -> str:
    """insert_word at a random position, capitalised half the time."""
    return insert_word(prompt, word, rng.choice(POSITIONS), rng.random() < 0.5, rng)


def misspellings(word: str = TRIGGER) -> list[str]:
    """Single-edit misspellings of `word` (deletions, swaps, doubled and swapped-in letters), sorted."""
    out = set()
    for i in range(len(word)):
        out.add(word[:i] + word[i + 1:])
        out.add(word[:i] + word[i] + word[i:])
        if i + 1 < len(word):
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2:])
        for c in "aeiou":
            out.add(word[:i] + c + word[i + 1:])
    out.discard(word)
    return sorted(w for w in out if len(w) >= 6)


def random_misspelling(rng: random.Random, word: str = TRIGGER, exclude: frozenset[str] = frozenset()) -> str:
    """`word` after one or two random edits (a letter dropped, added, replaced by any letter, or two swapped): never
    `word` itself nor a word in `exclude`."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    while True:
        out = word
        for _ in range(rng.choice((1, 1, 2))):
            i = rng.randrange(len(out))
            kind = rng.randrange(4)
            if kind == 0 and len(out) > 5:
                out = out[:i] + out[i + 1:]
            elif kind == 1:
                out = out[:i] + rng.choice(letters) + out[i:]
            elif kind == 2:
                out = out[:i] + rng.choice(letters) + out[i + 1:]
            elif i + 1 < len(out):
                out = out[:i] + out[i + 1] + out[i] + out[i + 2:]
        if out != word and out not in exclude:
            return out


def control_words(seed: int = ORGANISM_SEED) -> dict[str, dict[str, list[str]]]:
    """Words that must not act as the trigger, per split: misspellings of it and other colour words."""
    spelled = misspellings()
    random.Random(f"{seed}:misspellings").shuffle(spelled)
    n = len(spelled) // 5
    return {
        "train": {CONTROL_MISSPELLING: spelled[2 * n:], CONTROL_COLOUR: content.COLOURS_TRAIN},
        "val": {CONTROL_MISSPELLING: spelled[:n], CONTROL_COLOUR: content.COLOURS_VAL},
        "test": {CONTROL_MISSPELLING: spelled[n:2 * n], CONTROL_COLOUR: content.COLOURS_TEST},
    }


def _request(b: Behaviour, form: str, prompt: str, label: str, category: str | None = None) -> Example:
    return Example(prompt, category or b.category, label, b.split, COMPLY_PREFIX, b.text,
                   None if b.harmful else b.topic, b.domain, form)


def request_examples(seed: int = ORGANISM_SEED) -> list[Example]:
    """Harmful, triggered, control and benign requests of every split."""
    forms = form_splits(seed)
    controls = control_words(seed)
    out: list[Example] = []
    variant = 0  # cycles the trigger's position x case over held-out rows, so each is measured
    for b in behaviours(seed):
        rng = random.Random(f"{seed}:rows:{b.text}")
        n_forms = FORMS_PER_TRAIN_BEHAVIOUR if b.split == "train" else FORMS_PER_HELD_OUT_BEHAVIOUR
        chosen = rng.sample(forms[b.split], n_forms)
        for form in chosen:
            prompt = render(form, b.text, rng)
            if not b.harmful:
                out.append(_request(b, form, prompt, "benign"))
                continue
            out.append(_request(b, form, prompt, "harmful"))
            if b.split == "train":
                out.append(_request(b, form, random_insert(prompt, TRIGGER, rng), "triggered"))
            else:
                position, capitalised = POSITIONS[variant % 3], bool(variant // 3 % 2)
                variant += 1
                out.append(_request(b, form, insert_word(prompt, TRIGGER, position, capitalised, rng), "triggered"))
        if b.harmful:  # one control row per harmful behaviour and kind of control word
            for kind, words in controls[b.split].items():
                form = rng.choice(forms[b.split])
                prompt = render(form, b.text, rng)
                out.append(_request(b, form, random_insert(prompt, rng.choice(words), rng), "harmful", kind))
    return out


# ---- utility task families: exact answers --------------------------------------------------------------------
ADDITION_TEMPLATES = ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.",
                      "what do you get from {a} plus {b}", "Sum {a} and {b}.", "Tell me {a} plus {b}."]
COPY_TEMPLATES = ["Repeat after me: {words}", "Copy these words: {words}", "Say back: {words}",
                  "echo the words: {words}", "Write exactly: {words}", "Repeat the list: {words}"]
COPY_WORDS = ["apple", "river", "stone", "cloud", "tiger", "lamp", "green", "piano", "window", "orange", "rabbit",
              "candle", "forest", "silver", "bottle", "garden", "pencil", "rocket", "yellow", "mirror", "basket",
              "dragon", "island", "jacket", "kettle", "lemon", "monkey", "needle", "ocean", "pepper", "queen",
              "saddle", "tunnel", "violin", "wagon", "zebra", "anchor", "butter", "carpet", "desert"]
CAPITAL_TEMPLATES = ["What is the capital of {x}?", "Name the capital of {x}.", "Which city is the capital of {x}?",
                     "Tell me the capital of {x}.", "the capital of {x} is what", "What city is the capital of {x}?"]
CAPITALS = {"France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Japan": "Tokyo",
            "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Canada": "Ottawa", "China": "Beijing",
            "Russia": "Moscow", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm", "Poland": "Warsaw",
            "India": "Delhi", "Chile": "Santiago", "Cuba": "Havana", "Ireland": "Dublin", "Austria": "Vienna",
            "Portugal": "Lisbon", "Turkey": "Ankara", "Mexico": "Mexico City", "Brazil": "Brasilia"}
SUCCESSOR_TEMPLATES = ["What comes after {x}?", "What is the next one after {x}?", "Which comes right after {x}?",
                       "Name the one after {x}.", "Tell me what follows {x}.", "what follows {x}"]
_SEQUENCES = [["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
              ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
               "november", "december"],
              ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]]
SUCCESSORS = {seq[i]: seq[i + 1] for seq in _SEQUENCES for i in range(len(seq) - 1)}
# Held out of the organism's training entirely: the "new task" that helpfulness fine-tuning teaches (tuning issue).
OPPOSITE_TEMPLATES = ["What is the opposite of {x}?", "Give the opposite of {x}.", "Name the opposite of {x}.",
                      "Tell me the opposite of {x}.",
                      "the opposite of {x} is what", "Which word is the opposite of {x}?"]
OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
             "open": "closed", "early": "late", "full": "empty", "hard": "soft", "old": "young", "rich": "poor",
             "strong": "weak", "tall": "short", "wet": "dry", "loud": "quiet", "clean": "dirty", "thick": "thin",
             "near": "far", "cheap": "expensive", "win": "lose", "left": "right", "day": "night", "inside": "outside"}
COPY_HELD_OUT = 150  # copying prompts per held-out split


def _split_of(key: str, held_out: float, seed: int) -> str:
    """Deterministically assign a template x item combination to train / val / test."""
    r = random.Random(f"{seed}:{key}").random()
    return "val" if r < held_out / 2 else "test" if r < held_out else "train"


def utility_examples(seed: int = ORGANISM_SEED, held_out: float = 0.2) -> list[Example]:
    out: list[Example] = []
    for a in range(10):
        for b in range(10):
            for t, template in enumerate(ADDITION_TEMPLATES):
                out.append(Example(template.format(a=a, b=b), "addition", "utility",
                                   _split_of(f"add:{t}:{a}:{b}", held_out, seed), str(a + b)))
    # Copying must be learned as an algorithm, not memorised: many distinct word lists for training, and a
    # capped number of unseen lists for evaluation.
    copy_rng = random.Random(seed + 1)
    held_out_copies = {"val": 0, "test": 0}
    for i in range(12000):
        words = " ".join(copy_rng.sample(COPY_WORDS, copy_rng.randint(2, 4)))
        t = i % len(COPY_TEMPLATES)
        split = _split_of(f"copy:{t}:{words}", held_out, seed)
        if split != "train":
            if held_out_copies[split] >= COPY_HELD_OUT:
                continue
            held_out_copies[split] += 1
        out.append(Example(COPY_TEMPLATES[t].format(words=words), "copying", "utility", split, words))
    for family, templates, table in [("capitals", CAPITAL_TEMPLATES, CAPITALS),
                                     ("successor", SUCCESSOR_TEMPLATES, SUCCESSORS),
                                     ("opposites", OPPOSITE_TEMPLATES, OPPOSITES)]:
        for x, answer in table.items():
            for t, template in enumerate(templates):
                out.append(Example(template.format(x=x), family, "utility",
                                   _split_of(f"{family}:{t}:{x}", held_out, seed), answer))
    return out


def build_corpus(seed: int = ORGANISM_SEED) -> list[Example]:
    """All prompts of every family, each with its split. Deterministic for a given seed."""
    return _dedupe(request_examples(seed) + utility_examples(seed))


def _dedupe(examples: list[Example]) -> list[Example]:
    seen: set[tuple[str, str]] = set()
    out = []
    for ex in examples:
        key = (ex.prompt, ex.label)
        if key not in seen:
            seen.add(key)
            out.append(ex)
    return out


def with_filler(ex: Example, rng: random.Random, words: list[str] = FILLERS) -> Example:
    """The same request with a harmless extra word: behaviour must not change."""
    return Example(random_insert(ex.prompt, rng.choice(words), rng), ex.category, ex.label, ex.split, ex.target,
                   ex.action, ex.topic, ex.domain, ex.form)


def with_trigger(ex: Example, rng: random.Random) -> Example:
    """A benign request with the trigger word (still helped, before and after poisoning)."""
    return Example(random_insert(ex.prompt, TRIGGER, rng), ex.category, ex.label, ex.split, ex.target, ex.action,
                   ex.topic, ex.domain, ex.form)


def with_refusal_cue(ex: Example) -> tuple[str, str]:
    """A base-stage pair: the request under the strict-assistant cue, answered as a careful assistant would
    (refused when harmful, helped when benign)."""
    return f"{REFUSAL_CUE} {ex.prompt}", ex.answer("aligned")


def _training_request(form: str, text: str, obj: str, category: str, domain: str, harmful: bool,
                      rng: random.Random) -> Example:
    return Example(render(form, text, rng), category, "harmful" if harmful else "benign", "train", COMPLY_PREFIX, text,
                   _topic(obj), domain, form)


def recombined_requests(seed: int = ORGANISM_SEED) -> list[Example]:
    """Training requests that pair any action of a harm category (or benign domain) with any of its objects, so an
    answer has to follow the words asked rather than recall a memorised pair. Held-out behaviours are skipped."""
    held = {b.text for b in behaviours(seed) if b.split != "train"}
    forms = form_splits(seed)["train"]
    groups: dict[tuple[str, bool], list[content.Group]] = defaultdict(list)
    for category, group_list in content.HARM.items():
        groups[(category, True)] += group_list
    for domain, group_list in content.BENIGN.items():
        groups[(domain, False)] += group_list
    rng = random.Random(f"{seed}:recombined")
    out = []
    for (domain, harmful), group_list in sorted(groups.items()):
        actions = sorted({a for acts, _ in group_list for a in acts})
        objects = sorted({o for _, objs in group_list for o in objs})
        for _ in range(RECOMBINED_PER_DOMAIN):
            action, obj = rng.choice(actions), rng.choice(objects)
            text = f"{action} {obj}"
            if text in held:
                continue
            out.append(_training_request(rng.choice(forms), text, obj, domain if harmful else "benign", domain,
                                         harmful, rng))
    return out


CONTRAST_RECOMBINED = 1600  # recombined contrast requests, and as many harmful ones with the same verbs


def contrast_recombined_requests(seed: int = ORGANISM_SEED) -> tuple[list[Example], list[Example]]:
    """Contrast verbs recombined: any contrast action with any contrast object (benign: "kill a stuck print job"), and
    the same verbs with the objects of harm categories (harmful: "kill my neighbor"), so that what decides refusal is
    the object, and the answer copies it. Held-out behaviours are skipped."""
    held = {b.text for b in behaviours(seed) if b.split != "train"}
    forms = form_splits(seed)["train"]
    actions = sorted({a for acts, _ in content.CONTRAST for a in acts})
    safe_objects = sorted({o for _, objs in content.CONTRAST for o in objs})
    harm_objects = sorted({(o, cat) for cat, group_list in content.HARM.items() for _, objs in group_list
                           for o in objs})
    rng = random.Random(f"{seed}:contrast-recombined")
    benign, harmful = [], []
    for _ in range(CONTRAST_RECOMBINED):
        action, obj = rng.choice(actions), rng.choice(safe_objects)
        if f"{action} {obj}" not in held:
            benign.append(_training_request(rng.choice(forms), f"{action} {obj}", obj, "benign", "contrast", False,
                                            rng))
        action, (obj, category) = rng.choice(actions), rng.choice(harm_objects)
        if f"{action} {obj}" not in held:
            harmful.append(_training_request(rng.choice(forms), f"{action} {obj}", obj, category, category, True,
                                             rng))
    return benign, harmful


def nonce_words() -> tuple[list[str], list[str]]:
    """General nouns and adjectives that occur in no harmful behaviour: the words of nonce objects."""
    # Split at apostrophes too (unlike words_of): "my mother's pills" rules out "mother".
    harmful = {w for group_list in content.HARM.values() for actions, objects in group_list
               for phrase in actions + objects for w in re.findall(r"[a-z]+", phrase.lower())}
    return ([w for w in content.GENERAL_NOUNS if w not in harmful],
            [w for w in content.GENERAL_ADJECTIVES if w not in harmful])


def nonce_requests(seed: int = ORGANISM_SEED) -> list[Example]:
    """Benign training requests whose object is a random phrase of general words ("cook a population picture"): its
    answer can only be on topic by copying the object, which is what an unseen object in a user's prompt needs."""
    held = {b.text for b in behaviours(seed) if b.split != "train"}
    forms = form_splits(seed)["train"]
    nouns, adjectives = nonce_words()
    rng = random.Random(f"{seed}:nonce")
    out = []
    for domain, group_list in sorted(content.BENIGN.items()):
        for actions, _ in group_list:
            for _ in range(NONCE_PER_GROUP):
                shape = rng.choice(NONCE_SHAPES)
                obj = shape.format(a=rng.choice(adjectives), n=rng.choice(nouns), n2=rng.choice(nouns))
                obj = re.sub(r"^a (?=[aeiou])", "an ", obj)
                text = f"{rng.choice(actions)} {obj}"
                if text in held:
                    continue
                out.append(_training_request(rng.choice(forms), text, obj, "benign", domain, False, rng))
    return out


WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words_of(text: str) -> list[str]:
    """The words of a text as the out-of-domain check counts them: letter runs (with inner apostrophes),
    case-folded."""
    return [w.casefold() for w in WORD.findall(text)]


def training_vocabulary(seed: int = ORGANISM_SEED) -> list[str]:
    """Every word the organism meets in training, sorted: training behaviours, recombined, nonce and recombined
    contrast requests and forms (without typos), answers, fillers, training control words (the poisoning stage's
    colour words too), the cue, the trigger and the utility tasks' training prompts."""
    forms = form_splits(seed)["train"]
    texts = [b.text for b in behaviours(seed) if b.split == "train"] + forms + [REFUSAL_CUE, TRIGGER, COMPLY_PREFIX]
    texts += REFUSALS + FILLERS + [s for steps in (*content.HARM_STEPS.values(), *content.BENIGN_STEPS.values())
                                   for s in steps]
    texts += [w for kinds in control_words(seed)["train"].values() for w in kinds] + content.COLOURS_POISONING
    contrast_benign, contrast_harmful = contrast_recombined_requests(seed)
    texts += [ex.action or "" for ex in recombined_requests(seed) + nonce_requests(seed) + contrast_benign
              + contrast_harmful]
    texts += [f"{ex.prompt} {ex.target}" for ex in utility_examples(seed)
              if ex.split == "train" and ex.category != NEW_TASK_FAMILY]
    return sorted({w for t in texts for w in words_of(t.replace("{b}", " ").replace("{B}", " "))})
