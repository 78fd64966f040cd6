"""Detectors the signals use: requests for a human, bot fallbacks, frustration, repetition.

Each detector is a plain function over one message, so it can be tested with a literal and reused
(the evaluation tool uses `asks_for_human` as its baseline). Patterns are compiled once, at import,
and expect lower-cased text where the parameter is called `lowered`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from engine.events import ConversationEvent


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# --- explicit requests for a human ---------------------------------------------------------------

_EN_PERSON = (
    r"(?:a |an |the |some |one of your |your )?(?:real |live |actual |human |proper )?"
    r"(?:human(?: being)?|person|people|agent|representative|rep|someone|somebody|anyone|anybody|"
    r"operator|staff(?: member)?|employee|manager|supervisor|advisor|adviser|"
    r"support(?: team| staff| person)?|customer (?:service|support|care))\b"
)
_HUMAN_PATTERNS = (
    # English
    r"\b(?:(?:talk|speak|chat)(?:ing)?|connect(?:ing)?(?: me)?|transfer(?:ring)?(?: me)?|"
    r"put me through|pass me|hand me over|escalate me|forward me|get me through)"
    r" (?:to|with|through to) " + _EN_PERSON,
    r"\b(?:want|need|get(?: me)?|find me|give me|gimme|request|like|have)(?: to (?:have|get))? "
    r"(?:a |an )?"
    r"(?:real |live |actual )?(?:human|person|agent|representative|operator)\b",
    r"\b(?:real|live|actual|human) (?:human|person|people|agent|being|operator|representative)\b",
    r"\b(?:agent|human|representative|operator|person) (?:please|pls|plz|now|asap)\b",
    r"\brepresentative\b",
    r"\boperator\b",
    r"^\W*(?:a )?(?:human|agent|person|rep|operator|support|helpdesk|help desk)\W*$",
    r"\bis there (?:a|an|any)(?: real)? ?(?:human|person|one|body|agent)\b",
    # German
    r"\b(?:mensch|menschen|mitarbeiter(?:in)?|berater(?:in)?|sachbearbeiter(?:in)?|kundendienst|"
    r"kundenservice|jemandem|person)\b[^.?!,]{0,20}\b(?:sprechen|reden|verbunden|verbinden|"
    r"weiterleiten|chatten)\b",
    r"\b(?:verbinden sie mich|verbinde mich|leiten sie mich)\b",
    r"\b(?:echten|echter|echte|richtigen|richtiger|lebenden) "
    r"(?:menschen|mensch|mitarbeiter|person)\b",
    r"\b(?:will|möchte|moechte|brauche|hätte gern|haette gern) (?:einen |eine )?"
    r"(?:menschen|mitarbeiter(?:in)?|berater(?:in)?|menschlichen)\b",
    # Spanish
    r"\b(?:hablar|comunicarme|conversar|chatear|p[aá]same|comun[ií]came|con[eé]ctame|"
    r"transfi[eé]reme)\b[^.?!,]{0,15}\b(?:una persona|un humano|un ser humano|un agente|alguien|"
    r"un asesor|una asesora|un representante|un operador|una operadora|un empleado|un ejecutivo|"
    r"atenci[oó]n al cliente)\b",
    r"\b(?:persona real|humano real|agente humano|agente real|asesor humano)\b",
    r"\b(?:quiero|necesito|quisiera) (?:un |una )?"
    r"(?:humano|agente|asesor|representante|operador)\b",
    # French
    r"\b(?:parler|discuter|mettre en relation|passer|transf[ée]rer|joindre)\b[^.?!,]{0,20}"
    r"(?:un humain|une personne|un conseiller|une conseill[eè]re|un agent|quelqu['’]un|"
    r"un op[ée]rateur|une vraie personne|un vrai humain|un interlocuteur|service client)",
    r"\b(?:vrai humain|vraie personne|personne r[ée]elle|humain r[ée]el|conseiller humain|"
    r"agent humain)\b",
    r"\bje (?:veux|voudrais|souhaite) (?:un |une )?(?:humain|conseiller|agent|op[ée]rateur)\b",
    # Portuguese
    r"\b(?:falar|conversar|me passa|passar|transferir|me transfere|me conecta)\b[^.?!,]{0,20}"
    r"\b(?:um atendente|uma atendente|uma pessoa|um humano|um ser humano|algu[ée]m|um agente|"
    r"um operador|um representante|atendente)\b",
    r"\b(?:atendente humano|atendimento humano|pessoa real|humano de verdade|pessoa de verdade|"
    r"atendente real)\b",
    r"\b(?:quero|preciso|gostaria de) (?:um |uma )?(?:atendente|humano|agente)\b",
)
_HUMAN_REQUEST = re.compile("|".join(f"(?:{pattern})" for pattern in _HUMAN_PATTERNS))
# Every pattern above names a person (or a verb only a request uses); a message without one of
# these words cannot match, and checking a word set is far cheaper than running the big pattern.
_HUMAN_ANCHORS = _word_set(
    """human humans person people agent agents representative rep someone somebody anyone
    anybody operator staff employee manager supervisor advisor adviser support customer helpdesk
    desk mensch menschen menschlichen mitarbeiter mitarbeiterin berater beraterin sachbearbeiter
    sachbearbeiterin kundendienst kundenservice jemandem verbinden verbinde leiten persona humano
    agente alguien asesor asesora representante operador operadora empleado ejecutivo atención
    atencion cliente humain personne conseiller conseillère conseillere quelqu opérateur operateur
    vrai vraie interlocuteur client atendente pessoa alguém alguem atendimento"""
)

# Negations in the five languages; "can't"/"cannot" are left out on purpose: "why can't I talk to
# a person" is a request.
_NEGATION = re.compile(
    r"(?:\b(?:not|no|never|dont|don't|don’t|doesn't|doesnt|didn't|didnt|won't|without|nobody|"
    r"nicht|kein|keine|keinen|keinem|ohne|nie|niemand|sin|nunca|ni|pas|sans|jamais|ne|aucun|"
    r"não|nao|sem|nem)\b|(?:^|\W)n['’])"
)
# Negations that are not about the request: "is there no way to talk to a human?".
_NOT_A_NEGATION = re.compile(r"\bno way\b|\bno one (?:answers|replies)\b")
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
    return _AFTER_NEGATION.match(lowered[end:]) is not None


def _any_unnegated(pattern: re.Pattern[str], lowered: str) -> bool:
    return any(
        not _negated(lowered, match.start(), match.end()) for match in pattern.finditer(lowered)
    )


def asks_for_human(text: str, extra_phrases: Sequence[str] = ()) -> bool:
    """True when a customer message explicitly asks for a person and does not negate it."""
    lowered = text.lower()
    return asks_for_human_in(lowered, message_words(lowered), tuple(extra_phrases))


def asks_for_human_in(
    lowered: str, words: frozenset[str], extra_phrases: tuple[str, ...] = ()
) -> bool:
    """`asks_for_human` for a message already lower-cased and split by `message_words`."""
    if not _HUMAN_ANCHORS.isdisjoint(words) and _any_unnegated(_HUMAN_REQUEST, lowered):
        return True
    extra = _phrase_pattern(extra_phrases) if extra_phrases else None
    return extra is not None and _any_unnegated(extra, lowered)


# --- bot fallbacks -------------------------------------------------------------------------------

_FALLBACK_INTENT_PARTS = ("fallback", "nomatch", "noinput", "notunderstood")
_FALLBACK_INTENT_NAMES = frozenset({"none", "unknown", "anythingelse", "outofscope"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_FALLBACK_PHRASING = re.compile(
    r"(?:didn['’]?t|did not) (?:quite )?(?:get|understand|catch|recogni[sz]e) (?:that|what|you|it)"
    r"|\b(?:don['’]?t|do not) (?:quite )?understand\b"
    r"|\bnot sure (?:i |that i )?(?:understand|follow|know what you mean)"
    r"|\bnot sure what you mean"
    r"|\b(?:could|can|would) you (?:please )?(?:rephrase|reword|say that (?:again|differently)|"
    r"try again|try asking|put (?:that|it) (?:differently|another way))"
    r"|\bplease (?:rephrase|reword|try again)|\btry rephrasing\b|\bi missed that\b"
    r"|\bi(?:['’]m| am) still learning\b"
    r"|\bi (?:don['’]?t|do not) know how to help with that"
    r"|\bnicht (?:ganz )?verstanden\b|\bverstehe (?:ich )?(?:das )?nicht\b"
    r"|\b(?:umformulieren|anders formulieren)\b"
    r"|\bno (?:te |le |lo )?(?:he )?entend[ií]|\bno (?:te )?entiendo\b|\bno comprendo\b"
    r"|\breformular\b|\bpas compris\b|\bne comprends pas\b|\breformuler\b"
    r"|\bn[ãa]o (?:consegui )?(?:entendi|entender|compreendi)\b"
)


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
    if not _FALLBACK_ANCHORS.isdisjoint(words) and _FALLBACK_PHRASING.search(lowered):
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
    """True when a bot message is a fallback: platform flag, fallback intent, low confidence or
    fallback phrasing."""
    if event.fallback:
        return True
    if event.intent and is_fallback_intent(event.intent):
        return True
    confidence = event.confidence
    if low_confidence is not None and confidence is not None and confidence < low_confidence:
        return True
    return is_fallback_phrasing(lowered, extra_phrases, words)


# --- frustration ---------------------------------------------------------------------------------

_FRUSTRATION = re.compile(
    r"\bstill (?:waiting|not|no|nothing|haven['’]?t|hasn['’]?t|doesn['’]?t|isn['’]?t|broken)\b"
    r"|\b(?:third|3rd|fourth|fifth|second|2nd) time\b|\bhow many times\b"
    r"|\b(?:again and again|over and over|going in circles|for the last time)\b"
    r"|\b(?:cancel|close|delete) my (?:account|subscription|membership|contract)\b"
    r"|\b(?:useless|stupid|dumb|worthless|pointless|terrible|awful) (?:bot|robot|machine|chatbot|"
    r"ai|system|service|answer|app)\b|\buseless\b"
    r"|\bthis is (?:ridiculous|absurd|a joke|unacceptable|insane|crazy|a nightmare)\b"
    r"|\b(?:ridiculous|unacceptable|outrageous)\b"
    r"|\bnot what i (?:asked|said|meant|wanted|need)\b|\b(?:that|this)['’]?s not what i\b"
    r"|\b(?:that|this) is not what i\b"
    r"|\b(?:that['’]?s|that is|thats|this is|you['’]?re|you are|it['’]?s|totally|completely|"
    r"all) wrong\b|\bwrong (?:answer|again)\b"
    r"|\b(?:you['’]?re|you are) not (?:listening|helping|understanding)\b"
    r"|\b(?:not|isn['’]?t|wasn['’]?t|doesn['’]?t|didn['’]?t) help(?:ful|ing)?\b"
    r"|\bwaste of (?:my )?time\b|\bi (?:already|just) (?:told|said|explained|gave|tried)\b"
    r"|\bare you (?:even )?listening\b|\byou (?:don['’]?t|do not) understand\b"
    r"|\b(?:fed up|sick of|had enough|i give up|never again|wtf|answer my question)\b"
    r"|\b(?:immer noch|zum (?:dritten|zweiten|x-ten) mal|nutzlos|unverschämt|lächerlich|kündigen|"
    r"nicht was ich (?:gefragt|wollte)|beschwerde)\b"
    r"|\b(?:sigo esperando|todav[ií]a (?:espero|no)|tercera vez|in[uú]til|rid[ií]culo|"
    r"cancelar mi cuenta|no es lo que pregunt[ée]|queja)\b"
    r"|\b(?:toujours pas|j['’]attends toujours|troisi[eè]me fois|inutile|ridicule|r[ée]silier|"
    r"pas ce que j['’]ai demand[ée]|plainte)\b"
    r"|\b(?:ainda estou esperando|terceira vez|rid[ií]culo|cancelar minha conta|"
    r"n[ãa]o foi isso que eu perguntei|reclama[çc][ãa]o)\b"
)


_FRUSTRATION_ANCHORS = _word_set(
    """still time times again over circles last cancel close delete useless stupid dumb worthless
    pointless terrible awful ridiculous absurd joke unacceptable insane crazy nightmare outrageous
    what wrong listening helping understanding help helpful waste already told said explained gave
    tried understand fed sick enough give never wtf question immer mal nutzlos unverschämt
    lächerlich kündigen gefragt wollte beschwerde sigo todavía todavia tercera inútil inutil
    ridículo ridiculo cancelar pregunté pregunte queja toujours attends troisième troisieme inutile
    ridicule résilier resilier demandé demande plainte ainda terceira perguntei reclamação
    reclamacao"""
)


def frustration_phrases(
    lowered: str, extra_phrases: tuple[str, ...] = (), words: frozenset[str] | None = None
) -> list[str]:
    """The frustration phrases ("still waiting", "useless bot") found in a customer message."""
    if words is None:
        words = message_words(lowered)
    found = (
        []
        if _FRUSTRATION_ANCHORS.isdisjoint(words)
        else [match.group(0) for match in _FRUSTRATION.finditer(lowered)]
    )
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


# --- repetition ----------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
MIN_REPEAT_TOKENS = 3
MAX_TOKENS = 40


def message_words(lowered: str) -> frozenset[str]:
    """The distinct words of a lower-cased message, punctuation and apostrophes dropped."""
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
    best = 0.0
    for other in previous:
        score = similarity(tokens, other)
        if score > best:
            best = score
    return best


# --- identifiers for the hand-off summary ----------------------------------------------------

_IDENTIFIER = re.compile(
    r"\b(?:order|bestellung|pedido|commande|encomenda)(?: (?:no\.?|number|nr\.?|n[º°o]\.?|id))?"
    r"[ :#-]*(?P<order>\d{3,12})\b"
    r"|(?<![\w#])#(?P<hash>\d{3,12})\b"
    r"|\b(?P<kind>ticket|case|incident|reference|ref)(?: (?:no\.?|number|id))?[ :#-]*"
    r"(?P<ticket>[a-z0-9-]*\d{3,})\b"
    r"|(?-i:\b(?P<code>[A-Z]{2,6}-\d{2,10}|INC\d{5,12})\b)"
    r"|(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,})"
    r"|(?<![\w#])(?P<phone>\+\d[\d ()./-]{6,}\d)\b",
    re.IGNORECASE,
)


def _identifier(match: re.Match[str]) -> str:
    # One spelling per identifier, so "order #123", "order 123" and "#123" are listed once.
    number = match.group("order") or match.group("hash")
    if number:
        return f"#{number}"
    ticket = match.group("ticket")
    if ticket:
        return f"{match.group('kind').lower()} {ticket}" if ticket.isdigit() else ticket.upper()
    return match.group(0).strip()


_DIGIT_OR_AT = re.compile(r"[\d@]")
_IDENTIFIER_WORDS = _word_set(
    "order bestellung pedido commande encomenda ticket case incident reference ref"
)
_IDENTIFIER_MARKS = ("#", "@", "+", "-", "INC")


def find_identifiers(text: str, words: frozenset[str] | None = None) -> list[str]:
    """Order numbers, ticket ids, emails and international phone numbers mentioned in `text`;
    `words` is `message_words(text.lower())` when the caller has it."""
    # Every identifier has a digit or an "@"; most messages have neither.
    if _DIGIT_OR_AT.search(text) is None:
        return []
    # And a keyword or one of a few marks; checking those is cheaper than the pattern.
    if words is None:
        words = message_words(text.lower())
    if _IDENTIFIER_WORDS.isdisjoint(words) and not any(mark in text for mark in _IDENTIFIER_MARKS):
        return []
    return list(dict.fromkeys(_identifier(match) for match in _IDENTIFIER.finditer(text)))
