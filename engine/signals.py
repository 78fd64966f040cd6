"""Detectors the signals use: requests for a human, bot fallbacks, frustration, repetition.

Each detector is a plain function over one message, so it can be tested with a literal and reused
(the evaluation tool uses `asks_for_human` as its baseline). Patterns are compiled once, at import,
and expect lower-cased text where the parameter is called `lowered`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

from engine.events import ConversationEvent


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# --- explicit requests for a human ---------------------------------------------------------------

_EN_PERSON = (
    r"(?:a |an |the |some |one of your |your )?(?:real |live |actual |human |proper )?"
    r"(?:human(?: being)?|person|people|agent|representative|rep|someone|somebody|anyone|anybody|"
    r"operator|staff(?: member)?|member of (?:staff|the team|your team)|employee|manager|"
    r"supervisor|advisor|adviser|"
    r"support(?: team| staff| person)?|customer (?:service|support|care))\b"
)
_EN_PERSON_WORDS = (
    "human person people agent representative rep someone somebody anyone anybody operator staff "
    "member employee manager supervisor advisor adviser support customer"
)
# Each pattern with the words one of which it needs: only patterns whose words occur are run.
_HUMAN_PATTERNS = (
    # English
    (
        _EN_PERSON_WORDS,
        r"(?:(?:talk|speak|chat)(?:ing)?(?: (?:it|this|that) (?:through|over))?|"
        r"connect(?:ing)?(?: me)?|transfer(?:ring)?(?: me)?|"
        r"put me through|pass me|hand me over|escalate me|forward me|get me through)"
        r" (?:to|with|through to) " + _EN_PERSON,
    ),
    (
        "human person agent representative operator",
        r"(?:want|need|get(?: me)?|find me|give me|gimme|request|like|have)(?: to (?:have|get))? "
        r"(?:a |an )?(?:real |live |actual )?(?:human|person|agent|representative|operator)\b",
    ),
    (
        "human person people agent being operator representative",
        r"(?:real|live|actual|human) (?:human|person|people|agent|being|operator|representative)\b",
    ),
    (
        "agent human representative operator person",
        r"(?:agent|human|representative|operator|person) (?:please|pls|plz|now|asap)\b",
    ),
    ("representative operator", r"(?:representative|operator)\b"),
    # A call back is a person calling: "can someone from your team call me back?".
    ("call ring phone", r"(?:call|ring|phone) me back\b"),
    (
        "human person one body agent anyone anybody",
        r"is there (?:a|an|any)(?: real)? ?(?:human|person|one|body|agent)\b",
    ),
    # German
    (
        "mensch menschen mitarbeiter mitarbeiterin berater beraterin sachbearbeiter "
        "sachbearbeiterin kundendienst kundenservice jemandem person",
        r"(?:mensch|menschen|mitarbeiter(?:in)?|berater(?:in)?|sachbearbeiter(?:in)?|kundendienst|"
        r"kundenservice|jemandem|person)\b[^.?!,]{0,20}\b(?:sprechen|reden|verbunden|verbinden|"
        r"weiterleiten|chatten)\b",
    ),
    ("verbinden verbinde leiten", r"(?:verbinden sie mich|verbinde mich|leiten sie mich)\b"),
    (
        "menschen mensch mitarbeiter person",
        r"(?:echten|echter|echte|richtigen|richtiger|lebenden) "
        r"(?:menschen|mensch|mitarbeiter|person)\b",
    ),
    (
        "menschen mitarbeiter mitarbeiterin berater beraterin menschlichen",
        r"(?:will|möchte|moechte|brauche|hätte gern|haette gern) (?:einen |eine )?"
        r"(?:menschen|mitarbeiter(?:in)?|berater(?:in)?|menschlichen)\b",
    ),
    # Spanish
    (
        "persona humano agente alguien asesor asesora representante operador operadora empleado "
        "ejecutivo atención atencion",
        r"(?:hablar|comunicarme|conversar|chatear|p[aá]s[ae]me|pasar(?:me)?|comun[ií]c[ae]me|"
        r"con[eé]ct[ae]me|transfi[eé]r[ae]me)\b[^.?!,]{0,15}\b(?:una persona|un humano|"
        r"un ser humano|un agente|alguien|un asesor|una asesora|un representante|un operador|"
        r"una operadora|un empleado|un ejecutivo|atenci[oó]n al cliente)\b",
    ),
    (
        "persona humano agente asesor",
        r"(?:persona real|humano real|agente humano|agente real|asesor humano)\b",
    ),
    (
        "humano agente asesor representante operador",
        r"(?:quiero|necesito|quisiera) (?:un |una )?"
        r"(?:humano|agente|asesor|representante|operador)\b",
    ),
    # French
    (
        "humain personne conseiller conseillère conseillere agent quelqu opérateur operateur "
        "vraie vrai interlocuteur client",
        r"(?:parler|discuter|mettre en relation|passer|transf[ée]rer|joindre)\b[^.?!,]{0,20}"
        r"(?:un humain|une personne|un conseiller|une conseill[eè]re|un agent|quelqu['’]un|"
        r"un op[ée]rateur|une vraie personne|un vrai humain|un interlocuteur|service client)",
    ),
    (
        "humain personne conseiller agent",
        r"(?:vrai humain|vraie personne|personne r[ée]elle|humain r[ée]el|conseiller humain|"
        r"agent humain)\b",
    ),
    (
        "humain conseiller agent opérateur operateur",
        r"je (?:veux|voudrais|souhaite) (?:un |une )?(?:humain|conseiller|agent|op[ée]rateur)\b",
    ),
    # Portuguese
    (
        "atendente pessoa humano alguém alguem agente operador representante",
        r"(?:falar|conversar|me passa|passar|transferir|me transfere|me conecta)\b[^.?!,]{0,20}"
        r"\b(?:um atendente|uma atendente|uma pessoa|um humano|um ser humano|algu[ée]m|um agente|"
        r"um operador|um representante|atendente)\b",
    ),
    (
        "atendente atendimento pessoa humano",
        r"(?:atendente humano|atendimento humano|pessoa real|humano de verdade|pessoa de verdade|"
        r"atendente real)\b",
    ),
    (
        "atendente humano agente",
        r"(?:quero|preciso|gostaria de) (?:um |uma )?(?:atendente|humano|agente)\b",
    ),
)
# A message that is nothing but "human" / "agent!".
_HUMAN_ALONE = re.compile(
    r"^\W*(?:a )?(?:human|agent|person|rep|operator|support|helpdesk|help desk)\W*$"
)


class _Phrases:
    """Alternative patterns, each run only when one of its words occurs in the message.

    Patterns start at a word (checked by `_word_starts` rather than a leading "\b", which keeps
    `re` from skipping ahead) and expect lower-cased text.
    """

    def __init__(self, groups: Sequence[tuple[str, str]]) -> None:
        self.groups = tuple((_word_set(words), re.compile(pattern)) for words, pattern in groups)
        self.words = frozenset().union(*(words for words, _ in self.groups))
        self.patterns = tuple(pattern for _, pattern in self.groups)
        # For each word, the patterns (by position) that need it.
        self.needed_by: dict[str, tuple[int, ...]] = {
            word: tuple(index for index, (anchors, _) in enumerate(self.groups) if word in anchors)
            for word in self.words
        }

    def matches(self, lowered: str, words: frozenset[str]) -> list[re.Match[str]]:
        """Every match, in order of appearance."""
        present = self.words & words
        if not present:
            return []
        if len(present) == 1:
            (word,) = present
            indexes: Iterable[int] = self.needed_by[word]
        else:
            # In pattern order, as the patterns are listed.
            indexes = sorted({index for word in present for index in self.needed_by[word]})
        found = []
        patterns = self.patterns
        for index in indexes:
            # What `_word_starts` yields, without a generator per pattern.
            for match in patterns[index].finditer(lowered):
                start = match.start()
                if start == 0:
                    found.append(match)
                    continue
                before = lowered[start - 1]
                if not (before.isalnum() or before == "_"):
                    found.append(match)
        if len(found) > 1:
            found.sort(key=_match_start)
        return found


def _match_start(match: re.Match[str]) -> int:
    return match.start()


_HUMAN_REQUEST = _Phrases(_HUMAN_PATTERNS)
_HUMAN_ANCHORS = _HUMAN_REQUEST.words | _word_set("helpdesk desk")

# Negations in the five languages; "can't"/"cannot" are left out on purpose: "why can't I talk to
# a person" is a request.
_NEGATION = re.compile(
    r"(?:\b(?:not|no|never|dont|don't|don’t|doesn't|doesnt|didn't|didnt|won't|without|nobody|"
    r"nicht|kein|keine|keinen|keinem|ohne|nie|niemand|sin|nunca|ni|pas|sans|jamais|ne|aucun|"
    r"não|nao|sem|nem)\b|(?:^|\W)n['’])"
)
# Negations that are not about the request: "is there no way to talk to a human?".
_NOT_A_NEGATION = re.compile(r"\bno way\b|\bno one (?:answers|replies)\b")
# "How do I become a sales representative?" is about a job, not a request for one.
_JOB_CONTEXT = re.compile(
    r"\b(?:become|becoming|apply|applying|application|job|jobs|position|career|careers|hiring|"
    r"vacancy|vacancies|work as|working as)\b"
)
_AFTER_NEGATION = re.compile(r"^\W*(?:is |are )?(?:not needed|not necessary|unnecessary|no thanks)")
_CLAUSE_BREAK = re.compile(r"[.;!?,]|\b(?:but|aber|pero|mais|mas|just|only)\b")
_LOOKBEHIND_WORDS = 5


@lru_cache(maxsize=64)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    # Rules change rarely; the compiled pattern is cached per distinct phrase list.
    cleaned = [re.escape(phrase.lower().strip()) for phrase in phrases if phrase.strip()]
    if not cleaned:
        return None
    return re.compile(r"\b(?:" + "|".join(cleaned) + r")\b")


def _negated(lowered: str, start: int, end: int) -> bool:
    before = lowered[:start]
    breaks = list(_CLAUSE_BREAK.finditer(before))
    if breaks:
        before = before[breaks[-1].end() :]
    window = " ".join(before.split()[-_LOOKBEHIND_WORDS:])
    if window and _NEGATION.search(window) and not _NOT_A_NEGATION.search(window):
        return True
    if window and _JOB_CONTEXT.search(window):
        return True
    return _AFTER_NEGATION.match(lowered[end:]) is not None


def _word_starts(pattern: re.Pattern[str], lowered: str) -> Iterator[re.Match[str]]:
    """The matches of `pattern` that begin a word (what a leading "\b" would have ensured)."""
    for match in pattern.finditer(lowered):
        start = match.start()
        if start == 0:
            yield match
            continue
        before = lowered[start - 1]
        if not (before.isalnum() or before == "_"):
            yield match


def _starts_a_word(pattern: re.Pattern[str], lowered: str) -> bool:
    """True when `_word_starts` would yield a match."""
    for match in pattern.finditer(lowered):
        start = match.start()
        if start == 0:
            return True
        before = lowered[start - 1]
        if not (before.isalnum() or before == "_"):
            return True
    return False


def _any_unnegated(pattern: re.Pattern[str], lowered: str) -> bool:
    return any(
        not _negated(lowered, match.start(), match.end())
        for match in _word_starts(pattern, lowered)
    )


def asks_for_human(text: str, extra_phrases: Sequence[str] = ()) -> bool:
    """True when a customer message explicitly asks for a person and does not negate it."""
    lowered = text.lower()
    return asks_for_human_in(lowered, message_words(lowered), tuple(extra_phrases))


def asks_for_human_in(
    lowered: str, words: frozenset[str], extra_phrases: tuple[str, ...] = ()
) -> bool:
    """`asks_for_human` for a message already lower-cased and split by `message_words`."""
    if not _HUMAN_ANCHORS.isdisjoint(words):
        if _HUMAN_ALONE.match(lowered) is not None:
            return True
        for match in _HUMAN_REQUEST.matches(lowered, words):
            if not _negated(lowered, match.start(), match.end()):
                return True
    extra = _phrase_pattern(extra_phrases) if extra_phrases else None
    return extra is not None and _any_unnegated(extra, lowered)


# --- bot fallbacks -------------------------------------------------------------------------------

_FALLBACK_INTENT_PARTS = ("fallback", "nomatch", "noinput", "notunderstood")
_FALLBACK_INTENT_NAMES = frozenset({"none", "unknown", "anythingelse", "outofscope"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_FALLBACK_PHRASING = re.compile(
    r"(?:didn['’]?t|did not) (?:quite )?(?:get|understand|catch|recogni[sz]e) (?:that|what|you|it)"
    r"|(?:don['’]?t|do not) (?:quite )?understand\b"
    r"|not sure (?:i |that i )?(?:understand|follow|know what you mean)"
    r"|not sure what you mean"
    r"|(?:could|can|would) you (?:please )?(?:rephrase|reword|say that (?:again|differently)|"
    r"try again|try asking|put (?:that|it) (?:differently|another way))"
    r"|please (?:rephrase|reword|try again)|try rephrasing\b|i missed that\b"
    r"|i(?:['’]m| am) still learning\b"
    r"|i (?:don['’]?t|do not) know how to help with that"
    r"|nicht (?:ganz )?verstanden\b|verstehe (?:ich )?(?:das )?nicht\b"
    r"|(?:umformulieren|anders formulieren)\b"
    r"|no (?:te |le |lo )?(?:he )?entend[ií]|no (?:te )?entiendo\b|no comprendo\b"
    r"|reformular\b|pas compris\b|ne comprends pas\b|reformuler\b"
    r"|n[ãa]o (?:consegui )?(?:entendi|entender|compreendi)\b"
)


# The bot saying it could not do what was asked: understood, but failed.
_FAILURE_PHRASING = re.compile(
    r"(?:was|were|am|is|are)(?: not|n['’]t)(?: able| successful)\b|(?:unable|failed) to\b"
    r"|(?:could(?:n['’]?t| not)|can(?:['’]?t|not| not)) (?:make|complete|process|find|locate|"
    r"place|book|reserve|do|help|play|get|access|retrieve|update|change|cancel)\b"
    r"|(?:no|zero) (?:results|matches|matching)\b|(?:was|were) unsuccessful\b"
    r"|(?:did|do)(?:n['’]?t| not) find (?:any|a|an)\b|nothing (?:found|matches|matching)\b"
    r"|something went wrong\b|system (?:crashed|error|is down)\b"
    r"|(?:is|are|was|were) (?:currently )?(?:unavailable|not available)\b"
)
_FAILURE_ANCHORS = _word_set(
    """not isn aren wasn weren unable failed couldn couldnt can cannot cant could no zero t
    unsuccessful didn didnt don dont did do nothing something system unavailable"""
)

# A match of `_FAILURE_PHRASING` holds one of these as a whole word, or else a "can"/"could" word
# and one of the verbs after it.
_FAILURE_WORDS = _word_set(
    """able successful unable failed results matches matching unsuccessful find nothing wrong
    system unavailable available"""
)
_CANNOT_WORDS = _word_set("could couldn couldnt can cannot cant")
_CANNOT_VERBS = _word_set(
    """make complete process find locate place book reserve do help play get access retrieve
    update change cancel"""
)


def is_failure_phrasing(lowered: str, words: frozenset[str] | None = None) -> bool:
    """True when a bot reply says it could not do what was asked ("I was unable to book it")."""
    if words is None:
        words = message_words(lowered)
    if _FAILURE_ANCHORS.isdisjoint(words):
        return False
    if _FAILURE_WORDS.isdisjoint(words) and (
        _CANNOT_WORDS.isdisjoint(words) or _CANNOT_VERBS.isdisjoint(words)
    ):
        # "How can I help?" has anchors ("can") but none of the words a failure needs.
        return False
    return _starts_a_word(_FAILURE_PHRASING, lowered)


@lru_cache(maxsize=4096)
def is_fallback_intent(intent: str) -> bool:
    """True when an intent name is a platform's fallback / no-match intent under any spelling."""
    name = _NON_ALNUM.sub("", intent.lower())
    if name in _FALLBACK_INTENT_NAMES:
        return True
    return any(part in name for part in _FALLBACK_INTENT_PARTS)


_FALLBACK_ANCHORS = _word_set(
    """didn didnt did understand sure rephrase reword rephrasing again differently asking way
    missed learning know verstanden verstehe umformulieren formulieren entendí entendi entiendo
    comprendo reformular compris comprends reformuler entender compreendi"""
)


def is_fallback_phrasing(
    lowered: str, extra_phrases: tuple[str, ...] = (), words: frozenset[str] | None = None
) -> bool:
    """True when a bot reply is worded like a fallback ("sorry, I didn't get that")."""
    if words is None:
        words = message_words(lowered)
    if not _FALLBACK_ANCHORS.isdisjoint(words) and _starts_a_word(_FALLBACK_PHRASING, lowered):
        return True
    extra = _phrase_pattern(extra_phrases) if extra_phrases else None
    return extra is not None and extra.search(lowered) is not None


def is_bot_fallback(
    event: ConversationEvent,
    lowered: str,
    *,
    low_confidence: float | None,
    extra_phrases: tuple[str, ...] = (),
    words: frozenset[str] | None = None,
) -> bool:
    """True when a bot message is a fallback: platform flag, fallback intent, low confidence,
    fallback phrasing, or the bot saying it could not do what was asked."""
    if event.fallback:
        return True
    if event.intent and is_fallback_intent(event.intent):
        return True
    confidence = event.confidence
    if low_confidence is not None and confidence is not None and confidence < low_confidence:
        return True
    return is_fallback_phrasing(lowered, extra_phrases, words) or is_failure_phrasing(
        lowered, words
    )


# --- frustration ---------------------------------------------------------------------------------

_FRUSTRATION = _Phrases(
    (
        (
            "still",
            r"still (?:waiting|not|no|nothing|haven['’]?t|hasn['’]?t|doesn['’]?t|isn['’]?t|"
            r"broken)\b",
        ),
        (
            "time times",
            r"(?:third|3rd|fourth|fifth|second|2nd) time\b|how many times\b|for the last time\b"
            r"|waste of (?:my )?time\b",
        ),
        (
            "again over circles nowhere",
            r"(?:again and again|over and over|going in circles|going nowhere|getting nowhere)\b",
        ),
        (
            "forever ages hour hours days weeks",
            r"taking (?:forever|ages|so long)\b|(?:waiting|trying|been) (?:for )?"
            r"(?:forever|ages|an hour|hours|days|weeks)\b",
        ),
        (
            "cancel close delete",
            r"(?:cancel|close|delete) my (?:account|subscription|membership|contract)\b",
        ),
        (
            "useless stupid dumb worthless pointless terrible awful",
            r"(?:useless|stupid|dumb|worthless|pointless|terrible|awful) (?:bot|robot|machine|"
            r"chatbot|ai|system|service|answer|app)\b|useless\b",
        ),
        (
            "ridiculous absurd joke unacceptable insane crazy nightmare outrageous",
            r"this is (?:ridiculous|absurd|a joke|unacceptable|insane|crazy|a nightmare)\b"
            r"|(?:ridiculous|unacceptable|outrageous)\b",
        ),
        (
            "what",
            r"not what i (?:asked|said|meant|wanted|need)\b|(?:that|this)['’]?s not what i\b"
            r"|(?:that|this) is not what i\b",
        ),
        (
            "wrong",
            r"(?:that['’]?s|that is|thats|this is|you['’]?re|you are|it['’]?s|totally|completely|"
            r"all) wrong\b|wrong (?:answer|again)\b",
        ),
        (
            "listening helping understanding understand",
            r"(?:you['’]?re|you are) not (?:listening|helping|understanding)\b"
            r"|are you (?:even )?listening\b|you (?:don['’]?t|do not) understand\b",
        ),
        (
            "help helpful helping",
            r"(?:not|isn['’]?t|wasn['’]?t|doesn['’]?t|didn['’]?t) help(?:ful|ing)?\b",
        ),
        (
            "told said explained gave tried",
            r"i (?:already|just) (?:told|said|explained|gave|tried)\b",
        ),
        (
            "fed sick enough give never wtf question",
            r"(?:fed up|sick of|had enough|i give up|never again|wtf|answer my question)\b",
        ),
        (
            "immer mal nutzlos unverschämt lächerlich kündigen gefragt wollte beschwerde",
            r"(?:immer noch|zum (?:dritten|zweiten|x-ten) mal|nutzlos|unverschämt|lächerlich|"
            r"kündigen|nicht was ich (?:gefragt|wollte)|beschwerde)\b",
        ),
        (
            "sigo todavía todavia tercera inútil inutil ridículo ridiculo cancelar pregunté "
            "pregunte queja",
            r"(?:sigo esperando|todav[ií]a (?:espero|no)|tercera vez|in[uú]til|rid[ií]culo|"
            r"cancelar mi cuenta|no es lo que pregunt[ée]|queja)\b",
        ),
        (
            "toujours attends troisième troisieme inutile ridicule résilier resilier demandé "
            "demande plainte",
            r"(?:toujours pas|j['’]attends toujours|troisi[eè]me fois|inutile|ridicule|r[ée]silier|"
            r"pas ce que j['’]ai demand[ée]|plainte)\b",
        ),
        (
            "ainda terceira ridículo ridiculo cancelar perguntei reclamação reclamacao",
            r"(?:ainda estou esperando|terceira vez|rid[ií]culo|cancelar minha conta|"
            r"n[ãa]o foi isso que eu perguntei|reclama[çc][ãa]o)\b",
        ),
    )
)


def frustration_phrases(
    lowered: str, extra_phrases: tuple[str, ...] = (), words: frozenset[str] | None = None
) -> list[str]:
    """The frustration phrases ("still waiting", "useless bot") found in a customer message."""
    if words is None:
        words = message_words(lowered)
    found = [match.group(0) for match in _FRUSTRATION.matches(lowered, words)]
    extra = _phrase_pattern(extra_phrases) if extra_phrases else None
    if extra is not None:
        found.extend(match.group(0) for match in extra.finditer(lowered))
    return found


# --- corrections --------------------------------------------------------------------------------

_CORRECTION = re.compile(
    r"^\W*(?:no|nope|nah|wrong|incorrect|not really|not quite|nein|falsch|non|não|nao)\b"
    r"|^\W*(?:that|this|it)['’]?s? (?:is )?not (?:it|right|correct|what i)"
    r"|^\W*(?:das|c['’]est|eso) (?:ist )?(?:nicht|pas|no) "
)


def is_correction(lowered: str) -> bool:
    """True when a customer message opens by contradicting what was just said ("no, ...")."""
    return _CORRECTION.search(lowered) is not None


# The customer lost by the bot's reply: "what?", "what do you mean", "I never said that".
_CONFUSION = _Phrases(
    (
        ("what", r"what\W*$|what (?:do|did) you mean\b|what are you (?:talking about|saying)\b"),
        ("huh", r"huh\b"),
        ("understand", r"i (?:don['’]?t|do not|didn['’]?t|did not) understand\b"),
        (
            "sense",
            r"(?:makes?|making) no sense\b"
            r"|(?:doesn['’]?t|does not|don['’]?t) make (?:any )?sense\b",
        ),
        (
            "said say meant",
            r"i (?:never|didn['’]?t|did not) (?:say|said|mean|ask)\b|when did i (?:say|said)\b"
            r"|i meant\b",
        ),
        ("asked", r"(?:that['’]?s|that is|this is|it['’]?s) not what i\b|i asked (?:about|for)\b"),
    )
)


def confusion_phrase(lowered: str, words: frozenset[str]) -> str | None:
    """The phrase by which a customer says the bot's reply lost them ("what?"), or None."""
    for match in _CONFUSION.matches(lowered, words):
        return match.group(0).strip(" ?!.")
    return None


# The customer giving up on what they came for: "forget it", "never mind", "thanks anyway", or
# declining what the bot offers instead ("no, thank you") right after it failed.
_GIVING_UP = re.compile(
    r"\b(?:forget it|never ?mind|i give up|(?:thanks|thank you) anyway|i['’]?ll (?:go|look|try) "
    r"elsewhere|i['’]?ll (?:call|phone) (?:you|instead)|don['’]?t bother)\b"
)
_DECLINING = re.compile(
    r"^\W*(?:no|nope|nah)\b[\W]*(?:thanks?|thank you|that['’]?s (?:all|it|ok)|that is (?:all|it)|"
    r"that will be all|that['’]?ll be all|i don['’]?t want|"
    r"that (?:will not|won['’]?t|doesn['’]?t) work|not necessary|$)"
)


_GIVING_UP_ANCHORS = _word_set("forget never nevermind give anyway elsewhere instead bother")


def gives_up(lowered: str, words: frozenset[str], *, after_failure: bool) -> str | None:
    """The words with which a customer gives up, or None; declining ("no, thanks") counts only
    `after_failure`, when the bot has just failed them."""
    if not _GIVING_UP_ANCHORS.isdisjoint(words):
        found = _GIVING_UP.search(lowered)
        if found is not None:
            return found.group(0)
    if after_failure:
        declined = _DECLINING.search(lowered)
        if declined is not None:
            return _quote_words(lowered)
    return None


def _quote_words(lowered: str, limit: int = 6) -> str:
    words = lowered.split()
    text = " ".join(words[:limit])
    return text if len(words) <= limit else text + "…"


# --- repetition ----------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
MIN_REPEAT_TOKENS = 3
MAX_TOKENS = 40


# Every ASCII byte that `_WORD` does not match (all but letters and digits) as a space.
_ASCII_NOT_WORD = bytes(
    code if chr(code).isascii() and chr(code).isalnum() else ord(" ") for code in range(256)
)


def message_words(lowered: str) -> frozenset[str]:
    """The distinct words of a lower-cased message, punctuation and apostrophes dropped."""
    if lowered.isascii():
        # The same words as `_WORD` finds (in ASCII, \w is letters, digits and "_"), at a
        # third of the cost.
        return frozenset(lowered.encode("ascii").translate(_ASCII_NOT_WORD).decode("ascii").split())
    return frozenset(_WORD.findall(lowered))


def token_set(text: str) -> frozenset[str]:
    """The distinct lower-cased words of a message as repetition compares them, at most
    `MAX_TOKENS`."""
    words = _WORD.findall(text.lower())
    if len(words) > MAX_TOKENS:
        words = words[:MAX_TOKENS]
    return frozenset(words)


def repetition_tokens(words: frozenset[str], lowered: str) -> frozenset[str]:
    """`token_set` reusing the message's word set when it is already small enough."""
    return words if len(words) <= MAX_TOKENS else token_set(lowered)


def similarity(first: frozenset[str], second: frozenset[str]) -> float:
    """Jaccard similarity of two token sets, in [0, 1]."""
    if not first or not second:
        return 0.0
    shared = len(first & second)
    return shared / (len(first) + len(second) - shared)


def most_similar(tokens: frozenset[str], previous: Iterable[frozenset[str]]) -> float:
    """The highest similarity of `tokens` to any of the `previous` token sets."""
    # `similarity` inlined: this runs for every message against several earlier ones.
    best = 0.0
    if not tokens:
        return best
    size = len(tokens)
    for other in previous:
        if not other:
            continue
        shared = len(tokens & other)
        score = shared / (size + len(other) - shared)
        if score > best:
            best = score
    return best


# --- identifiers for the hand-off summary ----------------------------------------------------

# Separate small patterns, each run only when a cheap check says it can match: one combined
# pattern with look-behinds and case folding costs tens of microseconds on every message.
# Keyword patterns run on the lower-cased text: case folding would stop `re` skipping ahead.
_ORDER_ID = re.compile(
    r"(?:order|bestellung|pedido|commande|encomenda)(?: (?:no\.?|number|nr\.?|n[º°o]\.?|id))?"
    r"[ :#-]*(\d{3,12})\b"
)
_ORDER_WORDS = _word_set("order bestellung pedido commande encomenda")
_HASH_ID = re.compile(r"#(\d{3,12})\b")
_TICKET_ID = re.compile(
    r"(ticket|case|incident|reference|ref)(?: (?:no\.?|number|id))?[ :#-]*([a-z0-9-]*\d{3,})\b"
)
_TICKET_WORDS = _word_set("ticket case incident reference ref")
_CODE_ID = re.compile(r"[A-Z]{2,6}-\d{2,10}\b|INC\d{5,12}\b")
_EMAIL_ID = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
_PHONE_ID = re.compile(r"\+\d[\d ()./-]{6,}\d\b")
_DIGIT_OR_AT = re.compile(r"[\d@]")


def _starts_free(text: str, start: int, also: str = "") -> bool:
    # What a look-behind for "no word character (or `also`) before" would have checked.
    if start == 0:
        return True
    before = text[start - 1]
    return not (before.isalnum() or before == "_" or before in also)


def _identifiers_at(text: str, words: frozenset[str]) -> Iterator[tuple[int, str]]:
    """(position, identifier) pairs; one spelling per identifier, so "order #123", "order 123"
    and "#123" all read "#123"."""
    lowered = text.lower()
    if not _ORDER_WORDS.isdisjoint(words):
        for match in _word_starts(_ORDER_ID, lowered):
            yield match.start(), f"#{match.group(1)}"
    if "#" in text:
        for match in _HASH_ID.finditer(text):
            if _starts_free(text, match.start(), "#"):
                yield match.start(), f"#{match.group(1)}"
    if not _TICKET_WORDS.isdisjoint(words):
        for match in _word_starts(_TICKET_ID, lowered):
            kind, ticket = match.group(1), match.group(2)
            yield match.start(), f"{kind} {ticket}" if ticket.isdigit() else ticket.upper()
    if "-" in text or "INC" in text:
        for match in _word_starts(_CODE_ID, text):
            yield match.start(), match.group(0)
    if "@" in text:
        for part in text.split():
            if "@" in part:
                email = _EMAIL_ID.search(part)
                if email is not None:
                    yield text.find(part), email.group(0)
    if "+" in text:
        for match in _PHONE_ID.finditer(text):
            if _starts_free(text, match.start(), "#"):
                yield match.start(), match.group(0).strip()


def find_identifiers(text: str, words: frozenset[str] | None = None) -> list[str]:
    """Order numbers, ticket ids, emails and international phone numbers mentioned in `text`,
    in order of appearance; `words` is `message_words(text.lower())` when the caller has it."""
    # Every identifier has a digit or an "@"; most messages have neither.
    if _DIGIT_OR_AT.search(text) is None:
        return []
    if words is None:
        words = message_words(text.lower())
    found = sorted(_identifiers_at(text, words), key=lambda pair: pair[0])
    return list(dict.fromkeys(identifier for _, identifier in found))
